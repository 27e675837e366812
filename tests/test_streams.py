"""The streams' trainer: video-level evaluation, the SGD + plateau recipe, stage folders and
the ``train-stream`` command end to end on a tiny synthetic set. (Exact resume and DDP are
tested once for both trainers in test_engine.py.)"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from twostream.core.errors import UserError
from twostream.core.names import stream_name
from twostream.pipeline import graph as stages
from twostream.train.stream_trainer import evaluate_stream, make_optimizer, make_scheduler

PY = sys.executable


def test_evaluate_averages_softmax_over_time_steps():
    class Fixed(torch.nn.Module):  # logits = the first 3 input values
        def forward(self, x):
            return x.flatten(1)[:, :3]

    x = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 2.0], [0.0, 4.0, 0.0]]]).view(
        2, 2, 3, 1, 1
    )  # (B=2 videos, T=2 steps, C=3, 1, 1)
    y = torch.tensor([0, 2])
    loader = torch.utils.data.DataLoader(list(zip(x, y)), batch_size=2)
    out = evaluate_stream(Fixed(), loader, device=torch.device("cpu"), num_classes=3)
    sm = torch.softmax(x.view(2, 2, 3), -1).mean(1).numpy()  # hand: mean of the 2 softmaxes
    np.testing.assert_allclose(out["scores"], sm, rtol=1e-6)
    # video 1: steps vote 2 (p .79) and 1 (p .96): the mean prefers 1 -> wrong
    assert out["scores"][1].argmax() == 1
    assert out["top1"] == 0.5 and out["top5"] == 1.0
    assert out["confusion"].tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert out["mean_class_acc"] == 0.5
    ce = torch.nn.functional.cross_entropy(x.view(4, 3), torch.tensor([0, 0, 2, 2]))
    assert out["loss"] == pytest.approx(ce.item(), rel=1e-6)


def test_plateau_divides_lr_by_ten_on_validation_accuracy():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer(torch.nn.Linear(1, 1), lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["weight_decay"] == 1e-4
    sched = make_scheduler(opt, patience=1)
    for acc in (0.5, 0.6, 0.6):  # one epoch without gain: still within patience
        sched.step(acc)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    sched.step(0.55)  # second epoch without gain -> /10
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    del p


def test_stream_names_and_run_dirs():
    from twostream.core.config import StudyConfig

    assert stream_name("rgb") == "spatial" and stream_name("flow") == "temporal"
    with pytest.raises(UserError, match="spatial"):
        stream_name("audio")
    cfg = StudyConfig()
    a = stages.output(cfg, stages.stream_node("spatial", 1))
    assert a.parent == cfg.runs_dir and a.name.startswith("spatial-split1-")
    assert stages.output(cfg.replace(lr_spatial=0.5), stages.stream_node("spatial", 1)) != a
    assert stages.output(cfg.replace(device="cpu"), stages.stream_node("spatial", 1)) == a
    # a preprocessing knob reaches the stream through the rawframes key
    assert stages.output(cfg.replace(flow_bound=10.0), stages.stream_node("spatial", 1)) != a


@pytest.mark.slow
def test_train_stream_cli_end_to_end_on_a_tiny_synthetic_set(tmp_path):
    """The real pipeline: synthetic videos -> rawframes -> train-stream; then reuse."""
    sets = dict(
        data_root=str(tmp_path / "data"), synth_classes=3, synth_clips_per_class=8,
        synth_groups=4, synth_frames=12, synth_width=48, synth_height=40, crop_size=32,
        input_size=32, num_segments=3, flow_length=2, stream_epochs=2, stream_batch_size=8,
        samples_per_video=1, val_fraction=0.34, prep_workers=1, device="cpu",
    )  # fmt: skip
    args = ["-m", "twostream", "train-stream", "--stream", "flow"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    env = dict(os.environ, TWOSTREAM_QUIET="1", OMP_NUM_THREADS="1", TWOSTREAM_ROOT=str(tmp_path))
    r = subprocess.run([PY, *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "temporal split 1: best epoch" in r.stdout
    # one run folder (hidden entries: the stages' lock files)
    (run,) = [p for p in (tmp_path / "data" / "synthetic" / "runs").iterdir() if p.name[0] != "."]
    assert run.name.startswith("temporal-split1-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt",
            "scores_val.npz", "scores_test.npz", "results.json"} <= names  # fmt: skip
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["flow_length"] == 2 and cfg["stream"] == "temporal"
    with np.load(run / "scores_test.npz") as z:
        assert z["scores"].shape[1] == 3 and len(z["labels"]) == len(z["videos"]) > 0
        np.testing.assert_allclose(z["scores"].sum(1), 1.0, rtol=1e-5)

    from twostream.core.config import StudyConfig
    from twostream.models.streams import load_stream
    from twostream.study.tables import load_streams

    net = load_stream(run / "checkpoint_best.pt")
    assert net.in_channels == 4 and net.classifier.out_features == 3
    os.environ["TWOSTREAM_ROOT"] = str(tmp_path)
    try:
        scfg = StudyConfig.from_dict(sets)
        assert stages.output(scfg, stages.stream_node("temporal", 1)) == run
        stamp = (run / "scores_test.npz").stat().st_mtime_ns
        shutil.rmtree(stages.output(scfg, stages.stream_node("spatial", 1)), ignore_errors=True)
        loaded = load_streams(scfg)
        assert loaded["temporal"]["run_dir"] == run  # reused, not retrained
        assert (run / "scores_test.npz").stat().st_mtime_ns == stamp
        assert len(loaded["spatial"]["history"]) == 2 and loaded["spatial"]["num_classes"] == 3
    finally:
        del os.environ["TWOSTREAM_ROOT"]


def test_bad_cli_set_is_a_user_error():
    from twostream.core.config import parse_key_values

    assert parse_key_values(["lr_spatial=0.5", "backbone=resnet34", "splits=[1, 2]"]) == {
        "lr_spatial": 0.5,
        "backbone": "resnet34",
        "splits": [1, 2],
    }
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_key_values(["lr_spatial"])
