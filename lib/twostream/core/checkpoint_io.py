"""Reading ``torch.save`` files safely, and model state dicts through wrappers.

Below ``models`` and ``train`` so both read checkpoints the same way:

* :func:`read_torch_file` is ``torch.load`` with a missing, empty, truncated or corrupt file
  refused as one ``UserError`` naming it (never a zip-reader traceback);
* :func:`unwrap_model` / :func:`strip_wrapper_prefixes`: ``torch.compile`` wraps a model in an
  ``OptimizedModule`` whose state-dict keys start with ``_orig_mod.``, DDP (and
  ``DataParallel``) in one whose keys start with ``module.``, in any nesting
  (``torch.compile(DDP(model))`` gives ``_orig_mod.module.``). Checkpoints hold the bare
  model's keys; a file written with wrapper prefixes (older releases saved compiled models
  as they were) loads too, its prefixes stripped.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from twostream.core.errors import UserError

COMPILE_PREFIX = "_orig_mod."  # torch.compile's OptimizedModule
DDP_PREFIX = "module."  # DistributedDataParallel / DataParallel


def unwrap_model(model):
    """The bare ``nn.Module`` inside any nesting of torch.compile and DDP / DataParallel."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, torch.nn.DataParallel | torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def strip_wrapper_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """State-dict keys without the wrappers' prefixes: every ``_orig_mod.`` segment (a name no
    module of ours has; torch.compile of a submodule puts it inside the key) and the
    ``module.`` prefixes in front (only there: inside, it could be a real submodule's name)."""
    out = {}
    for key, value in state.items():
        key = key.replace(COMPILE_PREFIX, "")
        while key.startswith(DDP_PREFIX):
            key = key[len(DDP_PREFIX) :]
        out[key] = value
    return out


def model_state(model) -> dict[str, Any]:
    """``state_dict()`` of the bare model, whatever wraps it (what a checkpoint stores)."""
    return strip_wrapper_prefixes(unwrap_model(model).state_dict())


def load_model_state(model, state: Mapping[str, Any]) -> None:
    """Load ``state`` (bare or wrapped keys) into ``model`` (bare or wrapped), strictly."""
    unwrap_model(model).load_state_dict(strip_wrapper_prefixes(state))


def _unreadable(p: Path, reason: str) -> UserError:
    return UserError(f"{p} is {reason}; delete it and write it again")


def read_torch_file(
    path: str | os.PathLike,
    *,
    what: str = "checkpoint",
    map_location="cpu",
    mmap: bool = False,
    weights_only: bool = False,
    missing_hint: str = "check the path",
    unreadable: Callable[[Path, str], UserError] | None = None,
) -> Any:
    """``torch.load`` of ``path``; a missing, empty, unreadable, truncated or corrupt file as
    one ``UserError``: ``"<what> <path> not found; <missing_hint>"``, or ``unreadable(path,
    reason)`` (default: ``"<path> is <reason>; delete it and write it again"``). A CUDA error
    (a GPU checkpoint mapped onto a machine without one) is the device's, raised as it is."""
    p = Path(path)
    bad = unreadable or _unreadable
    if not p.is_file():
        raise UserError(f"{what} {p} not found; {missing_hint}")
    if p.stat().st_size == 0:
        raise bad(p, "empty (0 bytes)")
    try:
        return torch.load(p, map_location=map_location, weights_only=weights_only, mmap=mmap)
    except PermissionError:
        raise UserError(f"{what} {p} cannot be read (permission denied)") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as exc:
        if isinstance(exc, RuntimeError) and "CUDA" in str(exc):
            raise  # a device problem, not the file's
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise bad(p, f"truncated or corrupt ({first.split('. ')[0]})") from None


__all__ = [
    "COMPILE_PREFIX",
    "DDP_PREFIX",
    "load_model_state",
    "model_state",
    "read_torch_file",
    "strip_wrapper_prefixes",
    "unwrap_model",
]
