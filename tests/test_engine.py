"""The one training engine, tested once for both trainers (a stream, a fusion + ConvLSTM head):
a run killed with SIGKILL mid-epoch and resumed equals an uninterrupted one bit for bit, and
two gloo ranks equal one process with the same global batch."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from twostream.core.selection import better, selected_epoch, selection_key
from twostream.train import engine

PY = sys.executable
TRAINERS = ("stream", "head")
TIMINGS = ["seconds", "data_s", "compute_s", "samples_per_s"]


def write_fake_dataset(root: Path, *, classes=4, groups=6, frames=9, h=20, w=24, seed=0):
    """UCF101-format split files, random-texture rawframes and random feature maps of
    ``classes`` x ``groups`` clips (groups 5-6 are the test set)."""
    from twostream.train.features import feature_path, save_npy

    rng = np.random.default_rng(seed)
    d = root / "synthetic"
    (d / "splits").mkdir(parents=True)
    (d / "splits" / "classInd.txt").write_text("".join(f"{c + 1} C{c}\r\n" for c in range(classes)))
    train, test = [], []
    for c in range(classes):
        for g in range(1, groups + 1):
            rel = f"C{c}/v_C{c}_g{g:02d}_c01.avi"
            (test if g > groups - 2 else train).append((rel, c))
            folder = d / "rawframes" / f"C{c}" / f"v_C{c}_g{g:02d}_c01"
            folder.mkdir(parents=True)
            for k in range(1, frames + 1):
                cv2.imwrite(
                    str(folder / f"img_{k:05d}.jpg"), rng.integers(0, 256, (h, w, 3), np.uint8)
                )
                if k < frames:
                    for comp in "xy":
                        cv2.imwrite(str(folder / f"flow_{comp}_{k:05d}.jpg"),
                                    rng.integers(0, 256, (h, w), np.uint8))  # fmt: skip
            for s in ("spatial", "temporal"):
                x = rng.normal(0, 0.5, (4, 6, 3, 3)).astype(np.float32)
                x[:, c] += 1.0
                save_npy(feature_path(root / "maps" / s, rel), x.astype(np.float16))
    (d / "splits" / "trainlist01.txt").write_text("".join(f"{p} {c + 1}\r\n" for p, c in train))
    (d / "splits" / "testlist01.txt").write_text("".join(f"{p}\r\n" for p, _ in test))


# One training run as a subprocess (plain python or torchrun), through the real trainers.
# argv: trainer data_root run_dir out_dir pause_epoch ddp(0/1)
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from twostream.train import distributed as dist
    from twostream.train import engine
    from twostream.train import head_trainer as heads
    from twostream.train import stream_trainer as streams
    from twostream.data.splits import split_records
    from twostream.core.config import StudyConfig

    trainer, root, run_dir, out, pause_epoch, ddp = sys.argv[1:7]
    real = engine.train_one_epoch

    def on_step(epoch, step):
        print(f"STEP {epoch} {step}", flush=True)
        if epoch == int(pause_epoch):
            time.sleep(0.5)  # give the parent time to kill us mid-epoch

    def patched(*a, **kw):  # report steps; gloo has no SyncBatchNorm: freeze BN under DDP
        return real(*a, on_step=on_step, freeze_bn=ddp == "1" and trainer == "stream", **kw)

    engine.train_one_epoch = patched
    cfg = StudyConfig(data_root=root, device="cpu", val_fraction=0.25, seed=3, flow_length=2,
                      num_segments=3, crop_size=16, input_size=16, hflip=True, color_jitter=0.2,
                      stream_epochs=2, stream_batch_size=4, samples_per_video=2, lr_temporal=0.02,
                      plateau_patience=0, convlstm_epochs=2, convlstm_batch_size=4,
                      convlstm_hidden=5, convlstm_lr=0.01,
                      convlstm_dropout=0.0 if ddp == "1" else 0.5)
    if trainer == "stream":
        res = streams.train_stream(cfg, stream="temporal", split=1, run=run_dir, resume=True)
    else:
        dirs = {s: Path(root) / "maps" / s for s in ("spatial", "temporal")}
        res = heads.train_head(cfg, split=1, feature_dirs=dirs,
                               records=split_records(cfg, 1), classes=["C0", "C1", "C2", "C3"],
                               run=run_dir, resume=True)
    if dist.is_main():
        Path(out).mkdir(parents=True, exist_ok=True)
        res["history"].to_csv(Path(out) / "history.csv", index=False)
    dist.cleanup()
    """
)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake")
    write_fake_dataset(root)
    (root / "run.py").write_text(SCRIPT)
    return root


def _env():
    return dict(os.environ, TWOSTREAM_QUIET="1", OMP_NUM_THREADS="1")


def _history(out: Path):
    return pd.read_csv(out / "history.csv").drop(columns=TIMINGS)


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoint_last.pt", weights_only=False)["model"]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())


@pytest.mark.slow
@pytest.mark.parametrize("trainer", TRAINERS)
def test_kill_mid_epoch_then_resume_equals_uninterrupted(fake, tmp_path, trainer):
    script = str(fake / "run.py")
    ref = subprocess.run([PY, script, trainer, str(fake), str(tmp_path / "ref_run"),
                          str(tmp_path / "ref"), "-1", "0"], env=_env(), capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "run"
    args = [PY, script, trainer, str(fake), str(run), str(tmp_path / "out")]
    proc = subprocess.Popen(args + ["1", "0"], env=_env(), stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.strip() == "STEP 1 1":  # second batch of the second epoch
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(run / "checkpoint_last.pt", weights_only=False)["epoch"] == 0
    assert not (tmp_path / "out").exists() and not (run / "results.json").exists()

    resumed = subprocess.run(args + ["-1", "0"], env=_env(), capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "STEP 0 " not in resumed.stdout  # epoch 0 was not redone
    h_ref, h_res = _history(tmp_path / "ref"), _history(tmp_path / "out")
    assert len(h_ref) == 2
    assert h_ref.equals(h_res), f"\n{h_ref}\n{h_res}"
    assert _max_diff(_weights(tmp_path / "ref_run"), _weights(run)) == 0.0
    assert {"config.json", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt",
            "scores_val.npz", "scores_test.npz", "results.json"} <= {p.name for p in run.iterdir()}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("trainer", TRAINERS)
def test_two_gloo_ranks_equal_one_process_with_the_same_global_batch(fake, tmp_path, trainer):
    script = str(fake / "run.py")
    torchrun = Path(PY).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside python")
    single = subprocess.run([PY, script, trainer, str(fake), str(tmp_path / "run1"),
                             str(tmp_path / "one"), "-1", "1"], env=_env(), capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                          "--master_port", str(_free_port()), script, trainer, str(fake),
                          str(tmp_path / "run2"), str(tmp_path / "two"), "-1", "1"],
                         env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ddp.returncode == 0, (ddp.stdout[-2000:], ddp.stderr[-3000:])
    # each rank takes half of every global batch: twice the steps printed, same batches
    assert ddp.stdout.count("STEP 0 ") == 2 * single.stdout.count("STEP 0 ")
    h1, h2 = _history(tmp_path / "one"), _history(tmp_path / "two")
    np.testing.assert_allclose(h1.to_numpy(float), h2.to_numpy(float), rtol=1e-5, atol=1e-5)
    assert _max_diff(_weights(tmp_path / "run1"), _weights(tmp_path / "run2")) < 1e-5


def test_selection_is_val_top1_then_loss_then_earlier():
    rows = [
        {"epoch": 1, "val_top1": 0.5, "val_loss": 1.0},
        {"epoch": 2, "val_top1": 0.6, "val_loss": 1.2},
        {"epoch": 3, "val_top1": 0.6, "val_loss": 0.9},  # same top-1, lower loss: wins
        {"epoch": 4, "val_top1": 0.6, "val_loss": 0.9},  # a tie: the earlier epoch keeps it
    ]
    assert selected_epoch(rows) == 3
    assert better(rows[2], rows[1]) and not better(rows[3], rows[2])
    assert selection_key({"val_top1": float("nan"), "train_loss": 2.0}) == (0.0, -2.0)
    hist = pd.DataFrame(rows).assign(test_top1=[0.9, 0.1, 0.1, 0.1], test_loss=1.0)
    assert selected_epoch(hist, part="test") == 1  # the authors' protocol


def test_fit_records_rows_and_steps_the_plateau_scheduler(tmp_path):
    from twostream.train.rundir import RunDir

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0)
    vals = iter([0.5, 0.4, 0.4])  # no gain after the first epoch: lr / 10 each time
    fit = engine.fit(model, epochs=3, optimizer=opt, scheduler=sched, run=RunDir(tmp_path / "r"),
                     train_epoch=lambda i: {"train_loss": 1.0 - i / 10},
                     evaluate=lambda part: {"loss": 1.0, "top1": next(vals)})  # fmt: skip
    h = fit["history"]
    assert h["epoch"].tolist() == [1, 2, 3] and fit["best_epoch"] == 1
    np.testing.assert_allclose(h["lr"], [1.0, 1.0, 0.1])
    assert (tmp_path / "r" / "metrics.csv").is_file()
    assert json.loads(json.dumps(list(h.columns)))[:3] == ["epoch", "lr", "train_loss"]
