import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from twostream.errors import UserError
from twostream.train import (
    METRIC_COLUMNS,
    evaluate,
    make_optimizer,
    make_scheduler,
    run_dir_for,
    stream_name,
)

PY = sys.executable


def write_fake_rawframes(root: Path, *, classes=3, videos=4, frames=9, h=20, w=24, seed=0):
    """Random-texture rawframes in the mmaction2 layout; returns the list of (path, label)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(classes):
        for v in range(videos):
            folder = root / f"C{c}" / f"v_C{c}_g{v:02d}_c01"
            folder.mkdir(parents=True)
            for k in range(1, frames + 1):
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), img)
                if k < frames:
                    for comp in "xy":
                        field = rng.integers(0, 256, (h, w), dtype=np.uint8)
                        cv2.imwrite(str(folder / f"flow_{comp}_{k:05d}.jpg"), field)
            out.append((f"C{c}/v_C{c}_g{v:02d}_c01.avi", c))
    return out


# A training run over fake rawframes, run as a subprocess (plain python or torchrun):
# argv: data_dir out_dir run_dir|- resume(0/1) freeze_bn(0/1) pause_epoch
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from twostream import distributed as dist
    from twostream.datasets import VideoRecord
    from twostream.models import build_stream
    from twostream.rawframes import TrainSteps, VideoSteps
    from twostream.transforms import StackTransform
    from twostream.train import (eval_loader, fit, make_optimizer, make_scheduler,
                                 prepare_model, train_loader)
    from twostream.utils import seed_everything

    data, out, run_dir, resume, freeze_bn, pause_epoch = sys.argv[1:7]
    dist.init_distributed("cpu")
    recs = [VideoRecord(p, l) for p, l in json.loads((Path(data) / "records.json").read_text())]
    tf = StackTransform(modality="flow", train=True, crop_size=16, input_size=16,
                        scale_min=0.75, scale_max=1.33, flip=True, jitter=0.2)
    ev = StackTransform(modality="flow", train=False, crop_size=16, input_size=16)
    train = TrainSteps(recs[::2] + recs[1::4], data, modality="flow", flow_length=2,
                       samples_per_video=2, transform=tf, seed=3)
    val = VideoSteps(recs[3::4], data, modality="flow", num_segments=3, flow_length=2,
                     transform=ev)
    seed_everything(0)
    net = build_stream(modality="flow", backbone="resnet18", num_classes=3, flow_length=2,
                       dropout=0.0 if freeze_bn == "1" else 0.3)
    model = prepare_model(net, torch.device("cpu"))
    opt = make_optimizer(model, lr=0.02, momentum=0.9, weight_decay=1e-4)
    sched = make_scheduler(opt, patience=0)

    def on_step(epoch, step):
        print(f"STEP {epoch} {step}", flush=True)
        if epoch == int(pause_epoch):
            time.sleep(0.5)  # give the parent time to kill us mid-epoch

    hist = fit(model, train_loader=train_loader(train, batch_size=4, seed=3),
               val_loader=eval_loader(val, batch_size=2), optimizer=opt, scheduler=sched,
               epochs=3, device=torch.device("cpu"), num_classes=3, seed=3,
               freeze_bn=freeze_bn == "1", run_dir=None if run_dir == "-" else run_dir,
               resume=resume == "1", on_step=on_step)
    if dist.is_main():
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), Path(out) / "weights.pt")
        hist.to_csv(Path(out) / "history.csv", index=False)
        (Path(out) / "lr.json").write_text(json.dumps(opt.param_groups[0]["lr"]))
    dist.cleanup()
    """
)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    recs = write_fake_rawframes(root)
    (root / "records.json").write_text(json.dumps(recs))
    (root / "run.py").write_text(SCRIPT)
    return root


def _env():
    env = dict(os.environ, TWOSTREAM_QUIET="1", OMP_NUM_THREADS="1")
    return env


def _history(out: Path):
    import pandas as pd

    return pd.read_csv(out / "history.csv")[list(METRIC_COLUMNS)]


def _weights_equal(a: Path, b: Path, atol: float = 0.0) -> float:
    wa, wb = torch.load(a / "weights.pt"), torch.load(b / "weights.pt")
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa if wa[k].numel())


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_equals_uninterrupted(fake, tmp_path):
    script = str(fake / "run.py")
    ref = subprocess.run(
        [PY, script, str(fake), str(tmp_path / "ref"), str(tmp_path / "ref_run"), "0", "0", "-1"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "run"
    args = [PY, script, str(fake), str(tmp_path / "out"), str(run), "1", "0"]
    proc = subprocess.Popen(args + ["1"], env=_env(), stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.strip() == "STEP 1 1":  # second batch of the second epoch
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    payload = torch.load(run / "checkpoint_last.pt", weights_only=False)
    assert payload["epoch"] == 0  # killed inside epoch 1
    assert not (tmp_path / "out").exists()

    resumed = subprocess.run(args + ["-1"], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "STEP 0 " not in resumed.stdout  # epoch 0 was not redone
    h_ref, h_res = _history(tmp_path / "ref"), _history(tmp_path / "out")
    assert len(h_ref) == 3
    assert h_ref.equals(h_res), f"\n{h_ref}\n{h_res}"
    assert _weights_equal(tmp_path / "ref", tmp_path / "out") == 0.0
    # the files a run keeps
    assert {"checkpoint_last.pt", "checkpoint_best.pt", "metrics.csv"} <= {
        p.name for p in run.iterdir()
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_with_the_same_global_batch(fake, tmp_path):
    script = str(fake / "run.py")
    torchrun = Path(PY).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside python")
    single = subprocess.run(
        [PY, script, str(fake), str(tmp_path / "one"), "-", "0", "1", "-1"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), script, str(fake), str(tmp_path / "two"), "-", "0", "1",
         "-1"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ddp.returncode == 0, (ddp.stdout[-2000:], ddp.stderr[-3000:])
    # 18 samples, global batch 4: 4 steps of 4 (one process) or 4 steps of 2 on each rank
    assert ddp.stdout.count("STEP 0 ") == 2 * single.stdout.count("STEP 0 ")
    h1, h2 = _history(tmp_path / "one"), _history(tmp_path / "two")
    np.testing.assert_allclose(h1.to_numpy(float), h2.to_numpy(float), rtol=1e-5, atol=1e-5)
    assert _weights_equal(tmp_path / "one", tmp_path / "two") < 1e-5


def test_evaluate_averages_softmax_over_time_steps():
    class Fixed(torch.nn.Module):  # logits = the first 3 input values
        def forward(self, x):
            return x.flatten(1)[:, :3]

    x = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 2.0], [0.0, 4.0, 0.0]]]).view(
        2, 2, 3, 1, 1
    )  # (B=2 videos, T=2 steps, C=3, 1, 1)
    y = torch.tensor([0, 2])
    loader = torch.utils.data.DataLoader(list(zip(x, y)), batch_size=2)
    out = evaluate(Fixed(), loader, device=torch.device("cpu"), num_classes=3)
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
    from twostream.config import StudyConfig

    assert stream_name("rgb") == "spatial" and stream_name("flow") == "temporal"
    with pytest.raises(UserError, match="spatial"):
        stream_name("audio")
    cfg = StudyConfig()
    a = run_dir_for(cfg, "rgb", 1)
    assert a.parent == cfg.runs_dir and a.name.startswith("spatial-split1-")
    assert run_dir_for(cfg, "spatial", 1) == a
    assert run_dir_for(cfg.replace(lr_spatial=0.5), "spatial", 1) != a
    assert run_dir_for(cfg.replace(device="cpu"), "spatial", 1) == a  # not a result knob


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
    (run,) = (tmp_path / "data" / "synthetic" / "runs").iterdir()
    assert run.name.startswith("temporal-split1-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt",
            "scores_val.npz", "scores_test.npz"} <= names  # fmt: skip
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["flow_length"] == 2 and cfg["stream"] == "temporal"
    with np.load(run / "scores_test.npz") as z:
        assert z["scores"].shape[1] == 3 and len(z["labels"]) == len(z["videos"]) > 0
        np.testing.assert_allclose(z["scores"].sum(1), 1.0, rtol=1e-5)

    from twostream.config import StudyConfig
    from twostream.models import load_stream
    from twostream.train import ensure_streams, load_run

    net = load_stream(run / "checkpoint_best.pt")
    assert net.in_channels == 4 and net.classifier.out_features == 3
    os.environ["TWOSTREAM_ROOT"] = str(tmp_path)
    try:
        scfg = StudyConfig.from_dict(sets)
        stamp = (run / "scores_test.npz").stat().st_mtime_ns
        shutil.rmtree(run_dir_for(scfg, "spatial", 1), ignore_errors=True)
        runs = ensure_streams(scfg.replace(stream_epochs=2))
        assert runs["temporal"] == run  # reused, not retrained
        assert (run / "scores_test.npz").stat().st_mtime_ns == stamp
        spatial = load_run(runs["spatial"])
        assert len(spatial["history"]) == 2 and spatial["num_classes"] == 3
    finally:
        del os.environ["TWOSTREAM_ROOT"]


def test_bad_cli_set_is_a_user_error():
    from twostream.config import parse_key_values

    assert parse_key_values(["lr_spatial=0.5", "backbone=resnet34", "splits=[1, 2]"]) == {
        "lr_spatial": 0.5,
        "backbone": "resnet34",
        "splits": [1, 2],
    }
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_key_values(["lr_spatial"])
