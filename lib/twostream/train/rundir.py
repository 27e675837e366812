"""One training run's folder: every path in it, the one "finished" rule, and its files' I/O.

Both trainers (a stream, a fusion + ConvLSTM head) write the same layout::

    <run>/config.json           the resolved config of the run (written first)
    <run>/metrics.csv           one row per epoch (rewritten after every epoch)
    <run>/checkpoint_last.pt    model, optimizer, scheduler, scaler, epoch, RNG, history
    <run>/checkpoint_best.pt    the weights of the selected epoch
    <run>/scores_val.npz        per-video softmax scores, labels and video names
    <run>/scores_test.npz
    <run>/results.json          what the run measured, with "complete": true (written last)

A run is finished when ``results.json`` exists and says complete (and, when asked, was made
with the same config): nothing else decides it. Every reader and writer of a run goes
through :class:`RunDir`; no other module spells these names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from twostream.core.errors import UserError
from twostream.core.params_io import save_json, to_jsonable
from twostream.core.runtime import atomic_path

PARTS = ("val", "test")


class RunDir:
    """A run folder (it need not exist yet)."""

    CONFIG = "config.json"
    METRICS = "metrics.csv"
    LAST = "checkpoint_last.pt"
    BEST = "checkpoint_best.pt"
    RESULTS = "results.json"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def __eq__(self, other) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def last_checkpoint(self) -> Path:
        return self.path / self.LAST

    @property
    def best_checkpoint(self) -> Path:
        return self.path / self.BEST

    def best_checkpoint_for(self, part: str) -> Path:
        """The checkpoint of the epoch ``part`` would select (``engine.fit(also_keep=...)``):
        ``checkpoint_best.pt`` for the run's own selection part, else
        ``checkpoint_best_<part>.pt``."""
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; known: {PARTS}")
        return self.path / f"checkpoint_best_{part}.pt"

    @property
    def results_path(self) -> Path:
        return self.path / self.RESULTS

    def scores_path(self, part: str) -> Path:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; known: {PARTS}")
        return self.path / f"scores_{part}.npz"

    def mkdir(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    # ------------------------------------------------------------------ config
    def write_config(self, config: Any) -> None:

        save_json(config, self.config_path)

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise UserError(f"{self.config_path} not found: {self.path} is not a run folder")
        return json.loads(self.config_path.read_text())

    # ------------------------------------------------------------------ metrics
    def write_metrics(self, rows: list[dict]) -> None:
        import pandas as pd

        with atomic_path(self.metrics_path) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)

    def read_metrics(self):
        import pandas as pd

        if not self.metrics_path.is_file():
            raise UserError(f"{self.metrics_path} not found: the run has not finished an epoch")
        return pd.read_csv(self.metrics_path)

    # ------------------------------------------------------------------ scores
    def save_scores(self, part: str, *, scores, labels, videos) -> Path:
        """Per-video scores (N, K), labels (N,) and video names (N,) of ``part``."""

        path = self.scores_path(part)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                scores=np.asarray(scores),
                labels=np.asarray(labels),
                videos=np.asarray([str(v) for v in videos], dtype=str),
            )
        return path

    def load_scores(self, part: str) -> dict[str, np.ndarray]:
        path = self.scores_path(part)
        if not path.is_file():
            raise UserError(f"{path} not found: the run did not finish; rerun it to resume")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # ------------------------------------------------------------------ results
    def write_results(self, info: dict[str, Any]) -> None:
        """``results.json`` with ``complete: true``: written last, it marks the run finished."""

        save_json({**info, "complete": True}, self.results_path)

    def read_results(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.results_path.read_text())
        except (OSError, ValueError):
            return None

    def is_finished(self, config: Any = None) -> bool:
        """results.json says complete (and the run's config equals ``config`` when given)."""
        info = self.read_results()
        if not info or not info.get("complete"):
            return False
        if config is None:
            return True

        return info.get("config") == json.loads(json.dumps(to_jsonable(config)))


__all__ = ["PARTS", "RunDir"]
