"""Where a head's feature maps are held while it trains: the memory budgets (a share of the machine's RAM and of the GPU's free memory), a counter of the bytes read from disk, and one store of held maps per process, shared by every head that reads the same cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

# Where FeatureCache holds maps (float16, as stored) so that epochs after the first, and other
# heads of the same process reading the same folders, do not touch the disk again. Sized from
# what the machine has: a fraction of the physical RAM (and, for a CUDA head, of the GPU
# memory free when the store first sees that GPU). Environment overrides:
# TWOSTREAM_CACHE_RAM_BYTES (absolute), TWOSTREAM_CACHE_RAM_FRACTION, TWOSTREAM_CACHE_GPU_FRACTION
# (0 turns a tier off).
RAM_FRACTION = 0.5


GPU_FRACTION = 0.5


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else float(default)


def physical_ram_bytes() -> int:
    """The machine's RAM (``SC_PHYS_PAGES x SC_PAGE_SIZE``; 0 where unknown)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 0


def ram_budget() -> int:
    """Bytes of feature maps the process may hold in RAM: ``TWOSTREAM_CACHE_RAM_BYTES`` when
    set, else ``TWOSTREAM_CACHE_RAM_FRACTION`` (default 0.5) of the physical RAM."""
    explicit = os.environ.get("TWOSTREAM_CACHE_RAM_BYTES")
    if explicit not in (None, ""):
        return int(float(explicit))
    return int(_env_float("TWOSTREAM_CACHE_RAM_FRACTION", RAM_FRACTION) * physical_ram_bytes())


def gpu_budget(device: torch.device) -> int:
    """Bytes of feature maps the process may hold on ``device`` (a CUDA device):
    ``TWOSTREAM_CACHE_GPU_FRACTION`` (default 0.5) of its free memory now; 0 off CUDA."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return 0
    free, _ = torch.cuda.mem_get_info(device)
    return int(_env_float("TWOSTREAM_CACHE_GPU_FRACTION", GPU_FRACTION) * free)


class ReadCounter:
    """Logical bytes of feature maps the process read from cache files (for benchmarks and
    tests): every map copied out of a file counts its ``nbytes``, whatever serves it."""

    def __init__(self) -> None:
        self.bytes = 0
        self.maps = 0

    def add(self, nbytes: int) -> None:
        self.bytes += int(nbytes)
        self.maps += 1

    def reset(self) -> dict[str, int]:
        out = {"bytes": self.bytes, "maps": self.maps}
        self.bytes = self.maps = 0
        return out


READS = ReadCounter()


def open_map(path: str | os.PathLike) -> np.ndarray:
    """A video's stored map, memory-mapped read-only (nothing is read until it is used)."""
    return np.load(path, mmap_mode="r")


def read_map(path: str | os.PathLike) -> np.ndarray:
    """A video's stored map, read into memory in its stored dtype (float16)."""
    arr = np.array(open_map(path))  # one copy out of the mapping, no float32 on the host
    READS.add(arr.nbytes)
    return arr


def file_key(path: Path) -> tuple:
    st = path.stat()  # a rewritten file (new checkpoint, atomic rename) is a new key
    return str(path), st.st_ino, st.st_mtime_ns, st.st_size


class HeldMaps:
    """The process-wide store of maps held in memory, keyed by (file, inode, mtime, size).

    A FeatureCache *claims* the keys of the maps it reads: those already held are shared (the
    heads of Table 3, their seeds and the audit, or Table 1's methods at one tap, read a cache
    once per process), the others are read once and held while the budget allows: first on
    the head's GPU (when it is one), then in RAM. Maps no live cache claims stay held for the
    next head and are dropped, least recently claimed first, only when space is needed.
    """

    def __init__(self) -> None:
        self._maps: dict[tuple, torch.Tensor] = {}
        self._users: dict[tuple, int] = {}
        self._order: dict[tuple, None] = {}  # least recently claimed first
        self._by_path: dict[str, tuple] = {}
        self._used = {"cpu": 0}
        self._budget: dict[str, int] = {}

    def budget(self, tier: str) -> int:
        if tier not in self._budget:
            self._budget[tier] = ram_budget() if tier == "cpu" else gpu_budget(torch.device(tier))
            self._used.setdefault(tier, 0)
        return self._budget[tier]

    def held(self) -> dict[str, int]:
        """Bytes held per tier."""
        return {t: n for t, n in self._used.items() if n}

    def clear(self) -> None:
        self.__init__()

    def get(self, key: tuple) -> torch.Tensor | None:
        return self._maps.get(key)

    def _evict(self, tier: str, need: int) -> bool:
        if self._used[tier] + need <= self.budget(tier):
            return True
        for key in list(self._order):
            if self._used[tier] + need <= self.budget(tier):
                break
            t = self._maps.get(key)
            if t is not None and not self._users.get(key) and _tier(t) == tier:
                self._drop(key)
        return self._used[tier] + need <= self.budget(tier)

    def _drop(self, key: tuple) -> None:
        t = self._maps.pop(key)
        self._used[_tier(t)] -= t.nbytes
        self._order.pop(key, None)
        self._users.pop(key, None)

    def claim(self, key: tuple, nbytes: int, tiers: Sequence[str], force: bool = False) -> bool:
        """Hold the map of ``key`` (reading it now) if it is not held and fits one of
        ``tiers`` (``force``: the last tier whatever its budget); count a user of it."""
        if key not in self._maps:
            for i, tier in enumerate(tiers):
                self.budget(tier)
                if self._evict(tier, nbytes) or (force and i == len(tiers) - 1):
                    old = self._by_path.get(key[0])
                    if old is not None and old in self._maps and not self._users.get(old):
                        self._drop(old)  # the same file, older contents
                    t = torch.from_numpy(read_map(key[0]))
                    if tier != "cpu":
                        t = t.to(tier)
                    self._maps[key] = t
                    self._by_path[key[0]] = key
                    self._used[tier] += t.nbytes
                    break
            else:
                return False
        self._users[key] = self._users.get(key, 0) + 1
        self._order.pop(key, None)
        self._order[key] = None
        return True

    def release(self, keys: Sequence[tuple]) -> None:
        for key in keys:
            if self._users.get(key):
                self._users[key] -= 1


def _tier(t: torch.Tensor) -> str:
    return "cpu" if t.device.type == "cpu" else str(t.device)


HELD = HeldMaps()
