"""What a training run says while it runs: the per-epoch line (every field), the batch bar
(only after BAR_DELAY_S, never under TWOSTREAM_QUIET=1) and the optional TensorBoard files."""

from __future__ import annotations

import re
import sys

import pandas as pd
import pytest
import torch

from twostream.train import engine
from twostream.train.rundir import RunDir


def _tiny_fit(run=None, *, epochs=2, **kw):
    """Two epochs of a linear classifier on 24 fixed points, 6 batches per epoch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=g)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def evaluate(part):
        with torch.no_grad():
            logits = model(x)
        return {"loss": float(torch.nn.functional.cross_entropy(logits, y)),
                "top1": float((logits.argmax(1) == y).float().mean())}  # fmt: skip

    return engine.fit(
        model, epochs=epochs, optimizer=opt, run=run, desc="tiny", evaluate=evaluate,
        train_epoch=lambda i: engine.train_one_epoch(model, loader, opt, prepare=lambda b: ((b[0],), b[1]),
                                                     device=torch.device("cpu"), epoch=i, amp=False),
        **kw,
    )  # fmt: skip


EPOCH_LINE = re.compile(
    r"^tiny epoch (?P<epoch>\d+)/2  lr (?P<lr>[\d.e+-]+)  train loss (?P<loss>\d+\.\d{4})  "
    r"val top-1 +(?P<val>\d+\.\d)%  (?P<sec>\d+\.\d) s  ETA (?P<eta>\d+m\d{2}s)(  \*)?$"
)


def test_epoch_line_has_every_field(capsys, monkeypatch):
    monkeypatch.delenv("TWOSTREAM_QUIET")
    fit = _tiny_fit()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 2, lines
    matches = [EPOCH_LINE.match(ln) for ln in lines]
    assert all(matches), lines
    h = fit["history"]
    for m, (_, row) in zip(matches, h.iterrows(), strict=True):
        assert int(m["epoch"]) == row["epoch"]
        assert float(m["lr"]) == pytest.approx(0.1)
        assert float(m["loss"]) == pytest.approx(row["train_loss"], abs=1e-4)
        assert float(m["val"]) == pytest.approx(100 * row["val_top1"], abs=0.05)
    assert matches[-1]["eta"] == "0m00s"  # nothing left after the last epoch


def test_quiet_silences_the_epoch_line(capsys):
    _tiny_fit()  # conftest sets TWOSTREAM_QUIET=1
    assert capsys.readouterr().out == ""


def test_batch_bar_appears_only_after_the_delay_and_never_when_quiet(capsys, monkeypatch):
    monkeypatch.delenv("TWOSTREAM_QUIET")
    _tiny_fit()  # milliseconds per epoch: below BAR_DELAY_S, no bar
    assert "batch" not in capsys.readouterr().err
    monkeypatch.setattr(engine, "BAR_DELAY_S", 0.0)  # every epoch "long": the bar is drawn
    _tiny_fit()
    err = capsys.readouterr().err
    assert "epoch 1" in err and "batch" in err
    monkeypatch.setenv("TWOSTREAM_QUIET", "1")
    _tiny_fit()
    assert capsys.readouterr().err == ""


def test_tensorboard_missing_warns_and_keeps_metrics_csv(tmp_path, monkeypatch):
    # None in sys.modules makes `import tensorboard` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    run = RunDir(tmp_path / "r")
    with pytest.warns(UserWarning, match="tensorboard package is not installed"):
        _tiny_fit(run, tensorboard=True)
    assert len(pd.read_csv(run.metrics_path)) == 2
    assert not (run.path / "tensorboard").exists()


def test_tensorboard_off_by_default_writes_no_events(tmp_path):
    run = RunDir(tmp_path / "r")
    _tiny_fit(run)
    assert run.metrics_path.is_file() and not (run.path / "tensorboard").exists()


def test_tensorboard_scalars_equal_metrics_csv(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = RunDir(tmp_path / "r")
    _tiny_fit(run, tensorboard=True)
    acc = EventAccumulator(str(run.path / "tensorboard"))
    acc.Reload()
    csv = pd.read_csv(run.metrics_path)
    assert set(acc.Tags()["scalars"]) == set(csv.columns) - {"epoch"}
    for tag in ("train_loss", "val_top1", "lr"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == csv["epoch"].tolist()
        assert [e.value for e in events] == pytest.approx(csv[tag].tolist(), rel=1e-6)
