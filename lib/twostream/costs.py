"""What every stage of the graph costs: wall time, GPU-hours (or CPU core-hours), disk, peak
GPU memory and RAM, each figure labelled with where it comes from.

``twostream plan --params FILE`` prints these beside the stage list; ``benchmarks/cost_table.py``
writes ``docs/cost_table.md`` from them. A figure is one of

* **measured** (``m``): a unit rate read from a committed benchmark JSON in
  ``benchmarks/results/`` (the JSON and the device it ran on are named), times counts of the
  work (videos, frames, epochs) that the params file and the data set's published sizes fix;
* **computed** (``c``): exact arithmetic on shapes and counts (a feature map's T x C x H x W x
  2 bytes, a checkpoint's parameter count x bytes);
* **estimate** (``e``): anything that needs an assumed factor (a GPU's sustained share of its
  peak, a decode cost, a pixel-count scaling); the factor is a named constant below or a field
  of a committed JSON, and it is printed with the figure's basis.

No GPU benchmark of the full-scale stages has been committed yet (``benchmarks/gpu_suite.sh``
writes ``dry_run-<gpu>.json`` / ``gpu-suite-<gpu>.json``): every GPU-hour is an estimate, from
FLOPs counted on the library's own modules (``torch.utils.flop_counter`` on the meta device for
the ResNets, closed form for the ConvLSTM heads) divided by the sustained throughput that
``benchmarks/results/estimate-h100.json`` assumes. Counting FLOPs and activations needs no
data and no GPU; nothing here runs a stage.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import StudyConfig
from .utils import project_root

RESULTS_DIR = project_root() / "benchmarks" / "results"
GIB = 1024**3

# ----------------------------------------------------------------------------- assumptions
# Data-set sizes (published; used when the split files are not on this machine).
# UCF101 (Soomro et al. 2012, ucfTrainTestlist): 13,320 clips, 101 classes; the three official
# splits' train/test list lengths.
UCF101_VIDEOS = 13320
UCF101_CLASSES = 101
UCF101_SPLITS = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}
# HMDB51 (Kuehne et al. 2011, testTrainMulti_7030_splits): 6,766 clips, 51 classes; every split
# lists 70 train + 30 test clips per class (the rest are unused in that split).
HMDB51_VIDEOS = 6766
HMDB51_CLASSES = 51
HMDB51_SPLITS = {k: (3570, 1530) for k in (1, 2, 3)}
# Mean frames per clip (issue 13's figures; UCF101's published mean clip length 7.21 s at 25
# fps gives 180). Frame pairs per clip = frames - 1.
MEAN_FRAMES = {"ucf101": 186, "hmdb51": 94}
# Native frame size of both data sets' clips (UCF101: 320x240 for every clip; HMDB51: height
# 240, width mostly 320).
NATIVE_SIZE = {"ucf101": (320, 240), "hmdb51": (320, 240)}
# Size of the official video archives (UCF101.rar 6.5 GB, hmdb51_org.rar 2.0 GB).
VIDEO_ARCHIVE_GB = {"ucf101": 6.5, "hmdb51": 2.0}

# The GPU the estimates are for, and its sustained throughput: read from estimate-h100.json's
# "assumptions" when that file is there; these fallbacks repeat benchmarks/estimate_h100.py's
# defaults (NVIDIA H100 SXM datasheet: 989 TFLOP/s dense bf16, 3.35 TB/s HBM3; 10% of peak
# sustained by ResNet training; 50% of HBM bandwidth for TV-L1; 16 cores feeding it).
GPU_NAME = "H100 SXM"
GPU_BF16_TFLOPS = 989.0
GPU_UTILISATION = 0.10
GPU_HBM_TB_S = 3.35
GPU_BANDWIDTH_UTILISATION = 0.5
HOST_CORES = 16
# JPEG decode + augment, images/s on ONE process, when dry_run-cpu.json is absent (the order
# it measured: 516 RGB, 157 flow stacks).
DATA_RATE_FALLBACK = {"rgb": 500.0, "flow": 150.0}
# Backward ~ 2x forward FLOPs (weight gradient + input gradient, each a forward's worth):
# the usual rule, which the FLOP counter confirms for convolutions.
BACKWARD_OVER_FORWARD = 2.0
# TV-L1 memory traffic: ~20 float32 maps streamed per pixel and iteration (estimate_h100.py).
TVL1_BYTES_PER_PIXEL_ITERATION = 20 * 4
# prepare's CPU work per frame besides flow: one video decode and three JPEG encodes (RGB,
# flow x, flow y); each is assumed to cost one JPEG decode of a frame, the rate dry_run-cpu.json
# measured for RGB loading.
PREPARE_JPEG_OPS_PER_FRAME = 4.0
# Sizes when no benchmark JSON gives them: bytes per JPEG frame at 341x256 (the order of
# disk_usage.json's measurement), cold read MB/s (convlstm-cpu.json's order), prepare worker RSS.
FRAME_BYTES_FALLBACK = {"rgb": 26000.0, "flow": 9500.0}
READ_MB_S_FALLBACK = 200.0
PREPARE_WORKER_MIB_FALLBACK = 70.0
# Optimiser state bytes per parameter: SGD with momentum (streams) keeps weight, gradient and
# momentum in float32; Adam (heads) weight, gradient and two moments.
STREAM_BYTES_PER_PARAM = 12
HEAD_BYTES_PER_PARAM = 16
# Feature extraction: videos per forward on a GPU (features.extract_stream's default).
FEATURE_BATCH_VIDEOS = 16


@dataclass(frozen=True)
class Figure:
    """One number with its kind (measured / computed / estimate / unknown) and basis."""

    value: float | None
    kind: str  # "measured" | "computed" | "estimate" | "unknown"
    basis: str

    @property
    def tag(self) -> str:
        return {"measured": "m", "computed": "c", "estimate": "e", "unknown": "?"}[self.kind]

    def __add__(self, other: Figure) -> Figure:
        """Sum of two figures: unknown parts count as 0 (they are not modelled); the kind is
        the weakest of the parts that contribute (estimate < measured < computed)."""
        parts = [f for f in (self, other) if f.value]
        if not parts:
            known = [f for f in (self, other) if f.value is not None]
            return known[0] if known else UNKNOWN
        order = ("estimate", "measured", "computed")
        kind = min((f.kind for f in parts), key=order.index)
        value = sum(f.value for f in parts)
        return Figure(value, kind, parts[0].basis if len(parts) == 1 else "sum")


ZERO = Figure(0.0, "computed", "none")
UNKNOWN = Figure(None, "unknown", "not modelled")


@dataclass
class StageCost:
    """The costs of one plan row (``runs`` nodes; more than one for the Table 3 placeholder)."""

    row: dict[str, str]
    runs: int
    gpu_hours: Figure = ZERO
    cpu_core_hours: Figure = ZERO
    wall_hours: Figure = ZERO
    disk_gb: Figure = ZERO
    gpu_mem_gib: Figure = UNKNOWN
    ram_gib: Figure = UNKNOWN
    cores_to_feed: float | None = None  # host cores that keep the GPU busy (data-bound stages)
    note: str = ""

    def figures(self) -> dict[str, Figure]:
        return {"wall_h": self.wall_hours, "gpu_h": self.gpu_hours,
                "cpu_core_h": self.cpu_core_hours, "disk_gb": self.disk_gb,
                "gpu_mem_gib": self.gpu_mem_gib, "ram_gib": self.ram_gib}  # fmt: skip


# ----------------------------------------------------------------------------- the bases


@dataclass
class Bases:
    """Unit costs read from ``benchmarks/results/`` (or the named fallbacks), with sources."""

    results_dir: Path
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    gpu_name: str = GPU_NAME
    tflops: float = GPU_BF16_TFLOPS
    utilisation: float = GPU_UTILISATION
    hbm_tb_s: float = GPU_HBM_TB_S
    bandwidth_utilisation: float = GPU_BANDWIDTH_UTILISATION
    cores: int = HOST_CORES
    gpu_source: str = "constants in twostream.costs (estimate_h100.py's defaults)"
    data_rate: dict[str, float] = field(default_factory=lambda: dict(DATA_RATE_FALLBACK))
    data_source: str | None = None
    flow_cpu: dict[tuple[str, str], float] = field(default_factory=dict)  # pairs/s, 320x240
    flow_source: str | None = None
    frame_bytes: dict[str, float] = field(default_factory=lambda: dict(FRAME_BYTES_FALLBACK))
    frame_source: str | None = None
    read_mb_s: float = READ_MB_S_FALLBACK
    read_source: str | None = None
    worker_mib: float = PREPARE_WORKER_MIB_FALLBACK
    worker_source: str | None = None
    gpu_benchmarks: list[str] = field(default_factory=list)

    def _load(self, name: str) -> dict | None:
        p = self.results_dir / name
        if not p.is_file():
            self.missing.append(name)
            return None
        self.found.append(name)
        return json.loads(p.read_text())

    @classmethod
    def load(cls, results_dir: str | Path | None = None) -> Bases:
        b = cls(Path(results_dir) if results_dir is not None else RESULTS_DIR)
        est = b._load("estimate-h100.json")
        if est:
            a = est.get("assumptions", {})
            b.tflops = float(a.get("bf16_dense_tflops", b.tflops))
            b.utilisation = float(a.get("utilisation", b.utilisation))
            b.hbm_tb_s = float(a.get("hbm_tb_s", b.hbm_tb_s))
            b.bandwidth_utilisation = float(a.get("bandwidth_utilisation", b.bandwidth_utilisation))
            b.cores = int(a.get("cpu_cores", b.cores))
            b.gpu_source = "estimate-h100.json's assumptions (itself an estimate, not a run)"
        dry = b._load("dry_run-cpu.json")
        if dry:
            for stage in dry.get("stages", []):
                m = re.search(r"data (\d+(?:\.\d+)?) img/s", stage.get("throughput", ""))
                if m:
                    key = "rgb" if stage["stage"].startswith("spatial") else "flow"
                    b.data_rate[key] = float(m.group(1))
            b.data_source = f"dry_run-cpu.json ({dry.get('device')})"
        flow = b._load("flow-cpu.json")
        if flow:
            for r in flow.get("speed", []):
                if r.get("size") == "320x240" and r.get("device") == "cpu x1 thread":
                    b.flow_cpu[(r["backend"], r["preset"])] = float(r["pairs_per_s"])
            b.flow_source = f"flow-cpu.json ({flow.get('device')}, 320x240, 1 thread)"
        disk = b._load("disk_usage.json")
        if disk and disk.get("per_frame"):
            pf = disk["per_frame"]
            b.frame_bytes = {"rgb": float(pf["rgb_bytes"]), "flow": float(pf["flow_xy_bytes"])}
            b.frame_source = (
                f"disk_usage.json ({disk.get('frames_measured')} real UCF101 frames at short side "
                f"{disk.get('short_side')})"
            )
        conv = b._load("convlstm-cpu.json")
        if conv:
            for r in (conv.get("read") or {}).values():
                b.read_mb_s = float(r["cold_mb_per_s"])
                b.read_source = f"convlstm-cpu.json ({conv.get('device')}, cold reads)"
                break
        prep = b._load("prepare-scale-cpu.json")
        if prep and (prep.get("full_run") or {}).get("worker_maxrss_mib"):
            b.worker_mib = float(prep["full_run"]["worker_maxrss_mib"])
            b.worker_source = f"prepare-scale-cpu.json ({prep.get('device')}, tiny videos)"
        b.gpu_benchmarks = sorted(
            p.name for p in b.results_dir.glob("*.json")
            if p.name.startswith(("gpu-suite-", "dry_run-")) and p.name != "dry_run-cpu.json"
        )  # fmt: skip
        return b

    @property
    def flops_per_s(self) -> float:
        return self.tflops * 1e12 * self.utilisation

    def gpu_basis(self) -> str:
        return (f"FLOPs / ({self.utilisation:.0%} of {self.gpu_name} {self.tflops:g} TFLOP/s bf16;"
                f" {self.gpu_source})")  # fmt: skip

    def assumptions(self) -> list[tuple[str, str]]:
        """(name, value and source) of every assumption the figures use, for printing."""
        out = [
            ("GPU", f"{self.gpu_name}, {self.tflops:g} TFLOP/s dense bf16 at {self.utilisation:.0%}"
                    f" sustained, {self.hbm_tb_s:g} TB/s HBM at {self.bandwidth_utilisation:.0%} "
                    f"for TV-L1: {self.gpu_source}"),
            ("GPU benchmarks", ", ".join(self.gpu_benchmarks) if self.gpu_benchmarks else
             "none committed (no dry_run-<gpu>.json / gpu-suite-<gpu>.json): every GPU-hour is "
             "an estimate"),
            ("host cores", f"{self.cores} feeding the GPU (JPEG decode), {self.gpu_source}"),
            ("data rate", f"{self.data_rate['rgb']:g} RGB / {self.data_rate['flow']:g} flow images/s "
                          f"per core: {self.data_source or 'DATA_RATE_FALLBACK (no dry_run-cpu.json)'}"),
            ("BACKWARD_OVER_FORWARD", f"{BACKWARD_OVER_FORWARD:g} (backward ~ 2x forward FLOPs)"),
            ("PREPARE_JPEG_OPS_PER_FRAME", f"{PREPARE_JPEG_OPS_PER_FRAME:g} JPEG-decode equivalents "
                                           "per frame (video decode + 3 JPEG encodes)"),
            ("frame bytes", f"{self.frame_bytes['rgb']:.0f} RGB + {self.frame_bytes['flow']:.0f} "
                            f"flow x+y bytes/frame at 341x256: "
                            f"{self.frame_source or 'FRAME_BYTES_FALLBACK (no disk_usage.json)'}"),
            ("feature reads", f"{self.read_mb_s:.0f} MB/s cold: "
                              f"{self.read_source or 'READ_MB_S_FALLBACK (no convlstm-cpu.json)'}"),
            ("UCF101", f"{UCF101_VIDEOS} videos, {UCF101_CLASSES} classes, splits (train, test) "
                       f"{UCF101_SPLITS}, {MEAN_FRAMES['ucf101']} frames/video, "
                       f"{VIDEO_ARCHIVE_GB['ucf101']} GB archive"),
            ("HMDB51", f"{HMDB51_VIDEOS} videos, {HMDB51_CLASSES} classes, splits (train, test) "
                       f"{HMDB51_SPLITS[1]} each, {MEAN_FRAMES['hmdb51']} frames/video, "
                       f"{VIDEO_ARCHIVE_GB['hmdb51']} GB archive"),
        ]  # fmt: skip
        return out


# ----------------------------------------------------------------------------- work counts


@dataclass(frozen=True)
class Sizes:
    """Video counts of one split and the data set's frame statistics."""

    videos: int  # the whole data set
    train: int  # official train list (carved into train / val)
    test: int
    frames: float  # mean frames per video
    width: int  # rawframes size
    height: int
    source: str

    def train_val(self, val_fraction: float) -> tuple[int, int]:
        val = int(round(self.train * val_fraction))
        return self.train - val, val


def _frame_size(cfg: StudyConfig, native: tuple[int, int]) -> tuple[int, int]:
    if cfg.resize:
        w, h = (int(v) for v in str(cfg.resize).lower().split("x"))
        return w, h
    w, h = native
    if cfg.short_side:
        s = cfg.short_side / min(w, h)
        return int(round(w * s)), int(round(h * s))
    return w, h


def sizes(cfg: StudyConfig, split: int) -> Sizes:
    """Counted from the split files when they are on this machine, else the published counts."""
    counted = None
    if cfg.splits_dir.is_dir():
        try:
            from .datasets import load_split

            tr, te = load_split(cfg.split_format, cfg.splits_dir, split)
            counted = (len(tr), len(te))
        except Exception:  # noqa: BLE001 - a partial tree: fall back to the published counts
            counted = None
    if cfg.dataset == "synthetic":
        videos = cfg.synth_classes * cfg.synth_clips_per_class
        tr, te = counted or (videos - videos // cfg.synth_groups, videos // cfg.synth_groups)
        src = "split files" if counted else "synth_* fields (one test group per split)"
        w, h = _frame_size(cfg, (cfg.synth_width, cfg.synth_height))
        return Sizes(videos, tr, te, float(cfg.synth_frames), w, h, src)
    published = UCF101_SPLITS if cfg.dataset == "ucf101" else HMDB51_SPLITS
    videos = UCF101_VIDEOS if cfg.dataset == "ucf101" else HMDB51_VIDEOS
    tr, te = counted or published[split]
    w, h = _frame_size(cfg, NATIVE_SIZE[cfg.dataset])
    src = "split files" if counted else f"{cfg.dataset} published split sizes"
    return Sizes(videos, tr, te, float(MEAN_FRAMES[cfg.dataset]), w, h, src)


@functools.lru_cache(maxsize=16)
def stream_profile(backbone: str, modality: str, input_size: int, flow_length: int,
                   num_classes: int) -> dict[str, float]:  # fmt: skip
    """FLOPs and memory of one ResNet stream per image, counted on the meta device:
    train (forward + backward) and feature forward FLOPs, parameters, the bytes autograd saves
    for the backward (float32; bf16 autocast stores about half) and the largest activation."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from .models import build_stream

    net = build_stream(modality=modality, backbone=backbone, num_classes=num_classes,
                       flow_length=flow_length).to("meta")  # fmt: skip
    params = {id(p) for p in net.parameters()}
    c = 3 if modality == "rgb" else 2 * flow_length
    n = 2  # batch norm in training mode needs two values per channel (tiny inputs)
    x = torch.randn(n, c, input_size, input_size, device="meta")
    y = torch.zeros(n, dtype=torch.long, device="meta")
    saved = {"bytes": 0, "max": 0}

    def pack(t):
        if id(t) not in params:
            n = t.numel() * t.element_size()
            saved["bytes"] += n
            saved["max"] = max(saved["max"], n)
        return t

    with FlopCounterMode(display=False) as fwd:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(net(x), y)
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    return {"train_flops": float(fwd.get_total_flops() + bwd.get_total_flops()) / n,
            "fwd_flops": float(fwd.get_total_flops()) / n, "saved_bytes": float(saved["bytes"]) / n,
            "max_activation_bytes": float(saved["max"]) / n,
            "params": float(sum(p.numel() for p in net.parameters()))}  # fmt: skip


def head_profile(cfg: StudyConfig, layer: str, method: str, layers: int, kernel: int,
                 kind: str | None = None, num_classes: int = 101) -> dict[str, float]:  # fmt: skip
    """Closed-form FLOPs, parameters and saved-activation bytes per video of one head.

    ConvLSTM layer l (input channels in_l, hidden Ch, k x k, grid h x w, T steps): forward
    2 (in_l + Ch) 4Ch k^2 h w T (input_conv + hidden_conv); training adds
    BACKWARD_OVER_FORWARD forwards, less the input gradient of the cached features when the
    fusion has no parameters. FC-LSTM: the same with k = 1, h = w = 1.
    """
    from .features import tap_grid
    from .fusion import fusion_out_channels, is_parameter_free
    from .heads import head_kind
    from .models import tap_channels

    c = tap_channels(cfg.backbone, layer)
    grid = tap_grid(cfg.input_size, layer) or (1, 1)
    hw, T, ch = grid[0] * grid[1], cfg.num_segments, cfg.convlstm_hidden
    cf = c if method in ("spatial", "temporal") else fusion_out_channels(method, channels=c)
    kind = kind or head_kind(layer)
    k2 = 1 if kind == "fclstm" else kernel * kernel
    fwd, params, act = 0.0, 0.0, 2.0 * c * hw * T * 4  # both streams' float32 inputs
    if method == "conv":
        fwd += 2.0 * 2 * c * c * hw * T
        params += 2 * c * c + c
    if kind == "tavg":
        fwd += 2.0 * cf * num_classes
        params += cf * num_classes
        return {"train_flops": fwd * (1 + BACKWARD_OVER_FORWARD), "fwd_flops": fwd,
                "params": params, "saved_bytes": act}  # fmt: skip
    first_input = 0.0
    for n in range(layers):
        cin = cf if n == 0 else ch
        f = 2.0 * (cin + ch) * 4 * ch * k2 * hw * T
        fwd += f
        if n == 0:
            first_input = 2.0 * cin * 4 * ch * k2 * hw * T
        params += (cin + ch) * 4 * ch * k2 + 4 * ch
        act += (cin + 8 * ch) * hw * T * 4  # inputs, 4 gates, c, tanh(c), h, ...
    fwd += 2.0 * ch * hw * num_classes
    params += ch * hw * num_classes
    train = fwd * (1 + BACKWARD_OVER_FORWARD)
    if method in ("spatial", "temporal") or is_parameter_free(method):
        train -= first_input  # the cached features need no gradient (a conv fusion's output does)
    return {"train_flops": train, "fwd_flops": fwd, "params": params, "saved_bytes": act}


# ----------------------------------------------------------------------------- per stage


def _num_classes(cfg: StudyConfig) -> int:
    if cfg.dataset == "ucf101":
        return UCF101_CLASSES
    if cfg.dataset == "hmdb51":
        return HMDB51_CLASSES
    return cfg.synth_classes


def _gpu_stage(flops: float, images: float, modality: str | None, b: Bases,
               read_bytes: float = 0.0) -> tuple[float, float, str]:  # fmt: skip
    """(hours, cores needed to feed it, what bounds it): max of compute, data and reads."""
    compute_s = flops / b.flops_per_s
    data_s = images / (b.data_rate[modality] * b.cores) if modality else 0.0
    read_s = read_bytes / (b.read_mb_s * 1e6)
    bound = max((compute_s, "compute"), (data_s, "JPEG decode"), (read_s, "feature reads"))
    feed = images / b.data_rate[modality] / compute_s if modality and compute_s else None
    what = f"{bound[1]}-bound" + (
        "" if bound[1] == "compute" else f" (compute alone {compute_s / 3600:.2g} h)"
    )
    return bound[0] / 3600, feed, what


def _cost_dataset(cfg: StudyConfig, row, b: Bases) -> StageCost:
    if cfg.dataset == "synthetic":
        s = sizes(cfg, cfg.split)
        gb = s.videos * s.frames * s.width * s.height * 3 / 1e9  # uncompressed upper bound
        disk = Figure(gb, "estimate", "synthetic clips, uncompressed size (an upper bound)")
        return StageCost(row, 1, disk_gb=disk, note="generated on the CPU in seconds")
    disk = Figure(VIDEO_ARCHIVE_GB[cfg.dataset], "estimate", "VIDEO_ARCHIVE_GB (official archive)")
    return StageCost(row, 1, disk_gb=disk, ram_gib=ZERO, note="download and unpack (not timed)")


def _cost_rawframes(cfg: StudyConfig, row, b: Bases) -> StageCost:
    from .flow import PRESETS

    s = sizes(cfg, cfg.split)
    frames = s.videos * s.frames
    pairs = frames - s.videos
    pixels = s.width * s.height
    scale = pixels / (341 * 256)
    fb = b.frame_bytes
    gb = frames * (fb["rgb"] + fb["flow"]) * scale / 1e9
    kind = "measured" if b.frame_source and abs(scale - 1) < 0.01 else "estimate"
    basis = (f"bytes/frame {b.frame_source or 'FRAME_BYTES_FALLBACK'} x videos x mean frames"
             + ("" if kind == "measured" else " x pixel ratio to 341x256"))  # fmt: skip
    disk = Figure(gb, kind, basis)
    # JPEG work besides flow (CPU)
    jpeg_core_s = frames * PREPARE_JPEG_OPS_PER_FRAME / b.data_rate["rgb"] * scale
    p = PRESETS[cfg.flow_preset]
    workers = max(1, cfg.prep_workers)
    ram = Figure((workers * b.worker_mib * 2**20 + workers * s.frames * pixels * 3) / GIB,
                 "estimate", f"prep_workers x (worker RSS {b.worker_source or 'fallback'} + one "
                 "decoded video)")  # fmt: skip
    if cfg.flow_backend == "torch" and cfg.flow_device.startswith("cuda"):
        level_pixels = sum(pixels * p.scale_step ** (2 * k) for k in range(p.nscales))
        iters = p.inner_iterations * p.outer_iterations
        pair_s = (
            level_pixels
            * p.warps
            * iters
            * TVL1_BYTES_PER_PIXEL_ITERATION
            / (b.hbm_tb_s * 1e12 * b.bandwidth_utilisation)
        )
        gpu_h = pairs * pair_s / 3600
        cpu_h = jpeg_core_s / 3600
        wall = max(gpu_h, cpu_h / workers)
        return StageCost(
            row, 1,
            gpu_hours=Figure(gpu_h, "estimate", f"TV-L1 memory traffic ({p.nscales} levels x "
                             f"{p.warps} warps x {iters} iterations, {TVL1_BYTES_PER_PIXEL_ITERATION}"
                             f" B/pixel/iteration) at {b.bandwidth_utilisation:.0%} of "
                             f"{b.hbm_tb_s:g} TB/s, per frame pair"),
            cpu_core_hours=Figure(cpu_h, "estimate", "PREPARE_JPEG_OPS_PER_FRAME x JPEG decode "
                                  f"rate ({b.data_source or 'fallback'})"),
            wall_hours=Figure(wall, "estimate", "max(GPU flow, JPEG work on prep_workers cores)"),
            disk_gb=disk, ram_gib=ram, note="flow on the GPU (torch backend)",
        )  # fmt: skip
    rate = b.flow_cpu.get((cfg.flow_backend, cfg.flow_preset))
    if rate:
        flow_s = pairs / rate * pixels / (320 * 240)
        kind = "measured" if (s.width, s.height) == (320, 240) else "estimate"
        basis = f"{rate:.2f} pairs/s/core, {b.flow_source}" + (
            "" if kind == "measured" else f" x pixel ratio {pixels / (320 * 240):.2f}"
        )
    else:
        flow_s, kind, basis = float("nan"), "unknown", "no CPU flow benchmark for this preset"
    cpu_h = (flow_s + jpeg_core_s) / 3600
    return StageCost(
        row, 1,
        cpu_core_hours=Figure(cpu_h, "estimate" if kind != "unknown" else kind,
                              f"flow {basis}; + JPEG work (PREPARE_JPEG_OPS_PER_FRAME)"),
        wall_hours=Figure(cpu_h / workers, "estimate", f"core-hours / {workers} prep_workers"),
        disk_gb=disk, ram_gib=ram, note=f"CPU stage ({cfg.flow_backend} flow)",
    )  # fmt: skip


def _cost_stream(cfg: StudyConfig, node, row, b: Bases) -> StageCost:
    s = sizes(cfg, node.get("split"))
    n_train, n_val = s.train_val(cfg.val_fraction)
    modality = "rgb" if node.get("stream") == "spatial" else "flow"
    prof = stream_profile(cfg.backbone, modality, cfg.input_size, cfg.flow_length,
                          _num_classes(cfg))  # fmt: skip
    train_images = cfg.stream_epochs * n_train * cfg.samples_per_video
    per_video_eval = cfg.num_segments * cfg.test_crops
    eval_images = (cfg.stream_epochs * n_val + n_val + s.test) * per_video_eval
    flops = train_images * prof["train_flops"] + eval_images * prof["fwd_flops"]
    hours, feed, bound = _gpu_stage(flops, train_images + eval_images, modality, b)
    eval_share = eval_images * prof["fwd_flops"] / flops
    basis = (f"{b.gpu_basis()}; ResNet FLOPs counted on the meta device; training images + "
             "evaluation images (T x test_crops per video: val every epoch, val + test at the end);"
             " max(compute, JPEG decode on the host cores)")  # fmt: skip
    mem = prof["params"] * STREAM_BYTES_PER_PARAM + cfg.stream_batch_size * prof["saved_bytes"]
    return StageCost(
        row, 1,
        gpu_hours=Figure(hours, "estimate", basis),
        wall_hours=Figure(hours, "estimate", "= GPU-hours (one GPU, held for the whole stage)"),
        disk_gb=Figure(prof["params"] * (4 + 8) / 1e9, "computed",
                       "best (weights) + last (weights, momentum) checkpoints, float32"),
        gpu_mem_gib=Figure(mem / GIB, "estimate", f"params x {STREAM_BYTES_PER_PARAM} B + batch "
                           f"{cfg.stream_batch_size} x saved activations (float32 count on the meta"
                           " device; bf16 autocast ~ half)"),
        cores_to_feed=feed,
        note=f"{bound}; evaluation ({per_video_eval} images/video) = {eval_share:.0%} of FLOPs",
    )  # fmt: skip


def _feature_bytes(cfg: StudyConfig, tap: str) -> float:
    import numpy as np

    from .features import DTYPE, tap_grid
    from .models import tap_channels

    grid = tap_grid(cfg.input_size, tap)
    values = cfg.num_segments * tap_channels(cfg.backbone, tap) * (grid[0] * grid[1] if grid else 1)
    return float(values * np.dtype(DTYPE).itemsize)


def _feature_videos(cfg: StudyConfig, split: int) -> int:
    s = sizes(cfg, split)
    return s.train + s.test  # stages.feature_records: the split's train list, then its test list


def _cost_features(cfg: StudyConfig, node, row, b: Bases, first_of_pass: bool) -> StageCost:
    tap, split = node.get("tap"), node.get("split")
    videos = _feature_videos(cfg, split)
    disk = Figure(videos * _feature_bytes(cfg, tap) / 1e9, "computed",
                  f"{videos} videos x T x C x H x W x 2 B (float16)")  # fmt: skip
    if not first_of_pass:
        return StageCost(row, 1, disk_gb=disk, note="same forward pass as the first tap")
    modality = "rgb" if node.get("stream") == "spatial" else "flow"
    prof = stream_profile(cfg.backbone, modality, cfg.input_size, cfg.flow_length,
                          _num_classes(cfg))  # fmt: skip
    images = videos * cfg.num_segments
    hours, feed, bound = _gpu_stage(images * prof["fwd_flops"], images, modality, b)
    batch = FEATURE_BATCH_VIDEOS * cfg.num_segments
    c = 3 if modality == "rgb" else 2 * cfg.flow_length
    batch_bytes = batch * c * cfg.input_size**2 * 4
    return StageCost(
        row, 1,
        gpu_hours=Figure(hours, "estimate", f"{b.gpu_basis()}; T centre-crop images per video, "
                         "full forward; max(compute, JPEG decode on the host cores)"),
        wall_hours=Figure(hours, "estimate", "= GPU-hours (one GPU, held for the whole stage)"),
        disk_gb=disk,
        gpu_mem_gib=Figure((prof["params"] * 4 + 3 * batch * prof["max_activation_bytes"]) / GIB,
                           "estimate", f"weights + 3 x the largest activation x {batch} images"),
        ram_gib=Figure(batch_bytes * (2 * max(1, cfg.num_workers) + 1) / GIB, "estimate",
                       f"(2 x num_workers + 1) input batches of {batch} images, float32"),
        cores_to_feed=feed, note=f"{bound}; one pass for all its taps",
    )  # fmt: skip


def _cost_head(cfg: StudyConfig, node, row, b: Bases) -> StageCost:
    from .features import IN_MEMORY_LIMIT

    a = dict(node.args)
    split, layer, method = a["split"], a["layer"], a["method"]
    s = sizes(cfg, split)
    n_train, n_val = s.train_val(cfg.val_fraction)
    prof = head_profile(cfg, layer, method, a["layers"], a["kernel"] or cfg.convlstm_kernel,
                        a.get("kind"), _num_classes(cfg))  # fmt: skip
    epochs = cfg.convlstm_epochs
    flops = epochs * (n_train * prof["train_flops"] + (n_val + s.test) * prof["fwd_flops"])
    maps = 1 if (a.get("prefused") or method in ("spatial", "temporal")) else 2
    per_video = maps * _feature_bytes(cfg, layer)
    in_ram = n_train * per_video <= IN_MEMORY_LIMIT
    reads = 0.0 if in_ram else epochs * (n_train + n_val + s.test) * per_video
    hours, _, bound = _gpu_stage(flops, 0, None, b, read_bytes=reads)
    basis = (f"{b.gpu_basis()}; head FLOPs in closed form (costs.head_profile); epochs x (train "
             "+ val + test videos); a cache over features.IN_MEMORY_LIMIT is read every epoch at "
             f"{b.read_mb_s:.0f} MB/s ({b.read_source or 'READ_MB_S_FALLBACK'}): max(compute, reads)")  # fmt: skip
    mem = prof["params"] * HEAD_BYTES_PER_PARAM + cfg.convlstm_batch_size * prof["saved_bytes"]
    ram = n_train * per_video if in_ram else 4 * cfg.convlstm_batch_size * per_video
    return StageCost(
        row, 1,
        gpu_hours=Figure(hours, "estimate", basis),
        wall_hours=Figure(hours, "estimate", "= GPU-hours (one GPU, held for the whole stage)"),
        disk_gb=Figure(prof["params"] * HEAD_BYTES_PER_PARAM / 1e9, "computed",
                       "best (weights) + last (weights, Adam moments) checkpoints"),
        gpu_mem_gib=Figure(mem / GIB, "estimate", f"params x {HEAD_BYTES_PER_PARAM} B + batch "
                           f"{cfg.convlstm_batch_size} x saved activations (closed form, float32)"),
        ram_gib=Figure(ram / GIB, "estimate", "the training cache in RAM (features.IN_MEMORY_LIMIT)"
                       if in_ram else "streamed from disk: a few batches of float16 maps"),
        note=f"{bound}" + ("" if in_ram else f", {reads / 1e12:.1f} TB read"),
    )  # fmt: skip


def _sum_costs(row, costs: list[StageCost], note: str) -> StageCost:
    out = StageCost(row, sum(c.runs for c in costs), note=note)
    for name in ("gpu_hours", "cpu_core_hours", "wall_hours", "disk_gb"):
        total = ZERO
        for c in costs:
            total = total + getattr(c, name)
        setattr(out, name, total)
    for name in ("gpu_mem_gib", "ram_gib"):
        vals = [getattr(c, name) for c in costs if getattr(c, name).value is not None]
        if vals:
            setattr(out, name, max(vals, key=lambda f: f.value))
    feeds = [c.cores_to_feed for c in costs if c.cores_to_feed]
    out.cores_to_feed = max(feeds) if feeds else None
    return out


# ----------------------------------------------------------------------------- the plan


@dataclass
class PlanCosts:
    cfg: StudyConfig
    stages: list[StageCost]
    bases: Bases

    def total(self, name: str) -> Figure:
        t = ZERO
        for s in self.stages:
            t = t + getattr(s, name)
        return t

    def peak(self, name: str) -> Figure:
        vals = [getattr(s, name) for s in self.stages if getattr(s, name).value is not None]
        return max(vals, key=lambda f: f.value) if vals else UNKNOWN

    def minimum_hardware(self) -> dict[str, str]:
        feeds = [s.cores_to_feed for s in self.stages if s.cores_to_feed]
        gpu, ram, disk = self.peak("gpu_mem_gib"), self.peak("ram_gib"), self.total("disk_gb")
        return {
            "GPU memory": _fmt(gpu.value, "GiB") + f" ({gpu.kind}: the largest stage, {gpu.basis})",
            "RAM": _fmt(ram.value, "GiB") + f" ({ram.kind}: the largest stage; stream training's "
                   "loader RAM not modelled)",
            "disk": _fmt(disk.value, "GB") + " (every stage's output kept: videos, rawframes, "
                    "feature cache, runs)",
            "cores": (f"{max(feeds):.0f} to keep the GPU fed at the assumed rate (estimate: images/s "
                      f"of the GPU / JPEG decode rate per core); prepare uses prep_workers = "
                      f"{self.cfg.prep_workers}") if feeds else
                     f"prep_workers = {self.cfg.prep_workers} (CPU-only study)",
        }  # fmt: skip


def plan_costs(cfg: StudyConfig, entries: list | None = None,
               results_dir: str | Path | None = None) -> PlanCosts:  # fmt: skip
    """Costs of every entry of ``stages.plan_entries(cfg)`` (row, node or None, config)."""
    from . import stages

    b = Bases.load(results_dir)
    entries = stages.plan_entries(cfg) if entries is None else entries
    passes: set = set()
    seen = {(n, c) for _, n, c in entries if n is not None}
    out = []

    def one(row, node, c) -> StageCost:
        if node.stage == "dataset":
            return _cost_dataset(c, row, b)
        if node.stage == "rawframes":
            return _cost_rawframes(c, row, b)
        if node.stage == "stream":
            return _cost_stream(c, node, row, b)
        if node.stage == "features":
            group = (node.get("stream"), node.get("split"), row["for"])
            first = group not in passes
            passes.add(group)
            return _cost_features(c, node, row, b, first)
        return _cost_head(c, node, row, b)

    for row, node, c in entries:
        if node is not None:
            out.append(one(row, node, c))
            continue
        # the Table 3 + audit placeholder: the cell is chosen on validation after Table 1;
        # priced at the params file's fusion_layer / fusion_method
        chosen = {"layer": cfg.fusion_layer, "method": cfg.fusion_method}
        parts = []
        for why, n, c2 in stages.table3_nodes(cfg, chosen):
            if (n, c2) in seen:
                continue
            seen.add((n, c2))
            parts.append(one({**row, "for": why}, n, c2))
        out.append(_sum_costs(row, parts, f"priced at {chosen['layer']}/{chosen['method']} "
                              "(the params file's cell; the real one is chosen on validation)"))  # fmt: skip
    return PlanCosts(cfg, out, b)


# ----------------------------------------------------------------------------- printing


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "?"
    if v != v:  # nan
        return "?"
    if v == 0:
        return "0"
    text = f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{text} {unit}".strip()


def fig(f: Figure, unit: str = "") -> str:
    """``12.3 h (e)``: the value and its kind's tag."""
    if f.value == 0 and f.kind == "computed":
        return "-"
    return f"{_fmt(f.value, unit)} ({f.tag})"


def format_plan(pc: PlanCosts, rows_width: int | None = None) -> list[str]:
    """The lines ``twostream plan`` prints after its header: each stage with its costs, the
    totals, the minimum hardware, then every figure's basis and the assumptions."""
    width = rows_width or max(len(s.row["what"]) for s in pc.stages)
    head = (f"  {'status':13s} {'stage':{width}s}  {'runs':>4s} {'wall':>11s} {'GPU-h':>11s} "
            f"{'CPU core-h':>11s} {'disk':>12s} {'GPU mem':>11s} {'RAM':>11s}  for")  # fmt: skip
    lines = [head]
    bases: dict[str, int] = {}
    for s in pc.stages:
        r = s.row
        ids = []
        for f in s.figures().values():
            if f.kind != "unknown" and f.value and f.basis != "sum":
                ids.append(bases.setdefault(f.basis, len(bases) + 1))
        refs = ",".join(str(i) for i in sorted(set(ids)))
        note = "; ".join(x for x in (s.note, f"bases {refs}" if refs else "") if x)
        lines.append(
            f"  {r['status']:13s} {r['what']:{width}s}  {s.runs:4d} {fig(s.wall_hours, 'h'):>11s} "
            f"{fig(s.gpu_hours, 'h'):>11s} {fig(s.cpu_core_hours, 'h'):>11s} "
            f"{fig(s.disk_gb, 'GB'):>12s} {fig(s.gpu_mem_gib, 'GiB'):>11s} "
            f"{fig(s.ram_gib, 'GiB'):>11s}  {r['for']}" + (f" ({note})" if note else "")
        )  # fmt: skip
    t = {n: pc.total(n) for n in ("wall_hours", "gpu_hours", "cpu_core_hours", "disk_gb")}
    lines.append(
        f"  {'TOTAL':13s} {'(sum of the stages above)':{width}s}  "
        f"{sum(s.runs for s in pc.stages):4d} {fig(t['wall_hours'], 'h'):>11s} "
        f"{fig(t['gpu_hours'], 'h'):>11s} {fig(t['cpu_core_hours'], 'h'):>11s} "
        f"{fig(t['disk_gb'], 'GB'):>12s} {fig(pc.peak('gpu_mem_gib'), 'GiB'):>11s} "
        f"{fig(pc.peak('ram_gib'), 'GiB'):>11s}  (memory: the largest stage)"
    )  # fmt: skip
    lines.append("minimum hardware:")
    lines += [f"  {k}: {v}" for k, v in pc.minimum_hardware().items()]
    lines.append("(m) measured unit rate from a benchmark JSON x counts, (c) computed from shapes "
                 "and counts, (e) estimate with an assumed factor, (?) not modelled. Bases:")  # fmt: skip
    lines += [f"  [{i}] {basis}" for basis, i in bases.items()]
    lines.append("assumptions:")
    lines += [f"  {k}: {v}" for k, v in pc.bases.assumptions()]
    found = ", ".join(pc.bases.found) or "none"
    lines.append(f"benchmark JSONs read from {pc.bases.results_dir}: {found}")
    if pc.bases.missing:
        lines.append(f"  absent (fallback constants used): {', '.join(pc.bases.missing)}")
    return lines


__all__ = [
    "Bases",
    "Figure",
    "PlanCosts",
    "StageCost",
    "format_plan",
    "head_profile",
    "plan_costs",
    "sizes",
    "stream_profile",
]
