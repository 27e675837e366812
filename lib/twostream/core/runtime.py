"""Small shared helpers: project paths, seeding, atomic writes, device and precision.

Everything that writes to disk in this project goes through the atomic helpers here:
write to a temporary file in the same folder, fsync, then ``os.replace``. A crash (or
``kill -9``) therefore leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.std import tqdm

from twostream.core.errors import UserError
from twostream.core.progress import bar as notebook_bar
from twostream.core.progress import in_notebook

# ----------------------------------------------------------------------------- paths


def project_root() -> Path:
    """The repository root: $TWOSTREAM_ROOT, else the nearest parent holding params/ and
    pyproject.toml (notebooks run with their own folder as cwd), else the cwd."""
    env = os.environ.get("TWOSTREAM_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "params").is_dir():
            return candidate
    return here


def resolve_path(path: str | os.PathLike) -> Path:
    """Relative paths in configs are relative to the project root, not to the cwd."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def results_dir() -> Path:
    """Where tables, figures and executed notebooks go ($TWOSTREAM_RESULTS overrides)."""
    env = os.environ.get("TWOSTREAM_RESULTS")
    return Path(env).resolve() if env else project_root() / "results"


# ----------------------------------------------------------------------------- seeding


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices). The one place the project seeds."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
    except ImportError:  # pragma: no cover
        pass


# ----------------------------------------------------------------------------- atomic I/O

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


@contextlib.contextmanager
def stage_lock(output: str | os.PathLike, *, what: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on a stage's output (``<parent>/.locks/<name>.lock``).

    Two notebooks (or a notebook and a command) that need the same stage then build it
    once: the second waits and reuses the first one's result. The lock is a ``filelock``
    (flock on POSIX), released by the kernel when its process dies, so a ``kill -9`` never
    leaves it stuck. Callers check "already done?" *inside* the lock. Under torchrun
    (WORLD_SIZE > 1) every rank must take part in the computation, so no lock is taken.
    """
    import filelock

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    out = Path(output)
    lock_dir = out.parent / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_dir / f"{out.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        import sys

        print(f"waiting for another process building {what or out}", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------- device


def resolve_device(device: str = "auto"):
    """'auto' -> cuda when available, else cpu. Asking for cuda without one is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device {device!r} requested but CUDA is not available; use device: cpu or auto"
        )
    return dev


def autocast_context(device, enabled: bool = True):
    """bf16 autocast on CUDA; a null context on CPU (bf16 on CPU is slow and changes results)."""
    import torch

    dev = torch.device(device)
    if enabled and dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_description(device=None) -> str:
    """A human-readable device name for provenance: GPU model or CPU model + core count."""
    try:
        import torch

        if (
            device is not None
            and torch.device(device).type == "cuda"
            or (device is None and torch.cuda.is_available())
        ):
            idx = torch.device(device).index if device is not None else None
            return f"cuda: {torch.cuda.get_device_name(idx or 0)}"
    except ImportError:  # pragma: no cover
        pass
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu: {cpu} ({os.cpu_count()} cores)"


def progress(iterable=None, **kwargs):
    """tqdm with the project's defaults (quiet when TWOSTREAM_QUIET=1).

    TWOSTREAM_QUIET=1 wins over a caller's ``disable=False``: the tests and the batch runs set
    it to keep logs free of bars, whatever a caller asks for. In a terminal the bar is tqdm's
    text bar; in a notebook kernel it is never a widget (:mod:`twostream.core.progress`:
    inner ``leave=False`` bars are off, the others one line of text updated in place that
    ends as a summary), so an executed notebook keeps neither widget state nor frozen bars."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs["disable"] = bool(kwargs.get("disable")) or os.environ.get("TWOSTREAM_QUIET") == "1"
    kwargs.setdefault("mininterval", 1.0)
    if in_notebook():
        return notebook_bar(iterable, **kwargs)
    return tqdm(iterable, **kwargs)
