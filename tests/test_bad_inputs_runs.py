"""Issue 21: unreadable checkpoints, failed checkpoint writes and partial runs, each said in
one line naming the file and the fix."""

from __future__ import annotations

import errno
import json
import shutil

import pytest
import torch

from twostream.cli.main import main
from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.pipeline import graph as stages
from twostream.train import checkpoint
from twostream.train.checkpoint import load_checkpoint, save_checkpoint
from twostream.train.rundir import RunDir


def _write(path):
    save_checkpoint(path, model=torch.nn.Linear(4, 2), epoch=2, config={"seed": 0})
    return path.read_bytes()


@pytest.mark.parametrize("name", ["checkpoint_last.pt", "checkpoint_best.pt"])
@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -1])
def test_truncated_or_empty_checkpoint_is_one_line_naming_file_and_fix(tmp_path, name, keep):
    path = tmp_path / "run" / name
    data = _write(path)
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) - 1 if keep < 0 else keep)
    path.write_bytes(data[:n])
    with pytest.raises(UserError) as info:
        load_checkpoint(path, model=torch.nn.Linear(4, 2))
    msg = str(info.value)
    assert "\n" not in msg
    reason = "empty (0 bytes)" if n == 0 else "truncated or corrupt ("
    assert msg.startswith(f"checkpoint {path} is {reason}")
    if name == "checkpoint_last.pt":
        assert msg.endswith(
            "it is the last checkpoint of a partial run: delete it to restart that run from its "
            f"first epoch (or delete the run folder {path.parent} to start it from nothing)"
        )
    else:
        assert msg.endswith(
            f"the run's selected weights are lost: delete the run folder {path.parent} and "
            "train it again"
        )


def test_an_intact_checkpoint_still_loads(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    _write(path)
    assert load_checkpoint(path, restore_rng=False)["epoch"] == 2
    assert checkpoint.checkpoint_epoch(path) == 3


@pytest.mark.parametrize(
    "exc, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
        (OSError(errno.EROFS, "Read-only file system"), "is read-only (read-only file system)"),
        (PermissionError(errno.EACCES, "Permission denied"), "is read-only (permission denied)"),
    ],
)
def test_a_failed_checkpoint_write_is_one_line(tmp_path, monkeypatch, exc, expected):
    path = tmp_path / "run" / "checkpoint_last.pt"
    before = _write(path)

    def failing(obj, target):
        raise exc

    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(UserError) as info:
        save_checkpoint(path, model=torch.nn.Linear(4, 2), epoch=3, config={})
    msg = str(info.value)
    assert msg.startswith(f"cannot write {path}: ") and expected in msg and "\n" not in msg
    assert path.read_bytes() == before  # the previous checkpoint is intact
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint_last.pt"]  # no temp file


def test_torch_writer_failure_on_a_full_disk_says_no_space(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint_best.pt"

    def failing(obj, target):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")  # fmt: skip

    monkeypatch.setattr(torch, "save", failing)
    monkeypatch.setattr(checkpoint, "_free_mib", lambda folder: 0.0)
    with pytest.raises(UserError, match=r"no space left on the device \(0 MiB free\)"):
        save_checkpoint(path, model=torch.nn.Linear(4, 2), epoch=0, config={})


# ----------------------------------------------------------------------------- evaluate

TINY = dict(
    device="cpu", prep_workers=1, splits=[1], synth_classes=3, synth_clips_per_class=8,
    synth_groups=4, synth_frames=12, synth_width=48, synth_height=40, crop_size=32,
    input_size=32, num_segments=3, flow_length=2, stream_epochs=2, stream_batch_size=8,
    samples_per_video=1, val_fraction=0.34,
)  # fmt: skip


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cfg = StudyConfig.from_dict({**TINY, "data_root": str(root)})
    return RunDir(stages.streams(cfg)["spatial"])


@pytest.mark.slow
def test_evaluate_a_partial_run_says_so_and_records_it(stream_run, tmp_path, capsys):
    partial = tmp_path / "spatial-split1-partial"
    shutil.copytree(stream_run.path, partial, ignore=shutil.ignore_patterns("evaluate"))
    (partial / "results.json").unlink()
    lines = (partial / "metrics.csv").read_text().splitlines()
    (partial / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")  # one epoch of two
    out_dir = tmp_path / "eval"
    assert main(["evaluate", "--run", str(partial), "--device", "cpu", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    epoch = json.loads((out_dir / "metrics.json").read_text())["epoch"]
    assert out[1] == (
        f"  partial run (no complete results.json): 1 of 2 epochs trained, so epoch {epoch} is "
        "the best so far, not the run's final selection; finish the run for that"
    )
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert (metrics["run_status"], metrics["epochs_trained"], metrics["epochs_planned"]) == (
        "partial", 1, 2,
    )  # fmt: skip

    assert main(["evaluate", "--run", str(stream_run.path), "--device", "cpu",
                 "--out", str(tmp_path / "eval2")]) == 0  # fmt: skip
    assert "partial run" not in capsys.readouterr().out
    assert json.loads((tmp_path / "eval2" / "metrics.json").read_text())["run_status"] == "finished"


@pytest.mark.slow
def test_evaluate_a_truncated_best_checkpoint_is_one_line(stream_run, tmp_path, capsys):
    broken = tmp_path / "spatial-split1-broken"
    shutil.copytree(stream_run.path, broken, ignore=shutil.ignore_patterns("evaluate"))
    best = broken / "checkpoint_best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    assert main(["evaluate", "--run", str(broken), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"twostream evaluate: error: checkpoint {best} is truncated or corrupt ("
    )
    assert err[0].endswith(f"delete the run folder {broken} and train it again")


@pytest.mark.slow
def test_evaluate_into_a_read_only_folder_is_one_line(stream_run, tmp_path, capsys, monkeypatch):
    def read_only(self):
        raise OSError(errno.EROFS, "Read-only file system", str(self.path))

    monkeypatch.setattr(RunDir, "mkdir", read_only)
    out = tmp_path / "eval"
    assert main(["evaluate", "--run", str(stream_run.path), "--device", "cpu",
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"twostream evaluate: error: cannot write the evaluation into {out} (read-only): "
        "pass --out DIR on a writable disk"
    ]
