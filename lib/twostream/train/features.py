"""Feature-map cache: both fine-tuned streams' maps at named taps, per video, float16.

Why a cache: the ConvLSTM of Tables 1 and 2 trains for tens of epochs on frozen stream
features, so the ResNets run *once* per video here and every ConvLSTM epoch afterwards only
reads arrays (the authors' code did the same offline). Layout (one file per video, stream
and tap, so extraction is resumable and trivially shardable)::

    <features>/<stream>-<backbone>-<tap>-split<k>-<key>/<Class>/<video stem>.npy   (T, C, H, W) float16
    <features>/<stream>-<backbone>-<tap>-split<k>-<key>/manifest.json    shapes, dtype, checkpoint

``stream`` is ``spatial`` or ``temporal``; ``tap`` one of ``models.TAPS`` (``fc`` stores
(T, C) vectors); the folder is the ``features`` stage of :mod:`twostream.pipeline.graph`: its key
hashes the sampling knobs and the stream run's key, and the manifest records the SHA-1 of
the stream checkpoint the maps came from, so new weights or another T never reuse stale maps.

Extraction: all requested taps come out of ONE forward pass; many videos' T steps go
through the network together (``batch_videos`` x T images per forward), on the GPU with bf16
autocast and channels_last when there is one; under ``torchrun`` rank r takes videos
r::world. Videos are processed in fixed chunks of the rank's shard, and a chunk is recomputed
as a whole when any of its files is missing, so batch composition (hence every number) is
the same after a ``kill -9`` and a rerun; each file is written atomically.

Disk (float16, per video and stream = T x H x W x C x 2 bytes; see :func:`disk_table`):
at the paper's scale (ResNet-101, 224 input, T = 25, UCF101's 13,320 videos) conv5_x is
7x7x2048 -> 5.0 MB per video and stream, 67 GB per stream, 134 GB for both; conv4_x
(14x14x1024) and conv5_x_inner (torchvision's bottleneck: 7x7x512 -> 1.25 MB) differ as the
table says; conv3_x (28x28x512) is 20 MB / 267 GB per stream; fc (2048-d) 0.1 MB. Storing the
*fused* maps of a parameter-free fusion once (:func:`prefuse`) halves that for ``max`` (a max of
float16 values is float16); a ``sum`` is stored as the float32 sum the head computes (a
float16 sum would round it and change the numbers), the same bytes as both streams.

Reading (:class:`FeatureCache`): maps stay float16 from the file to the training device
(memory-mapped, converted to float32 there: :func:`twostream.train.head_trainer.to_device`);
single-stream heads read their stream only; maps are held in RAM (and on the head's GPU) up
to a budget sized from the machine (:func:`ram_budget`, :func:`gpu_budget`), read once and
shared by every head of the process (:data:`HELD`), so the epochs after the first, the
per-epoch val and test passes and Table 3's other heads read nothing from disk when the
cache fits. ``benchmarks/head_io.py`` counts the bytes (:data:`READS`).

Resuming ``extract-features``: the manifest naming the checkpoint is written before the
first map; the ``features`` stage removes only folders of another checkpoint
(:func:`clear_stale_cache`) and extracts the videos still missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.core.names import MISALIGN_MODES, MODALITY
from twostream.core.params_io import save_json
from twostream.core.runtime import atomic_path, autocast_context, progress
from twostream.core.threads import loader_kwargs
from twostream.data.datasets import VideoSteps
from twostream.data.transforms import eval_transform
from twostream.models import streams as models
from twostream.models.fusion import build_fusion, is_parameter_free
from twostream.models.streams import load_stream, tap_channels
from twostream.train import distributed as dist
from twostream.train import engine
from twostream.train.feature_store import HELD, file_key, open_map, read_map

MANIFEST = "manifest.json"
DTYPE = np.float16
FLOAT16_MAX = float(np.finfo(np.float16).max)
# The fixed "cache fits in RAM" threshold the cost model (study/costs.py) prices head reads
# with; FeatureCache itself holds what fits in ram_budget() (a fraction of the machine's RAM).
IN_MEMORY_LIMIT = int(os.environ.get("TWOSTREAM_CACHE_RAM_BYTES", 2 * 1024**3))


# ----------------------------------------------------------------------------- naming


def check_taps(taps: Sequence[str] | str) -> tuple[str, ...]:
    """Validate tap names (a list or "a,b") against ``models.TAPS``, de-duplicated."""

    if isinstance(taps, str):
        taps = [t.strip() for t in taps.split(",") if t.strip()]
    return models.check_taps(tuple(dict.fromkeys(taps)))


def file_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes (the checkpoint's identity in the cache key)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def feature_path(folder: str | os.PathLike, video: str) -> Path:
    """``Class/v_x.avi`` -> ``<folder>/Class/v_x.npy``."""
    rel = Path(video)
    return Path(folder) / rel.parent / f"{rel.stem}.npy"


def save_npy(path: Path, array: np.ndarray) -> None:
    # np.save(path) would append ".npy" to the temporary name: write through a handle.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def read_cache_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    p = Path(folder) / MANIFEST
    return json.loads(p.read_text()) if p.is_file() else None


def missing_videos(folder: str | os.PathLike, videos: Sequence[str]) -> list[str]:
    return [v for v in videos if not feature_path(folder, v).is_file()]


# ----------------------------------------------------------------------------- extraction


class _Chunks(torch.utils.data.Dataset):
    """Chunk k -> the stacked inputs (n, T, C, H, W) of its videos (decoded in workers)."""

    def __init__(self, dataset, chunks: list[list[int]]):
        self.dataset, self.chunks = dataset, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int):
        xs = [torch.as_tensor(self.dataset[i][0]) for i in self.chunks[k]]
        return k, torch.stack(xs)  # (n, T, C, H, W)


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    dataset,
    videos: Sequence[str],
    out_dirs: Mapping[str, str | os.PathLike],
    *,
    batch_videos: int = 4,
    device: str | torch.device = "cpu",
    amp: bool = True,
    rank: int = 0,
    world: int = 1,
    num_workers: int = 0,
    desc: str = "features",
) -> dict[str, int]:
    """Write ``out_dirs[tap]/<Class>/<stem>.npy`` for every video of this rank's shard.

    ``dataset[i]`` -> ``(x (T, C, H, W), label)`` for ``videos[i]``; ``model.features(x,
    taps)`` -> ``{tap: (N, C, H, W) or (N, C)}``. Existing files are kept (resume). Returns
    counts of videos computed and skipped on this rank.
    """
    if len(dataset) != len(videos):
        raise ValueError(f"dataset has {len(dataset)} items but {len(videos)} video names")
    taps = list(out_dirs)
    dev = torch.device(device)
    shard = list(range(rank, len(videos), world))
    # Fixed chunks of the shard: a chunk is recomputed whole, so batches never change.
    chunks = [shard[i : i + batch_videos] for i in range(0, len(shard), batch_videos)]
    todo = [
        c
        for c in chunks
        if any(not feature_path(out_dirs[t], videos[i]).is_file() for i in c for t in taps)
    ]
    stats = {"computed": 0, "skipped": len(shard) - sum(len(c) for c in todo)}
    if not todo:
        return stats
    model = model.to(dev).eval()
    channels_last = dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(
        _Chunks(dataset, todo),
        batch_size=None,
        pin_memory=dev.type == "cuda",
        **loader_kwargs(num_workers),
    )
    for k, x in progress(loader, total=len(todo), desc=desc, unit="chunk"):
        n, T = x.shape[:2]
        x = x.flatten(0, 1).to(dev, non_blocking=True).float()  # (n*T, C, H, W)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(dev, amp):
            feats = model.features(x, taps)
        for tap in taps:
            f = feats[tap].float().unflatten(0, (n, T))  # (n, T, C[, H, W])
            # float16 saturates at 65504: an untrained or diverged network can exceed it,
            # and a silent inf would poison every ConvLSTM trained on the cache.
            big = int((f.abs() > FLOAT16_MAX).sum())
            if big:
                warnings.warn(
                    f"{tap}: {big} feature values exceed the float16 range and were clipped "
                    f"to +-{FLOAT16_MAX:g}; check the stream checkpoint (untrained or diverged?)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                f = f.clamp(-FLOAT16_MAX, FLOAT16_MAX)
            arr = f.cpu().numpy().astype(DTYPE)
            for j, i in enumerate(todo[k]):
                path = feature_path(out_dirs[tap], videos[i])
                if not path.is_file():
                    save_npy(path, np.ascontiguousarray(arr[j]))
        stats["computed"] += n
    return stats


def write_manifest(folder: str | os.PathLike, videos: Sequence[str], **info: Any) -> Path:
    """``manifest.json``: per-video shape, dtype, bytes, completeness and provenance."""
    folder = Path(folder)
    missing = missing_videos(folder, videos)
    shape, dtype = None, np.dtype(DTYPE)
    gone = set(missing)
    present = [v for v in videos if v not in gone]
    if present:
        first = open_map(feature_path(folder, present[0]))
        shape, dtype = list(first.shape), first.dtype
    values = int(np.prod(shape)) if shape else None
    return save_json(
        {
            **info,
            "dtype": dtype.name,
            "shape": shape,  # per video: (T, C, H, W), or (T, C) for fc
            "values_per_video": values,
            "bytes_per_video": None if values is None else values * dtype.itemsize,
            "videos": len(videos),
            "missing": len(missing),
            "complete": not missing,
            "layout": "<Class>/<video stem>.npy",
        },
        folder / MANIFEST,
    )


def clear_stale_cache(folder: str | os.PathLike, checkpoint_sha1: str) -> bool:
    """Remove ``folder`` unless its manifest says its maps come from the checkpoint of SHA-1
    ``checkpoint_sha1`` (a folder without a manifest has unknown provenance: removed).
    Returns True when it was removed. What is kept is resumed video by video."""
    folder = Path(folder)
    if not folder.exists():
        return False
    if (read_cache_manifest(folder) or {}).get("checkpoint_sha1") == checkpoint_sha1:
        return False
    shutil.rmtree(folder)
    return True


def extract_stream(cfg: StudyConfig, *, stream: str, records, checkpoint: Path,
                   dirs: Mapping[str, Path], batch_videos: int | None = None,
                   checkpoint_sha1: str | None = None) -> None:  # fmt: skip
    """Extract one stream's taps ``dirs`` (``{tap: folder}``) for ``records`` with the
    stream ``checkpoint``, then write each folder's manifest (the ``features`` stage).

    Resumable: a manifest naming the checkpoint (``complete: false``) is written *before*
    the first map, every map is written atomically, and videos whose maps exist are not
    recomputed (a chunk of ``batch_videos`` is recomputed whole, so the numbers are those
    of an uninterrupted run). The caller removes folders of another checkpoint first
    (:func:`clear_stale_cache`)."""

    device, rank, world = engine.setup_device(cfg)
    if batch_videos is None:
        batch_videos = 16 if device.type == "cuda" else 4
    videos = [r.path for r in records]
    modality = MODALITY[stream]
    sha = checkpoint_sha1 or file_digest(checkpoint)
    head = dict(stream=stream, modality=modality, backbone=cfg.backbone)
    tail = dict(checkpoint=str(checkpoint), checkpoint_sha1=sha, config=cfg.to_dict())
    if dist.is_main():
        for tap, d in dirs.items():
            m = read_cache_manifest(d) or {}
            if m.get("checkpoint_sha1") != sha:  # records where the maps come from
                write_manifest(d, videos, **head, tap=tap, **tail)
    dist.barrier()
    dataset = VideoSteps(records, cfg.rawframes_dir, modality=modality,
                         num_segments=cfg.num_segments, flow_length=cfg.flow_length,
                         transform=eval_transform(cfg, modality))  # fmt: skip
    extract_features(load_stream(checkpoint), dataset, videos, dirs, batch_videos=batch_videos,
                     device=device, amp=cfg.amp, rank=rank, world=world,
                     num_workers=cfg.num_workers, desc=f"{stream} features")  # fmt: skip
    dist.barrier()
    if dist.is_main():
        for tap, d in dirs.items():
            write_manifest(d, videos, **head, tap=tap, **tail)
    dist.barrier()


# ----------------------------------------------------------------------------- pre-fusion


def prefused_dtype(method: str) -> np.dtype:
    """The dtype a pre-fused map is stored in so that a head reading it sees exactly the
    values it computes from the two float16 maps: ``max`` of two float16 values is one of
    them (float16, half the bytes of two maps); a float16 ``sum`` would be rounded, so the
    float32 sum is stored (the head's own float32 ``a + b``: the same bytes as two maps, one
    file and no fusion per read instead of two)."""
    return np.dtype(DTYPE) if method == "max" else np.dtype(np.float32)


def prefuse(dirs: Mapping[str, str | os.PathLike], method: str, videos: Sequence[str]) -> Path:
    """Store ``method(spatial, temporal)`` once for a parameter-free fusion (sum, max).

    Writes ``fused<method>-<rest of the spatial folder name>-<hash>`` beside the stream
    folders (atomic, resumable) and returns it. Learned fusions (conv) must see both streams.
    The stored values are exactly those the head fuses from the two streams
    (:func:`prefused_dtype`), so a pre-fused head trains like the two-stream one.
    """

    if not is_parameter_free(method):
        raise UserError(
            f"fusion {method!r} learns parameters, so its input cannot be pre-fused; "
            "pre-fuse only parameter-free methods (sum, max)"
        )
    a_dir, b_dir = Path(dirs["spatial"]), Path(dirs["temporal"])
    dtype = prefused_dtype(method)
    # float32 sums went to a new folder name: an older float16 (rounded) cache is never reused
    suffix = "" if dtype == np.dtype(DTYPE) else f"|{dtype.name}"
    tag = hashlib.sha1(f"{a_dir.name}|{b_dir.name}{suffix}".encode()).hexdigest()[:8]
    rest = a_dir.name.split("-", 1)[1].rsplit("-", 1)[0]  # <backbone>-<tap>
    out = a_dir.parent / f"fused{method}-{rest}-{tag}"
    todo = missing_videos(out, videos)
    if todo:
        fusion = None
        for v in todo:
            a = torch.from_numpy(read_map(feature_path(a_dir, v))).float()
            b = torch.from_numpy(read_map(feature_path(b_dir, v))).float()
            if fusion is None:
                fusion = build_fusion(method, channels=a.shape[1])
            y = fusion(a, b)  # (T, C', ...): T is the batch axis of a per-step fusion
            save_npy(feature_path(out, v), y.numpy().astype(dtype))
    if not (read_cache_manifest(out) or {}).get("complete"):
        write_manifest(
            out, videos, fusion=method, spatial=str(a_dir), temporal=str(b_dir), prefused=True
        )
    return out


# ----------------------------------------------------------------------------- reading


# ----------------------------------------------------------------------------- dataset


STREAM_OF = {"spatial": ("spatial",), "temporal": ("temporal",)}


def streams_read(method: str | None) -> tuple[str, ...] | None:
    """The streams a head with fusion ``method`` reads: one for the single-stream heads
    (``spatial``, ``temporal``: their fusion ignores the other map), else None (both)."""
    return STREAM_OF.get(method or "")


def misalign_mode(misalign: bool | str | None) -> str | None:
    """The misalignment control's mode (:data:`MISALIGN_MODES`) or None (off); ``True``
    is "cells", the first control, as older runs recorded it."""
    if not misalign:
        return None
    mode = "cells" if misalign is True else str(misalign)
    if mode not in MISALIGN_MODES:
        raise UserError(f"unknown misalign mode {misalign!r}; known: {', '.join(MISALIGN_MODES)}")
    return mode


def swap_halves(x: torch.Tensor) -> torch.Tensor:
    """``x`` (..., H, W) with the left and right W // 2 columns of its grid exchanged, each
    half moved whole (not mirrored: its own pattern is kept); an odd W keeps its middle
    column. An involution: ``swap_halves(swap_halves(x)) == x``."""
    w = x.shape[-1]
    k = w // 2
    out = x.clone()
    out[..., :k], out[..., w - k :] = x[..., w - k :], x[..., :k]
    return out


class FeatureCache(torch.utils.data.Dataset):
    """Cached features of a list of videos as tensors (float32 by default).

    ``dirs``: ``{"spatial": folder, "temporal": folder}`` (two streams), or
    ``{"fused": folder}`` for a pre-fused cache (then ``b`` is an empty tensor and
    ``self.prefused`` is True; call the head's ``forward_fused``).

    ``cache[i]`` -> ``(a (T, C, H, W), b (T, C, H, W), label)`` (``fc``: (T, C));
    ``cache[[i, j, ...]]`` -> the batched tensors, which a ``DataLoader(batch_size=None,
    sampler=BatchSampler(...))`` uses to fetch a whole batch in one indexing operation.

    Reading: maps are memory-mapped (``np.load(mmap_mode="r")``) and copied out in their
    stored float16; ``dtype=None`` hands them out so, to be converted to float32 on the
    training device (the same values: float16 -> float32 is exact), the default
    ``dtype=torch.float32`` converts here. ``streams=("spatial",)`` (or ``("temporal",)``)
    reads one stream only and hands the same tensor out as both ``a`` and ``b``: for the
    single-stream heads, whose fusion ignores the other map (:func:`streams_read`).

    Holding (:data:`HELD`, shared by every cache of the process): ``in_memory=None`` holds
    as many maps as the machine's budget allows (:func:`ram_budget`, and on ``device`` when
    it is a GPU :func:`gpu_budget`), reading each once for every head of the process;
    ``in_memory=True`` holds all of them in RAM whatever the budget, ``False`` none (every
    access reads the files). ``self.in_memory``: every map is held; ``self.on_device``:
    batches come out on ``device`` (some maps are held there; the loader must not pin them
    or use workers).

    Negative controls (:mod:`twostream.study.mechanisms`), each a fixed function of the video's
    path and ``control_seed`` (so the same video gets the same draw in every batch, order
    and epoch, and on every rank):

    * ``misalign="halves"``: in half of each class's videos (:meth:`_halves_drawn`), the
      left and right halves of the temporal stream's grid are swapped (:func:`swap_halves`,
      every time step alike), where the synthetic binding family turns its two objects:
      each temporal map keeps its own pattern, but the motion sits at the *other* object.
      Half, not every video: swapping in every video would only relabel the binding ("red
      shows the counter-clockwise turn" would then mean red turns clockwise), still
      learnable; with half, each class of a pair shows either binding equally often.
    * ``misalign="cells"`` (or ``True``, older runs): the temporal stream's grid cells are
      permuted (one permutation per video, the same at every time step): both streams keep
      *what* they saw, but the appearance is no longer where its motion is, and the
      temporal map's own spatial pattern is scrambled too.
    * ``shuffle_steps=True``: the T time steps of both streams are permuted alike (one
      permutation per video): what happened is kept, its order is not.
    """

    def __init__(
        self,
        dirs: Mapping[str, str | os.PathLike],
        records: Sequence,
        *,
        in_memory: bool | None = None,
        misalign: bool | str = False,
        shuffle_steps: bool = False,
        control_seed: int = 0,
        streams: Sequence[str] | None = None,
        dtype: torch.dtype | None = torch.float32,
        device: str | torch.device | None = None,
    ) -> None:
        self.misalign = misalign_mode(misalign)
        self.shuffle_steps = bool(shuffle_steps)
        self.control_seed = int(control_seed)
        self.dtype = dtype
        self.prefused = "fused" in dirs
        if self.prefused and self.misalign:
            raise UserError("misalign needs both streams' maps, not a pre-fused cache")
        names = ("fused",) if self.prefused else ("spatial", "temporal")
        if streams is not None and not self.prefused:
            unknown = [s for s in streams if s not in names]
            if unknown or not streams:
                raise UserError(f"streams must be some of {names}, got {tuple(streams)}")
            names = tuple(s for s in names if s in streams)
        self.names = names
        missing_keys = [n for n in names if n not in dirs]
        if missing_keys:
            raise UserError(f"FeatureCache needs folders for {names}, missing {missing_keys}")
        self.dirs = {n: Path(dirs[n]) for n in names}
        self.videos = [r.path for r in records]
        self.labels = torch.tensor([int(r.label) for r in records], dtype=torch.long)
        for d in self.dirs.values():
            gone = missing_videos(d, self.videos)
            if gone:
                raise UserError(
                    f"feature cache {d} lacks {len(gone)} of {len(self.videos)} videos "
                    f"(e.g. {gone[0]}); run `twostream extract-features` (or stages.features(cfg, split, taps))"
                )
        self._swapped = self._halves_drawn() if self.misalign == "halves" else frozenset()
        self.shape: tuple[int, ...] = ()
        self.in_memory = False
        self.on_device = False
        self._keys: dict[str, list[tuple | None]] = {n: [None] * len(self.videos) for n in names}
        if not self.videos:  # e.g. no validation split (val_fraction 0)
            return
        first = open_map(feature_path(self.dirs[names[0]], self.videos[0]))
        self.shape = tuple(first.shape)  # per video: (T, C, H, W) or (T, C)
        if in_memory is False:
            return
        tiers = ["cpu"]
        dev = torch.device(device) if device is not None else None
        if dev is not None and dev.type == "cuda" and in_memory is None:
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            tiers.insert(0, f"cuda:{index}")
        claimed: list[tuple] = []
        nbytes = first.nbytes
        for i, v in enumerate(self.videos):
            for n, d in self.dirs.items():
                key = file_key(feature_path(d, v))
                if HELD.claim(key, nbytes, tiers, force=in_memory is True):
                    self._keys[n][i] = key
                    claimed.append(key)
        weakref.finalize(self, HELD.release, claimed)
        held = [HELD.get(k) for keys in self._keys.values() for k in keys if k is not None]
        self.in_memory = len(held) == len(self.videos) * len(names)
        self.on_device = any(t.device.type != "cpu" for t in held)
        self._device = next((t.device for t in held if t.device.type != "cpu"), None)

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def values_per_video(self) -> int:
        """Feature values of ONE stream (or of the fused map) per video: T x C x H x W."""
        return int(np.prod(self.shape))

    def _map(self, name: str, i: int) -> torch.Tensor:
        key = self._keys[name][i]
        held = HELD.get(key) if key is not None else None
        if held is None:
            return torch.from_numpy(read_map(feature_path(self.dirs[name], self.videos[i])))
        return held

    def _get(self, name: str, idx: list[int]) -> torch.Tensor:
        maps = [self._map(name, i) for i in idx]
        if self.on_device:
            maps = [m.to(self._device) for m in maps]
        x = torch.stack(maps)
        return x if self.dtype is None else x.to(self.dtype)

    def __getitem__(self, idx):
        single = isinstance(idx, (int, np.integer))
        ids = [int(idx)] if single else [int(i) for i in idx]
        if self.prefused:
            a, b = self._get("fused", ids), torch.empty(0)
        elif len(self.names) == 1:  # one stream read: its map serves as both (see streams)
            a = b = self._get(self.names[0], ids)
        else:
            a, b = self._get("spatial", ids), self._get("temporal", ids)
        if self.misalign or self.shuffle_steps:
            a, b = self._controls(ids, a, b)
        y = self.labels[ids]
        if self.on_device:
            y = y.to(self._device)
        if single:
            return a[0], (b if self.prefused else b[0]), y[0]
        return a, b, y

    def _rng(self, i: int, what: str) -> np.random.Generator:
        import zlib

        return np.random.default_rng(
            [self.control_seed, zlib.crc32(f"{what}:{self.videos[i]}".encode())]
        )

    def _halves_drawn(self) -> frozenset[int]:
        """The videos whose temporal halves are swapped: exactly half of each class's videos
        in this cache (an odd count: the middle one by its own coin), picked by a draw fixed
        per video (:meth:`_rng`), so the same set of videos gets the same swaps in any order.
        Exactly half, not a coin per video: a class swapped more often than its pair partner
        would show one binding more often, which a model could learn."""
        u = np.array([self._rng(i, "halves").random() for i in range(len(self.videos))])
        out: set[int] = set()
        for k in torch.unique(self.labels).tolist():
            idx = sorted(np.flatnonzero(self.labels.numpy() == k), key=lambda i: u[i])
            n = len(idx)
            out.update(int(i) for i in idx[: n // 2])
            if n % 2 and u[idx[n // 2]] < 0.5:
                out.add(int(idx[n // 2]))
        return frozenset(out)

    def _controls(self, ids: list[int], a: torch.Tensor, b: torch.Tensor):
        """Apply the negative controls to a batch a, b (N, T, C, H, W) / (N, T, C)."""
        a, b = a.clone(), b.clone() if b.numel() else b
        for j, i in enumerate(ids):
            if self.shuffle_steps:
                order = torch.from_numpy(self._rng(i, "steps").permutation(a.shape[1]))
                a[j] = a[j, order]
                if b.numel():
                    b[j] = b[j, order]
            if self.misalign:
                if b.dim() != 5:
                    raise UserError("misalign needs feature maps (T, C, H, W), not pooled vectors")
                if self.misalign == "halves":
                    if i in self._swapped:
                        b[j] = swap_halves(b[j])
                    continue
                t, c, h, w = b.shape[1:]
                cells = torch.from_numpy(self._rng(i, "cells").permutation(h * w))
                b[j] = b[j].reshape(t, c, h * w)[..., cells].reshape(t, c, h, w)
        return a, b


# ----------------------------------------------------------------------------- disk


def needed_taps(cfg: StudyConfig) -> tuple[str, ...]:
    """The taps the study's heads read on ``cfg.split``, and only those: Table 1's layers
    when Table 1 has a method, and ``cfg.fusion_layer`` when Table 2's grid has a cell. The
    feature cache of ``twostream.study.plan.study_nodes`` (and the plan's disk) is exactly these; Table 3
    adds the chosen layer on the other splits."""
    taps: list[str] = []
    if cfg.table1_methods:
        taps += cfg.table1_layers
    if cfg.table2_layers and cfg.table2_kernels:
        taps.append(cfg.fusion_layer)
    return tuple(dict.fromkeys(taps))


def tap_grid(input_size: int, tap: str) -> tuple[int, int] | None:
    """Spatial size of a ResNet tap for a square input (conv1 and maxpool halve, then each
    stage from conv3_x halves; every halving rounds up). ``fc`` -> None."""
    stride_steps = {
        "conv3_x": 3,
        "conv4_x": 4,
        "conv5_x_inner": 5,
        "conv5_x_branch": 5,
        "conv5_x": 5,
    }
    if tap == "fc":
        return None
    n = int(input_size)
    for _ in range(stride_steps[tap]):
        n = (n + 1) // 2
    return n, n


def disk_table(cfg: StudyConfig, num_videos: int, *, taps: Sequence[str] | None = None):
    """Disk the float16 cache needs per configuration: both streams vs pre-fused sum/max.

    Columns: layer, storage, values_per_video (per stored map), bytes_per_video, total_gb.
    """
    import pandas as pd

    rows = []
    for tap in check_taps(taps or cfg.table1_layers):
        grid = tap_grid(cfg.input_size, tap)
        c = tap_channels(cfg.backbone, tap)
        values = cfg.num_segments * c * (grid[0] * grid[1] if grid else 1)
        for storage, maps in (("both streams (concat, conv)", 2), ("pre-fused (sum, max)", 1)):
            b = values * maps * np.dtype(DTYPE).itemsize
            rows.append(
                {
                    "layer": tap,
                    "storage": storage,
                    "values_per_video": values * maps,
                    "bytes_per_video": b,
                    "total_gb": b * num_videos / 1e9,
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- CLI
