"""Progress as a reader of an executed notebook should see it, and as a terminal shows it.

In a terminal (the CLI, the tests) nothing here changes anything: the bars are tqdm's text
bars and the trainer prints one line per epoch (:mod:`twostream.train.engine`).

Inside a notebook kernel (:func:`in_notebook`: IPython with a kernel, as under Jupyter and
papermill) long work is shown without a single widget, so an executed notebook stores no
widget state and no bar frozen at whatever it last drew:

* inner bars (``leave=False``: the per-batch bar of an epoch) are off;
* the stage bars of a cell (synthetic videos, rawframes, feature caches) share one line of
  text updated in place (``IPython.display`` with a ``display_id``) whose last state is a
  completed summary (``spatial features x3: 324 chunks in 41 s``), never a half-drawn bar;
* training runs (:func:`run_started`, :func:`epoch_done`, :func:`run_finished`, called by the
  trainers) share one live line per cell: runs finished, the run in progress with its epoch
  and ETA; when the last run of the cell ends it reads ``training: 12 runs finished in
  3m05s``. Each finished run also prints one summary line (selected epoch, validation and
  test top-1 with n); the per-epoch detail stays in the run's ``metrics.csv``, the CLI's log
  and TensorBoard.

``TWOSTREAM_NOTEBOOK=1`` / ``=0`` forces the choice (tests); ``TWOSTREAM_QUIET=1`` silences all
of it, as it silences the terminal bars.
"""

from __future__ import annotations

import io
import os
import sys
import time

from tqdm.std import tqdm as _std_tqdm

from twostream.core.formatting import MISSING, fmt_pct


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel's IPython shell), False in a terminal."""
    forced = os.environ.get("TWOSTREAM_NOTEBOOK")
    if forced in ("0", "1"):
        return forced == "1"
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def quiet() -> bool:
    return os.environ.get("TWOSTREAM_QUIET") == "1"


def fmt_seconds(seconds: float) -> str:
    """``41 s``, ``3m05s``, ``1h02m``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class LiveLine:
    """One line of text in a notebook's output, replaced in place by :meth:`update`."""

    def __init__(self, text: str):
        from IPython.display import display

        self.text = text
        self.handle = display({"text/plain": text}, raw=True, display_id=True)

    def update(self, text: str) -> None:
        if text != self.text and self.handle is not None:
            self.text = text
            self.handle.update({"text/plain": text}, raw=True)


class _Work:
    """The stage bars of one notebook cell and their shared live line: the bar in progress,
    then what every finished bar did, one entry per description (``spatial features x6: 48
    chunks in 3 s``)."""

    def __init__(self):
        self.done: dict[str, list] = {}  # desc -> [bars, items, seconds, unit]
        self.line: LiveLine | None = None

    def summary(self) -> str:
        parts = []
        for desc, (bars, items, seconds, unit) in self.done.items():
            times = f" x{bars}" if bars > 1 else ""
            parts.append(f"{desc}{times}: {items} {unit}s in {fmt_seconds(seconds)}")
        return "; ".join(parts)

    def show(self, now: str = "") -> None:
        text = "; ".join(p for p in (self.summary(), f"now {now}" if now else "") if p)
        if self.line is None:
            self.line = LiveLine(text)
        else:
            self.line.update(text)

    def finish(self, desc: str, items: int, seconds: float, unit: str) -> None:
        entry = self.done.setdefault(desc, [0, 0, 0.0, unit])
        entry[0] += 1
        entry[1] += items
        entry[2] += seconds
        self.show()


class NotebookBar(_std_tqdm):
    """A tqdm drawn as text in the cell's shared work line (:class:`_Work`: no widget,
    nothing on stderr); on :meth:`close` the line keeps a summary (``desc: n units in T``)."""

    def __init__(self, *args, **kwargs):
        self._work: _Work | None = None
        kwargs["file"] = io.StringIO()
        super().__init__(*args, **kwargs)

    def _elapsed(self) -> float:
        return self._time() - getattr(self, "start_t", self._time())

    def _live_text(self) -> str:
        elapsed = self._elapsed()
        unit = self.unit or "it"
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        text = f"{self.desc or 'working'}: {done} {unit}s, {fmt_seconds(elapsed)} elapsed"
        if self.total and self.n:
            text += f", ETA {fmt_seconds(elapsed / self.n * (self.total - self.n))}"
        return text

    def display(self, msg=None, pos=None):
        if self.disable:
            return True
        if self._work is None:
            self._work = _cell_state(_WORK, _Work)
        self._work.show(self._live_text())
        return True

    def close(self):
        if self.disable or not hasattr(self, "_work"):
            return super().close()
        n, elapsed = self.n, self._elapsed()
        super().close()
        if self._work is not None:
            self._work.finish(self.desc or "work", n, elapsed, self.unit or "it")


def bar(iterable=None, **kwargs):
    """A progress bar for a notebook: ``leave=False`` bars (inner loops) are off, others a
    :class:`NotebookBar`. ``kwargs`` as for tqdm."""
    if kwargs.get("leave") is False:
        kwargs["disable"] = True
        kwargs["file"] = io.StringIO()
        return _std_tqdm(iterable, **kwargs)
    return NotebookBar(iterable, **kwargs)


# ----------------------------------------------------------------------------- training runs


class _Runs:
    """The runs trained by one notebook cell and its live line."""

    def __init__(self):
        self.start = time.perf_counter()
        self.finished = 0
        self.current: str | None = None
        self.line: LiveLine | None = None

    def text(self, now: str = "") -> str:
        done = f"{self.finished} run{'s' if self.finished != 1 else ''} finished"
        elapsed = fmt_seconds(time.perf_counter() - self.start)
        if now:
            return f"training: {done}, {elapsed} elapsed; now {now}"
        return f"training: {done} in {elapsed}"

    def show(self, now: str = "") -> None:
        text = self.text(now)
        if self.line is None:
            self.line = LiveLine(text)
        else:
            self.line.update(text)


_RUNS: dict[object, _Runs] = {}
_WORK: dict[object, _Work] = {}


def _cell_key() -> object:
    try:
        from IPython import get_ipython

        return get_ipython().execution_count
    except Exception:  # noqa: BLE001 - outside IPython: one tracker
        return None


def _cell_state(store: dict, factory):
    """``store``'s object for the running cell (a new cell starts a new one)."""
    key = _cell_key()
    if key not in store:
        store.clear()
        store[key] = factory()
    return store[key]


def _runs() -> _Runs:
    return _cell_state(_RUNS, _Runs)


def _active() -> bool:
    return in_notebook() and not quiet()


def run_started(desc: str, epochs: int, start: int = 0) -> None:
    """A training run begins (``start`` epochs already done when it resumes)."""
    if _active():
        runs = _runs()
        runs.current = desc
        runs.show(f"{desc}, epoch {start}/{epochs}")


def epoch_done(desc: str, epoch: int, epochs: int, eta_s: float | None = None) -> None:
    """Epoch ``epoch`` (1-based) of ``epochs`` of run ``desc`` is done."""
    if _active():
        eta = f", ETA {fmt_seconds(eta_s)}" if eta_s is not None and epoch < epochs else ""
        _runs().show(f"{desc}, epoch {epoch}/{epochs}{eta}")


def _pct(x) -> str:
    s = fmt_pct(x)
    return s if s == MISSING else f"{s}%"


def run_summary(desc: str, *, best_epoch, epochs, val_top1, val_n, top1, n,
                seconds: float | None = None) -> str:  # fmt: skip
    """The one line a notebook shows for a finished run."""
    took = f", {fmt_seconds(seconds)}" if seconds is not None else ""
    return (f"{desc}: epoch {best_epoch}/{epochs} selected; val top-1 {_pct(val_top1)} "
            f"(n={val_n}), test top-1 {_pct(top1)} (n={n}){took}")  # fmt: skip


def run_finished(desc: str, **summary) -> None:
    """A run is done: in a notebook, its summary line (:func:`run_summary`) and the live line
    updated to the count of finished runs. Nothing in a terminal (``fit`` printed its epochs)."""
    if not _active():
        return
    runs = _runs()
    runs.finished += 1
    runs.current = None
    runs.show()
    print(run_summary(desc, **summary), flush=True)


__all__ = [
    "LiveLine",
    "NotebookBar",
    "bar",
    "epoch_done",
    "fmt_seconds",
    "in_notebook",
    "run_finished",
    "run_started",
    "run_summary",
]
