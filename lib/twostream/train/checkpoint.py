"""Checkpoints that resume *exactly*: model, optimizer, scheduler, scaler, epoch, RNG states
and the resolved config, written atomically so a kill at any moment leaves a usable file.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path
from typing import Any

from twostream.core.checkpoint_io import (
    load_model_state,
    model_state,
    read_torch_file,
    unwrap_model,
)
from twostream.core.errors import UserError
from twostream.core.params_io import to_jsonable
from twostream.core.runtime import atomic_torch_save
from twostream.train.rundir import RunDir


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unwrap(model):
    """The bare model inside torch.compile / DDP wrappers, in any nesting."""
    return unwrap_model(model)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model,
    epoch: int,
    config: Any,
    optimizer=None,
    scheduler=None,
    scaler=None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save everything needed to continue after ``epoch`` (0-based, completed)."""
    payload = {
        # the bare model's keys, whatever wraps it (torch.compile: _orig_mod., DDP: module.)
        "model": model_state(model),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "rng": rng_state(),
        "config": to_jsonable(config),
        "extra": extra or {},
    }
    try:
        return atomic_torch_save(payload, path)
    except OSError as exc:
        raise save_error(path, exc) from None
    except RuntimeError as exc:  # torch's zip writer: "PytorchStreamWriter failed writing ..."
        if "PytorchStreamWriter" not in str(exc) and "write failed" not in str(exc):
            raise
        raise save_error(path, exc) from None


def _free_mib(folder: Path) -> float | None:
    try:
        return shutil.disk_usage(folder).free / 2**20
    except OSError:
        return None


def save_error(path: str | os.PathLike, exc: BaseException) -> UserError:
    """A failed checkpoint write as one line naming the file: no space left, a read-only
    folder, or what the OS said. The previous checkpoint is intact (atomic writes)."""
    p = Path(path)
    code = getattr(exc, "errno", None)
    free = _free_mib(p.parent)
    keep = "the previous checkpoint is intact and a resumed run continues from it"
    if code in (errno.ENOSPC, errno.EDQUOT) or (code is None and free is not None and free < 64):
        where = f" ({free:.0f} MiB free)" if free is not None else ""
        return UserError(
            f"cannot write {p}: no space left on the device{where}; free space (or move "
            f"data_root), then rerun: {keep}"
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = "read-only file system" if code == errno.EROFS else "permission denied"
        return UserError(
            f"cannot write {p}: the folder {p.parent} is read-only ({what}); make it "
            f"writable or train into another --run-dir / data_root"
        )
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    return UserError(f"cannot write {p}: {reason}; {keep}")


def _unreadable(p: Path, reason: str) -> UserError:
    """What to do about an unreadable checkpoint, by which one it is."""
    run = p.parent
    if p.name == RunDir.LAST:
        fix = (
            f"it is the last checkpoint of a partial run: delete it to restart that run from "
            f"its first epoch (or delete the run folder {run} to start it from nothing)"
        )
    elif p.name == RunDir.BEST:
        fix = f"the run's selected weights are lost: delete the run folder {run} and train it again"
    else:
        fix = "delete it and write it again"
    return UserError(f"checkpoint {p} is {reason}; {fix}")


def read_checkpoint(path: str | os.PathLike, *, map_location="cpu", mmap: bool = False) -> dict:
    """``torch.load`` of a checkpoint this module wrote, a missing, empty, truncated or
    foreign file refused as one ``UserError`` naming it and what to do (by which file it is:
    a partial run's ``checkpoint_last.pt``, a run's ``checkpoint_best.pt``)."""
    p = Path(path)
    payload = read_torch_file(p, map_location=map_location, mmap=mmap, unreadable=_unreadable,
                              missing_hint="train the run first (or check the path)")  # fmt: skip
    if not isinstance(payload, dict) or "model" not in payload or "epoch" not in payload:
        raise _unreadable(p, "not a checkpoint written by twostream (no model state or epoch)")
    return payload


def checkpoint_epoch(path: str | os.PathLike) -> int:
    """The 1-based epoch a checkpoint holds (memory-mapped: only the small fields are read)."""
    return int(read_checkpoint(path, mmap=True)["epoch"]) + 1


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model=None,
    optimizer=None,
    scheduler=None,
    scaler=None,
    restore_rng: bool = True,
    map_location="cpu",
) -> dict[str, Any]:
    """Load a checkpoint into the given objects; returns the raw payload (epoch, config, extra)."""
    payload = read_checkpoint(path, map_location=map_location)
    if model is not None:
        load_model_state(model, payload["model"])  # wrapped or bare, either side
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload.get("scheduler") is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload.get("scaler") is not None:
        scaler.load_state_dict(payload["scaler"])
    if restore_rng and payload.get("rng") is not None:
        set_rng_state(payload["rng"])
    return payload
