"""Checkpoints that resume *exactly*: model, optimizer, scheduler, scaler, epoch, RNG states
and the resolved config, written atomically so a kill at any moment leaves a usable file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from twostream.core.config import to_jsonable
from twostream.core.runtime import atomic_torch_save


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
    return getattr(model, "module", model)  # DDP / compile wrappers


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
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "rng": rng_state(),
        "config": to_jsonable(config),
        "extra": extra or {},
    }
    return atomic_torch_save(payload, path)


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
    import torch

    payload = torch.load(path, map_location=map_location, weights_only=False)
    if model is not None:
        _unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload.get("scheduler") is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload.get("scaler") is not None:
        scaler.load_state_dict(payload["scaler"])
    if restore_rng and payload.get("rng") is not None:
        set_rng_state(payload["rng"])
    return payload
