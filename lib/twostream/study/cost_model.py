"""The cost model behind ``twostream plan``: the assumptions (named constants, printed with the plan),
a figure and its provenance (measured / computed / estimate), the bases read from committed
benchmark JSON, and the work counts and FLOP profiles of each stage's unit of work.

:mod:`twostream.study.costs` prices each stage of a plan from these."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from twostream.core.config import StudyConfig
from twostream.core.runtime import project_root
from twostream.data.splits import load_split
from twostream.models.fusion import fusion_out_channels, is_parameter_free
from twostream.models.streams import build_stream, tap_channels
from twostream.prepare.state import MANIFEST
from twostream.train.features import tap_grid
from twostream.train.head_trainer import head_kind

RESULTS_DIR = project_root() / "benchmarks" / "results"


GIB = 1024**3


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


# The GPU the estimates are for and its datasheet peaks (NVIDIA H100 SXM: 989 TFLOP/s dense
# bf16, 3.35 TB/s HBM3). What share of the peak the study's kernels sustain is an assumption
# (ASSUMPTIONS below), which ``twostream plan --assume NAME=VALUE`` sets.
GPU_NAME = "H100 SXM"


GPU_BF16_TFLOPS = 989.0


GPU_HBM_TB_S = 3.35


# ResNet streams (training, evaluation, feature pass): share of the dense bf16 peak. Public
# figure: ResNet-50 v1.5, PyTorch AMP, one A100 80GB trains 2,470 img/s (NVIDIA
# DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "Training
# performance: NVIDIA DGX A100", pytorch-21.03 container) = 2,470 x 24.6 GFLOP (3 x the
# 8.2 GFLOP forward, FLOPs = 2 x multiply-adds) = 61 TFLOP/s, 19% of the A100's 312. Convolution
# nets are bound by memory traffic as much as by FLOPs; the H100 brings 1.6x the bandwidth
# and 3.2x the FLOPs, so ~1.7x the A100's images/s: ResNet-50 ~4,200 img/s, ResNet-101
# (15.6 GFLOP forward by the FLOP counter, 46.6 GFLOP per training image) ~2,000-3,000 img/s
# = 94-140 TFLOP/s = 9.5-14% of 989. The default is the middle: an estimate, not a run.
GPU_UTILISATION = 0.12


# ConvLSTM heads: ~70% of a head's FLOPs are the first layer's input convolution, one batched
# convolution over all B x T steps (input_mode="precompute": M = 32 x 25 x 49 = 39,200,
# N = 1,200, K = 2,048 x 25 = 51,200), a GEMM shape that bf16 tensor cores run at a large share
# of peak; the recurrent 300 -> 1,200 convolution runs per step (M = 1,568) with the gate
# element-wise work. 30% is an estimate (no GPU run yet); benchmarks/convlstm.py measures it.
HEAD_UTILISATION = 0.30


# TV-L1: share of HBM bandwidth over the iterations a batch runs (TVL1_BYTES_PER_PIXEL_ITERATION
# per pixel and full-size-equivalent iteration). An estimate where no GPU run is committed:
# the H200 runs sustained 9-12% (flow-batch-nvidia-h200.json, dry_run-h200.json over
# flow-iterations-cpu.json's counts); pyramid levels of 10-77k pixels and a host check every
# 10 iterations keep the kernels far from the bandwidth. (0.5 before the iterations were
# counted, when every pair was assumed to run all 300 iterations of every warp.)
GPU_BANDWIDTH_UTILISATION = 0.1


# Feature-cache read rate on the GPU machine: a local NVMe SSD reads 2-3 GB/s sequentially;
# ~1 GB/s for 5 MB .npy files is an estimate. convlstm-cpu.json measured 234 MB/s cold on a
# 2-core VM's virtual disk (printed beside it); --assume read_mb_s=234 prices that disk.
READ_MB_S_DEFAULT = 1000.0


# nvJPEG decodes on the GPU (device input pipeline), 340x256 frames per second: an estimate
# (no GPU run yet; benchmarks/input_pipeline.py --device cuda measures it). Added to the GPU
# time of each stream stage (not overlapped with compute: conservative).
GPU_JPEG_PER_S = 20000.0


# Host cores of the GPU machine when it is not the loader (the loader uses cfg.num_workers).
HOST_CORES = 16


# What every launch of a stage pays before its work (:func:`launch_startup`): one `twostream`
# process starting (the interpreter, torch and the package imported). An estimate for a warm
# GPU server: both measurements are upper bounds. tools/rehearse.py's start-up stage measured
# 17 s on an idle 2-core AMD EPYC VM (rehearsal-cpu.json: `twostream evaluate --help`, bytecode
# cached); the H200 machine's first import took 18 s (gpu-suite-nvidia-h200.json, step
# "imports": a bare machine, nothing byte-compiled yet, CUDA initialised, every module imported).
STARTUP_S = 5.0


# What a torchrun launch adds to its workers' own start-up: the launcher (it imports torch: about
# one more start, before the workers begin), its elastic agent, the process group's rendezvous
# and DistributedDataParallel's broadcast of rank 0's parameters. An estimate: one STARTUP_S.
# Measured on the 2-core VM (startup-cpu.json: tools/ddp_probe.py under torchrun with 2 gloo
# processes less the same probe as one plain process, median of 3): +19 s on a 35 s plain
# start under a load average of 4; a single run at a lighter load: +35 s on 17.5 s. So
# 0.5-2 x a plain start.
TORCHRUN_S = STARTUP_S


# Microseconds one dispatched operator costs a GPU step that is bound by launches, not FLOPs
# (eager PyTorch: the host's dispatch of the op plus the kernel launch; a few microseconds each,
# more for the small ops of a recurrent cell). An estimate: no GPU run has timed a batch-of-one
# head yet (benchmarks/gpu_suite.sh should). It prices the heads trained the authors' way (one
# video per batch, ``train_state: carried``), whose step dispatches ~2,500 operators
# (head-ops-cpu.json) for ~1.4 ms of FLOPs at the paper's cell.
GPU_OP_US = 10.0
HEAD_OPS_FILE = "head-ops-cpu.json"
# (operators per training step, per evaluated video) of a batch-of-one head when
# head-ops-cpu.json is absent: its count at the paper's cell (2 layers 5x5, 25 steps, bf16
# autocast), rounded.
CARRIED_OPS_FALLBACK = (2470.0, 720.0)


# The assumptions a user can set: name -> (default, what it is). ``twostream plan --assume
# NAME=VALUE`` overrides; the plan prints every one with its value and where it comes from.
ASSUMPTIONS: dict[str, tuple[object, str]] = {
    "gpu_utilisation": (GPU_UTILISATION, "share of dense bf16 peak the ResNet streams sustain"),
    "head_utilisation": (HEAD_UTILISATION, "share of dense bf16 peak the ConvLSTM heads sustain"),
    "bandwidth_utilisation": (
        GPU_BANDWIDTH_UTILISATION,
        "share of HBM bandwidth TV-L1 sustains "
        "over the iterations it runs (flow-iterations-cpu.json)",
    ),
    "gpu_tflops": (GPU_BF16_TFLOPS, "dense bf16 peak, TFLOP/s"),
    "read_mb_s": (READ_MB_S_DEFAULT, "feature-cache read rate of the GPU machine's disk, MB/s"),
    "pipeline": (
        "device",
        "stream input path: 'device' (host reads JPEG bytes, the GPU decodes "
        "and augments: data/device_pipeline.py) or 'host' (workers decode + augment)",
    ),
    "head_cache_reads": (
        "once",
        "'once' (a head reads its cache once per run, then from RAM: "
        "float16 mmap) or 'every_epoch' (the old cache, over IN_MEMORY_LIMIT)",
    ),
    "val_views": (
        1,
        "views per video of the per-epoch validation (final val/test: "
        "num_segments x test_crops); 250 prices ten-crop validation every epoch",
    ),
    "gpu_jpeg_per_s": (GPU_JPEG_PER_S, "GPU JPEG decodes/s of 340x256 frames (device pipeline)"),
    "prefetch_factor": (2, "batches each DataLoader worker holds (PyTorch's default)"),
    "startup_s": (
        STARTUP_S,
        "seconds one stage's process takes to start (Python, torch, the "
        "package): paid once per launch (cost_model.STARTUP_S)",
    ),
    "torchrun_s": (
        TORCHRUN_S,
        "seconds a torchrun launch adds to its workers' start-up "
        "(launcher, rendezvous, DDP wrap; cost_model.TORCHRUN_S)",
    ),
    "gpu_op_us": (
        GPU_OP_US,
        "microseconds per dispatched operator of a launch-bound GPU step (heads trained "
        "with carried state: batch of one video; cost_model.GPU_OP_US)",
    ),
    "nproc": (
        1,
        "processes per launch of the training stages (torchrun --nproc_per_node; 1 = "
        "a plain command): prices their start-up only",
    ),
}


# Assumptions that may be 0 (a start-up that is not paid); every other number must be > 0.
ZERO_ALLOWED = ("startup_s", "torchrun_s")


# Host CPU milliseconds on ONE core, when input-pipeline-cpu.json is absent (its measurement on
# real UCF101 frames, rounded): "host" = the workers decode + augment (per train sample; per
# view of a ten-crop video), "device" = the workers read JPEG bytes only (per train sample; per
# eval video, all T steps); ("decode", "rgb", "frame") = one 340x256 colour JPEG decode (cv2).
HOST_MS_FALLBACK = {
    ("host", "rgb", "train"): 1.86, ("host", "flow", "train"): 15.8,
    ("host", "rgb", "eval_view"): 1.19, ("host", "flow", "eval_view"): 12.2,
    ("device", "rgb", "train"): 0.15, ("device", "flow", "train"): 0.91,
    ("device", "rgb", "eval_video"): 1.5, ("device", "flow", "eval_video"): 16.0,
    ("decode", "rgb", "frame"): 0.80,
}  # fmt: skip


# JPEG bytes of one step (device pipeline's loader item: input-pipeline-cpu.json's ten-crop
# video / its steps), when the JSON is absent.
ENCODED_STEP_BYTES_FALLBACK = {"rgb": 24000.0, "flow": 91000.0}


# Backward ~ 2x forward FLOPs (weight gradient + input gradient, each a forward's worth):
# the usual rule, which the FLOP counter confirms for convolutions.
BACKWARD_OVER_FORWARD = 2.0


# TV-L1 memory traffic: ~20 float32 maps streamed per pixel and iteration (estimate_h100.py).
TVL1_BYTES_PER_PIXEL_ITERATION = 20 * 4


# TV-L1 iterations. The torch solver stops a pair's inner loop when its error falls below
# epsilon, and on CUDA a batch runs each (level, warp) as long as its slowest pair: what a
# pair costs is the batch-max, in full-size-equivalent iterations (each level's iterations
# times its pixels over the full size's). benchmarks/flow_iterations.py counts it on real
# UCF101 frames and on the frames of the GPU benchmarks (flow-iterations-cpu.json); without
# it the plan counts every iteration the preset allows (no early stop: an upper bound).
FLOW_ITERATIONS_FILE = "flow-iterations-cpu.json"


def tvl1_nominal_iterations(p) -> float:
    """Full-size-equivalent inner iterations of a pair that never stops early (preset ``p``)."""
    levels = sum(p.scale_step ** (2 * k) for k in range(p.nscales))
    return levels * p.warps * p.inner_iterations * p.outer_iterations


def nearest(options, value: int) -> int:
    """The option nearest ``value`` on a log scale (batch sizes: 64 is as near 16 as 256)."""
    return min(sorted(int(o) for o in options), key=lambda o: abs(math.log(o / value)))


# prepare's CPU work per frame besides flow: one video decode and three JPEG encodes (RGB,
# flow x, flow y); each is assumed to cost one JPEG decode of a 340x256 colour frame (measured
# by input-pipeline-cpu.json).
PREPARE_JPEG_OPS_PER_FRAME = 4.0


# Sizes when no benchmark JSON gives them: bytes per JPEG frame at 341x256 (the order of
# disk_usage.json's measurement), prepare worker RSS.
FRAME_BYTES_FALLBACK = {"rgb": 26000.0, "flow": 9500.0}


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


def _show(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def parse_assumptions(items) -> dict[str, object]:
    """``["gpu_utilisation=0.35", "read_mb_s=500"]`` (or a dict) -> checked overrides."""
    out: dict[str, object] = {}
    pairs = (
        items.items()
        if isinstance(items, dict)
        else (str(i).split("=", 1) if "=" in str(i) else (str(i), None) for i in items or ())
    )
    for name, value in pairs:
        name = str(name).strip()
        if name not in ASSUMPTIONS:
            raise ValueError(f"unknown assumption {name!r}; known: {', '.join(ASSUMPTIONS)}")
        if value is None:
            raise ValueError(f"--assume {name} needs a value: {name}=VALUE")
        default = ASSUMPTIONS[name][0]
        if isinstance(default, str):
            value = str(value).strip().replace("-", "_")
            allowed = {"pipeline": ("device", "host"),
                       "head_cache_reads": ("once", "every_epoch")}[name]  # fmt: skip
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        else:
            try:
                value = type(default)(float(value)) if isinstance(default, int) else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {value!r}") from None
            if (
                value < 0
                or (value == 0 and name not in ZERO_ALLOWED)
                or (name.endswith("utilisation") and value > 1)
            ):
                raise ValueError(f"{name} must be > 0" + (" and <= 1" if "util" in name else ""))
        out[name] = value
    return out


@dataclass
class Bases:
    """Unit costs read from ``benchmarks/results/`` (or the named fallbacks) and the settable
    assumptions (``ASSUMPTIONS``), with sources."""

    results_dir: Path
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    gpu_name: str = GPU_NAME
    hbm_tb_s: float = GPU_HBM_TB_S
    cores: int = HOST_CORES
    values: dict[str, object] = field(
        default_factory=lambda: {k: v for k, (v, _) in ASSUMPTIONS.items()}
    )
    set_by_user: dict[str, object] = field(default_factory=dict)
    from_params: dict[str, str] = field(default_factory=dict)
    host_ms: dict[tuple[str, str, str], float] = field(
        default_factory=lambda: dict(HOST_MS_FALLBACK)
    )
    encoded_step_bytes: dict[str, float] = field(
        default_factory=lambda: dict(ENCODED_STEP_BYTES_FALLBACK)
    )
    data_source: str | None = None
    flow_cpu: dict[tuple[str, str], float] = field(default_factory=dict)  # pairs/s, 320x240
    flow_source: str | None = None
    flow_calibrated: dict[tuple[str, str], str] = field(default_factory=dict)  # key -> source
    frame_bytes: dict[str, float] = field(default_factory=lambda: dict(FRAME_BYTES_FALLBACK))
    frame_source: str | None = None
    vm_read_mb_s: float | None = None
    vm_read_source: str | None = None
    worker_mib: float = PREPARE_WORKER_MIB_FALLBACK
    worker_source: str | None = None
    gpu_benchmarks: list[str] = field(default_factory=list)
    # flow-iterations-cpu.json: set -> {"as_timed": cost, "batches": {batch: cost}}
    flow_iters: dict[str, dict] = field(default_factory=dict)
    flow_iters_source: str | None = None
    flow_cross_check: tuple[float, str] | None = None  # (share, text): the dry run's basis
    # head-ops-cpu.json: operators per video of a batch-of-one head, training step and forward
    carried_ops: tuple[float, float] | None = None
    carried_ops_source: str | None = None

    def _load(self, name: str) -> dict | None:
        p = self.results_dir / name
        if not p.is_file():
            self.missing.append(name)
            return None
        self.found.append(name)
        return json.loads(p.read_text())

    @classmethod
    def load(cls, results_dir: str | Path | None = None, assume=None,
             calibration: str | Path | None = None) -> Bases:  # fmt: skip
        """``calibration``: a JSON with this CPU's TV-L1 rate (:meth:`read_flow_calibration`),
        which replaces flow-cpu.json's rate for its backend and preset."""
        b = cls(Path(results_dir) if results_dir is not None else RESULTS_DIR)
        pipe = b._load("input-pipeline-cpu.json")
        if pipe:
            b._read_input_pipeline(pipe)
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
                b.vm_read_mb_s = float(r["cold_mb_per_s"])
                b.vm_read_source = f"convlstm-cpu.json ({conv.get('device')}, cold reads)"
                break
        prep = b._load("prepare-scale-cpu.json")
        if prep and (prep.get("full_run") or {}).get("worker_maxrss_mib"):
            b.worker_mib = float(prep["full_run"]["worker_maxrss_mib"])
            b.worker_source = f"prepare-scale-cpu.json ({prep.get('device')}, tiny videos)"
        iters = b._load(FLOW_ITERATIONS_FILE)
        if iters:
            for name, s in (iters.get("sets") or {}).items():
                if "batches" in s:
                    b.flow_iters[name] = {
                        "as_timed": float(s["as_benchmarked"]["cost"]),
                        "batches": {int(k): float(v["cost"]) for k, v in s["batches"].items()},
                        "pairs": int(s["pairs"]),
                    }
            b.flow_iters_source = f"{FLOW_ITERATIONS_FILE}, {iters.get('device')}"
        ops = b._load(HEAD_OPS_FILE)
        if ops:
            for r in ops.get("rows", []):
                if r.get("carried") and r.get("batch") == 1:
                    b.carried_ops = (float(r["ops_per_step"]), float(r["eval_ops_per_video"]))
                    b.carried_ops_source = f"{HEAD_OPS_FILE} ({ops.get('params')})"
            if ops.get("host_us_per_op"):
                # the host dispatches every operator; with tiny kernels the GPU cannot go below
                # that, so the host's measured share stands in for gpu_op_us (a GPU host's CPU
                # is likely faster, the kernel launch adds: --assume gpu_op_us=... sets it)
                b.values["gpu_op_us"] = float(ops["host_us_per_op"])
                b.from_params["gpu_op_us"] = (f"measured: host dispatch per operator of a "
                                              f"batch-of-one step, {HEAD_OPS_FILE} "
                                              f"({ops.get('device')})")  # fmt: skip
        b.gpu_benchmarks = sorted(
            p.name for p in b.results_dir.glob("*.json")
            if p.name.startswith(("gpu-suite-", "dry_run-")) and p.name != "dry_run-cpu.json"
        )  # fmt: skip
        if calibration is not None:
            b.read_flow_calibration(Path(calibration))
        b.set_by_user = parse_assumptions(assume or ())
        b.values.update(b.set_by_user)
        return b

    def read_flow_calibration(self, path: Path) -> None:
        """The CPU's TV-L1 pairs/s per core at 320x240 from ``path``: a rehearsal JSON
        (tools/rehearse.py: its "calibration") or a flow benchmark JSON (benchmarks/flow.py's
        format, like flow-cpu.json). It replaces the committed rate for the backend and preset
        it measured, so the plan prices prepare on the CPU that was calibrated."""
        if not path.is_file():
            raise ValueError(f"calibration file {path} does not exist")
        d = json.loads(path.read_text())
        cal = d.get("calibration")
        if cal and cal.get("flow_pairs_per_s_core"):
            # rehearsals before the calibration named its flow measured the paper preset's
            # (params/ucf101-paper.yaml: torch backend, paper preset; 320x240 clips, one core)
            key = (cal.get("flow_backend", "torch"), cal.get("flow_preset", "paper"))
            self.flow_cpu[key] = float(cal["flow_pairs_per_s_core"])
            where = (d.get("machine") or {}).get("processor", "?")
            when = d.get("date", "?")
            self.flow_calibrated[key] = (f"measured by the calibration in {path.name} ({where}, "
                                         f"{when}, 320x240, 1 thread)")  # fmt: skip
        else:
            rows = [r for r in d.get("speed", []) if r.get("size") == "320x240"
                    and r.get("device") == "cpu x1 thread"]  # fmt: skip
            if not rows:
                raise ValueError(f"{path} holds no CPU TV-L1 rate: neither a rehearsal's "
                                 "calibration.flow_pairs_per_s_core nor a flow benchmark's "
                                 "320x240 'cpu x1 thread' rows")  # fmt: skip
            for r in rows:
                key = (r["backend"], r["preset"])
                self.flow_cpu[key] = float(r["pairs_per_s"])
                self.flow_calibrated[key] = (f"measured in {path.name} ({d.get('device')}, "
                                             "320x240, 1 thread)")  # fmt: skip

    def flow_cpu_source(self, key: tuple[str, str]) -> str | None:
        """Where the CPU TV-L1 rate of (backend, preset) comes from."""
        return self.flow_calibrated.get(key, self.flow_source)

    def _read_input_pipeline(self, d: dict) -> None:
        res = d.get("results") or {}
        try:
            for m in ("rgb", "flow"):
                tr, ev = res[m]["train"], res[m]["eval_ten_crop"]
                views = ev["steps"] * 10
                self.host_ms[("host", m, "train")] = float(tr["before_host"]["cpu_ms_per_sample"])
                self.host_ms[("host", m, "eval_view")] = float(ev["before"]["cpu_s"]) * 1e3 / views
                self.host_ms[("device", m, "train")] = float(
                    tr["after_host_encoded"]["cpu_ms_per_sample"]
                )
                self.host_ms[("device", m, "eval_video")] = (
                    float(ev["after_encoded"]["cpu_s"]) * 1e3
                )
                self.encoded_step_bytes[m] = float(ev["after_encoded"]["item_bytes"]) / ev["steps"]
            self.host_ms[("decode", "rgb", "frame")] = float(
                res["rgb"]["train"]["after_host_decode_cv2"]["cpu_ms_per_sample"]
            )
        except (KeyError, TypeError, ZeroDivisionError):
            self.host_ms = dict(HOST_MS_FALLBACK)
            self.data_source = None
            return
        frames = (d.get("rawframes") or {}).get("clips") or {}
        self.data_source = (f"input-pipeline-cpu.json ({len(frames)} real UCF101 clips at "
                            f"{'x'.join(map(str, (d.get('rawframes') or {}).get('size_wh', [])))}, "
                            f"{(d.get('machine') or {}).get('cpu_model', '?')}, 1 core)")  # fmt: skip

    # ------------------------------------------------------------------ the assumptions
    def __getitem__(self, name: str):
        return self.values[name]

    @property
    def tflops(self) -> float:
        return float(self.values["gpu_tflops"])

    @property
    def utilisation(self) -> float:
        return float(self.values["gpu_utilisation"])

    @property
    def bandwidth_utilisation(self) -> float:
        return float(self.values["bandwidth_utilisation"])

    @property
    def read_mb_s(self) -> float:
        return float(self.values["read_mb_s"])

    @property
    def flops_per_s(self) -> float:
        return self.tflops * 1e12 * self.utilisation

    @property
    def head_flops_per_s(self) -> float:
        return self.tflops * 1e12 * float(self.values["head_utilisation"])

    def tvl1_iterations(self, p, batch: int) -> tuple[float, str]:
        """Full-size-equivalent TV-L1 iterations one pair costs in a CUDA batch of ``batch``
        real pairs, and their basis (the preset's every iteration when not measured)."""
        real = self.flow_iters.get("ucf101_real")
        if real:
            b = nearest(real["batches"], batch)
            return real["batches"][b], (f"batch-max of {b} real UCF101 pairs, "
                                        f"{self.flow_iters_source}")  # fmt: skip
        return tvl1_nominal_iterations(p), (f"every iteration of the preset (no early stop; no "
                                            f"{FLOW_ITERATIONS_FILE})")  # fmt: skip

    def ms(self, modality: str, what: str) -> float:
        """Host CPU ms on one core: per train sample, per eval view (host) or video (device)."""
        pipe = str(self.values["pipeline"])
        if what == "eval":
            what = "eval_view" if pipe == "host" else "eval_video"
        return self.host_ms[(pipe, modality, what)]

    def source(self, name: str) -> str:
        if name in self.set_by_user:
            return "set with --assume"
        if name in self.from_params:
            return self.from_params[name]
        return "default" + (" (estimate)" if name.endswith(("utilisation", "_s")) else "")

    def gpu_basis(self, head: bool = False) -> str:
        name = "head_utilisation" if head else "gpu_utilisation"
        return (f"FLOPs / ({float(self.values[name]):.0%} of {self.gpu_name} {self.tflops:g} "
                f"TFLOP/s bf16: {name}, {self.source(name)})")  # fmt: skip

    def assumptions(self) -> list[tuple[str, str]]:
        """(name, value and source) of every assumption the figures use, for printing."""
        settable = [(f"{k} = {_show(self.values[k])}", f"{what} [{self.source(k)}]")
                    for k, (_, what) in ASSUMPTIONS.items()]  # fmt: skip
        host = self.host_ms
        out = settable + [
            ("GPU", f"{self.gpu_name}, {self.tflops:g} TFLOP/s dense bf16, {self.hbm_tb_s:g} TB/s "
                    "HBM (datasheet); a sustained share above is measured where its source "
                    "says so (study/gpu_measured.py: a committed GPU dry run), else an estimate "
                    "(ResNet: 2,000-3,000 img/s ResNet-101 on an H100, from NVIDIA's published "
                    "ResNet-50 A100 AMP throughput; see cost_model.GPU_UTILISATION)"),
            ("GPU benchmarks", ", ".join(self.gpu_benchmarks) if self.gpu_benchmarks else
             "none committed (no dry_run-<gpu>.json / gpu-suite-<gpu>.json): every GPU-hour is "
             "an estimate"),
            ("loader", "DataLoader workers = the params file's num_workers, each one core; feed "
                       "rate = num_workers x 1000 / (host ms per sample)"),
            ("host ms per sample (1 core)",
             f"host pipeline: RGB {host[('host', 'rgb', 'train')]:.2f} / flow "
             f"{host[('host', 'flow', 'train')]:.2f} per train sample, "
             f"{host[('host', 'rgb', 'eval_view')]:.2f} / {host[('host', 'flow', 'eval_view')]:.2f}"
             f" per ten-crop view; device pipeline: {host[('device', 'rgb', 'train')]:.2f} / "
             f"{host[('device', 'flow', 'train')]:.2f} per train sample, "
             f"{host[('device', 'rgb', 'eval_video')]:.1f} / "
             f"{host[('device', 'flow', 'eval_video')]:.1f} per eval video: "
             f"{self.data_source or 'HOST_MS_FALLBACK (no input-pipeline-cpu.json)'}"),
            ("CPU TV-L1", "; ".join(f"{k[0]}/{k[1]} {v:.2f} pairs/s per core at 320x240: "
                                    f"{self.flow_cpu_source(k)}"
                                    for k, v in sorted(self.flow_cpu.items())) or
             "no flow-cpu.json and no calibration"),
            ("BACKWARD_OVER_FORWARD", f"{BACKWARD_OVER_FORWARD:g} (backward ~ 2x forward FLOPs)"),
            ("PREPARE_JPEG_OPS_PER_FRAME", f"{PREPARE_JPEG_OPS_PER_FRAME:g} JPEG-decode equivalents "
                                           "per frame (video decode + 3 JPEG encodes), each "
                                           f"{host[('decode', 'rgb', 'frame')]:.2f} ms"),
            ("frame bytes", f"{self.frame_bytes['rgb']:.0f} RGB + {self.frame_bytes['flow']:.0f} "
                            f"flow x+y bytes/frame at 341x256: "
                            f"{self.frame_source or 'FRAME_BYTES_FALLBACK (no disk_usage.json)'}"),
            ("measured disk", (f"{self.vm_read_mb_s:.0f} MB/s cold: {self.vm_read_source} (not the "
                               "GPU machine's disk; --assume read_mb_s=... prices any)")
             if self.vm_read_mb_s else "no convlstm-cpu.json"),
            ("UCF101", f"{UCF101_VIDEOS} videos, {UCF101_CLASSES} classes, splits (train, test) "
                       f"{UCF101_SPLITS}, {MEAN_FRAMES['ucf101']} frames/video, "
                       f"{VIDEO_ARCHIVE_GB['ucf101']} GB archive"),
            ("HMDB51", f"{HMDB51_VIDEOS} videos, {HMDB51_CLASSES} classes, splits (train, test) "
                       f"{HMDB51_SPLITS[1]} each, {MEAN_FRAMES['hmdb51']} frames/video, "
                       f"{VIDEO_ARCHIVE_GB['hmdb51']} GB archive"),
        ]  # fmt: skip
        return out


def launch_startup(b: Bases, nproc: int | None = None) -> Figure:
    """Seconds one launch of a stage pays before its work, in hours: ``nproc`` processes
    (default: the ``nproc`` assumption) start at once, each ``startup_s``, sharing the host's
    cores (``b.cores``: more processes than cores start in waves), and under torchrun
    (``nproc`` > 1) the launcher, rendezvous and DDP wrap add ``torchrun_s``."""
    n = int(b["nproc"] if nproc is None else nproc)
    start = float(b["startup_s"]) * max(1.0, n / max(1, b.cores))
    extra = float(b["torchrun_s"]) if n > 1 else 0.0
    what = (f"start-up: startup_s = {float(b['startup_s']):g} s ({b.source('startup_s')})"
            + (f" x max(1, {n} processes / {b.cores} cores) + torchrun_s = {extra:g} s "
               f"({b.source('torchrun_s')})" if n > 1 else ""))  # fmt: skip
    return Figure((start + extra) / 3600, "estimate", what)


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
    frames, prepared = _prepared_frames(cfg)
    if prepared:  # a prepared data set: its own videos and frames, not the published ones
        videos, src = prepared, f"{src}; videos and mean frames from the rawframes manifest"
    return Sizes(videos, tr, te, frames, w, h, src)


def _prepared_frames(cfg: StudyConfig) -> tuple[float, int]:
    """(mean frames per video, videos) of the prepared rawframes' manifest, when it exists;
    else (the published mean, 0)."""
    manifest = cfg.rawframes_dir / MANIFEST
    if manifest.is_file():
        ok = [r for r in map(json.loads, manifest.read_text().splitlines()) if r.get("frames")]
        if ok:
            return sum(int(r["frames"]) for r in ok) / len(ok), len(ok)
    return float(MEAN_FRAMES[cfg.dataset]), 0


@functools.lru_cache(maxsize=16)
def stream_profile(backbone: str, modality: str, input_size: int, flow_length: int,
                   num_classes: int) -> dict[str, float]:  # fmt: skip
    """FLOPs and memory of one ResNet stream per image, counted on the meta device:
    train (forward + backward) and feature forward FLOPs, parameters, the bytes autograd saves
    for the backward (float32; bf16 autocast stores about half) and the largest activation."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

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
    fusion has no parameters. FC-LSTM: the same with k = 1, h = w = 1 (``pooled``: after
    the fusion of the h x w maps and their average).
    """

    c = tap_channels(cfg.backbone, layer)
    grid = tap_grid(cfg.input_size, layer) or (1, 1)
    hw, T, ch = grid[0] * grid[1], cfg.num_segments, cfg.convlstm_hidden
    cf = c if method in ("spatial", "temporal") else fusion_out_channels(method, channels=c)
    kind = kind or head_kind(layer)
    k2 = 1 if kind in ("fclstm", "pooled") else kernel * kernel
    fwd, params, act = 0.0, 0.0, 2.0 * c * hw * T * 4  # both streams' float32 inputs
    if method == "conv":
        fwd += 2.0 * 2 * c * c * hw * T
        params += 2 * c * c + c
    if kind == "pooled":  # the fused maps averaged over the grid, then an FC-LSTM
        fwd += 1.0 * cf * hw * T
        hw = 1
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
