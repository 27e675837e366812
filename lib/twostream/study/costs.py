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
the ResNets, closed form for the ConvLSTM heads) divided by an assumed share of the GPU's peak
(``cost_model.ASSUMPTIONS``: printed with the plan, set with ``twostream plan --assume
NAME=VALUE``). The loader is priced from host milliseconds per sample measured on real UCF101
frames (``input-pipeline-cpu.json``) for the host pipeline and the device pipeline, on the
params file's ``num_workers`` cores. Counting FLOPs and activations needs no data and no GPU;
nothing here runs a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twostream.core.config import StudyConfig
from twostream.flow.params import PRESETS
from twostream.models.streams import tap_channels
from twostream.pipeline.graph import node_seed
from twostream.study import plan as study_plan
from twostream.study.cost_model import (
    CARRIED_OPS_FALLBACK,
    FEATURE_BATCH_VIDEOS,
    GIB,
    HEAD_BYTES_PER_PARAM,
    HMDB51_CLASSES,
    PREPARE_JPEG_OPS_PER_FRAME,
    STREAM_BYTES_PER_PARAM,
    TVL1_BYTES_PER_PIXEL_ITERATION,
    UCF101_CLASSES,
    UNKNOWN,
    VIDEO_ARCHIVE_GB,
    ZERO,
    Bases,
    Figure,
    StageCost,
    head_profile,
    launch_startup,
    sizes,
    stream_profile,
)
from twostream.study.gpu_measured import apply_measured
from twostream.train.features import DTYPE, IN_MEMORY_LIMIT, tap_grid

# ----------------------------------------------------------------------------- assumptions


# ----------------------------------------------------------------------------- the bases


# ----------------------------------------------------------------------------- work counts


# ----------------------------------------------------------------------------- per stage


def _num_classes(cfg: StudyConfig) -> int:
    if cfg.dataset == "ucf101":
        return UCF101_CLASSES
    if cfg.dataset == "hmdb51":
        return HMDB51_CLASSES
    return cfg.synth_classes


def _frames_per_step(cfg: StudyConfig, modality: str) -> int:
    """JPEG files one step reads: one RGB frame, or L flow x + L flow y planes."""
    return 1 if modality == "rgb" else 2 * cfg.flow_length


def _item_bytes(cfg: StudyConfig, modality: str, b: Bases, views: int) -> float:
    """Bytes one loader item holds for ``views`` images: float32 C x S x S on the host path,
    the JPEG bytes of the steps on the device path (its views are cropped on the GPU)."""
    c = 3 if modality == "rgb" else 2 * cfg.flow_length
    if b["pipeline"] == "host":
        return float(views * c * cfg.input_size**2 * 4)
    steps = views if views == 1 else max(1, views // max(1, cfg.test_crops))
    return steps * b.encoded_step_bytes[modality]


def _loader_ram(cfg: StudyConfig, b: Bases, batch_bytes: float) -> float:
    """(workers x prefetch_factor + 2) batches in flight: the workers' prefetched batches, the
    one the main process holds and its pinned copy. num_workers = 0: those two only."""
    workers = max(0, cfg.num_workers)
    return (workers * int(b["prefetch_factor"]) + 2) * batch_bytes


def _gpu_stage(compute_s: float, decode_s: float, host_core_s: float, workers: int,
               read_s: float = 0.0) -> tuple[float, float | None, str]:  # fmt: skip
    """(hours, host cores that would keep the GPU busy, what bounds it).

    The GPU time is compute + its JPEG decodes (device pipeline); the loader delivers with
    ``workers`` cores in parallel with it (num_workers = 0: in the training process, in
    series); feature reads overlap compute."""
    gpu_s = compute_s + decode_s
    if workers > 0:
        data_s = host_core_s / workers
        parts = [(gpu_s, "compute"), (data_s, f"loader ({workers} workers)"), (read_s, "reads")]
        total, what = max(parts)
    else:
        total, what = gpu_s + host_core_s + read_s, "compute + in-process loading"
    feed = host_core_s / gpu_s if gpu_s and host_core_s else None
    note = f"{what}-bound" + ("" if what == "compute" else f" (GPU alone {gpu_s / 3600:.2g} h)")
    return total / 3600, feed, note


def _cost_dataset(cfg: StudyConfig, row, b: Bases) -> StageCost:
    if cfg.dataset == "synthetic":
        s = sizes(cfg, cfg.split)
        gb = s.videos * s.frames * s.width * s.height * 3 / 1e9  # uncompressed upper bound
        disk = Figure(gb, "estimate", "synthetic clips, uncompressed size (an upper bound)")
        return StageCost(row, 1, disk_gb=disk, note="generated on the CPU in seconds")
    disk = Figure(VIDEO_ARCHIVE_GB[cfg.dataset], "estimate", "VIDEO_ARCHIVE_GB (official archive)")
    return StageCost(row, 1, disk_gb=disk, ram_gib=ZERO, note="download and unpack (not timed)")


def _cost_rawframes(cfg: StudyConfig, row, b: Bases) -> StageCost:

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
    jpeg_core_s = (
        frames * PREPARE_JPEG_OPS_PER_FRAME * b.host_ms[("decode", "rgb", "frame")] / 1e3 * scale
    )
    p = PRESETS[cfg.flow_preset]
    workers = max(1, cfg.prep_workers)
    ram = Figure((workers * b.worker_mib * 2**20 + workers * s.frames * pixels * 3) / GIB,
                 "estimate", f"prep_workers x (worker RSS {b.worker_source or 'fallback'} + one "
                 "decoded video)")  # fmt: skip
    if cfg.flow_backend == "torch" and cfg.flow_device.startswith("cuda"):
        iters, it_basis = b.tvl1_iterations(p, cfg.flow_batch)
        pair_bytes = pixels * iters * TVL1_BYTES_PER_PIXEL_ITERATION
        pair_s = pair_bytes / (b.hbm_tb_s * 1e12 * b.bandwidth_utilisation)
        gpu_h = pairs * pair_s / 3600
        cpu_h = jpeg_core_s / 3600
        wall = max(gpu_h, cpu_h / workers)
        note = f"flow on the GPU (torch backend, batch {cfg.flow_batch})"
        if b.flow_cross_check:  # the same traffic at the dry run's measured share
            cross = pairs * pair_bytes / (b.hbm_tb_s * 1e12 * b.flow_cross_check[0]) / 3600
            note += f"; {cross:.1f} GPU-h at the dry run's share (cross-check)"
        return StageCost(
            row, 1,
            gpu_hours=Figure(gpu_h, "estimate", f"TV-L1 memory traffic ({iters:.0f} full-size "
                             f"iterations per pair: {it_basis}; {TVL1_BYTES_PER_PIXEL_ITERATION}"
                             f" B/pixel/iteration) at {b.bandwidth_utilisation:.1%} of "
                             f"{b.hbm_tb_s:g} TB/s, per frame pair"),
            cpu_core_hours=Figure(cpu_h, "estimate", "PREPARE_JPEG_OPS_PER_FRAME x one JPEG "
                                  f"decode ({b.data_source or 'HOST_MS_FALLBACK'})"),
            wall_hours=Figure(wall, "estimate", "max(GPU flow, JPEG work on prep_workers cores)"),
            disk_gb=disk, ram_gib=ram, note=note,
        )  # fmt: skip
    rate = b.flow_cpu.get((cfg.flow_backend, cfg.flow_preset))
    if rate:
        flow_s = pairs / rate * pixels / (320 * 240)
        kind = "measured" if (s.width, s.height) == (320, 240) else "estimate"
        source = b.flow_cpu_source((cfg.flow_backend, cfg.flow_preset))
        basis = f"{rate:.2f} pairs/s/core, {source}" + (
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
    train = cfg.stream_epochs * n_train * cfg.samples_per_video
    val_views = int(b["val_views"])
    ten_crop = cfg.num_segments * cfg.test_crops
    epoch_val = cfg.stream_epochs * n_val * val_views  # images
    final = (n_val + s.test) * ten_crop  # images: best checkpoint on val + test
    compute_s = (
        train * prof["train_flops"] + (epoch_val + final) * prof["fwd_flops"]
    ) / b.flops_per_s
    fps = _frames_per_step(cfg, modality)
    device = b["pipeline"] == "device"
    # host core-seconds of the loader
    one = b.ms(modality, "train") / 1e3  # one train sample; a one-view validation item alike
    if device:
        per_video = b.ms(modality, "eval") / 1e3  # read the T steps' bytes
        val_video = one * val_views if val_views < cfg.num_segments else per_video
        core_s = train * one + cfg.stream_epochs * n_val * val_video + (n_val + s.test) * per_video
        # the GPU decodes every step once (the crops are views of it)
        steps = (
            train
            + epoch_val // max(1, val_views // cfg.num_segments or 1)
            + (n_val + s.test) * cfg.num_segments
        )
        decode_s = steps * fps / float(b["gpu_jpeg_per_s"])
    else:
        view = b.ms(modality, "eval") / 1e3
        core_s = train * one + epoch_val * (one if val_views == 1 else view) + final * view
        decode_s = 0.0
    hours, feed, bound = _gpu_stage(compute_s, decode_s, core_s, cfg.num_workers)
    eval_share = (epoch_val + final) * prof["fwd_flops"] / (compute_s * b.flops_per_s)
    basis = (f"{b.gpu_basis()}; ResNet FLOPs counted on the meta device; training images + "
             f"validation every epoch at val_views = {val_views}/video + the best checkpoint's "
             f"val and test at T x test_crops = {ten_crop}/video"
             + (f"; + GPU JPEG decodes at {float(b['gpu_jpeg_per_s']):,.0f}/s" if device else "")
             + f"; max(GPU, loader: {b['pipeline']} pipeline, num_workers = {cfg.num_workers} "
             f"cores x host ms per sample)")  # fmt: skip
    mem = prof["params"] * STREAM_BYTES_PER_PARAM + cfg.stream_batch_size * prof["saved_bytes"]
    eval_bs = max(1, 2 * cfg.stream_batch_size // cfg.num_segments)  # stream_trainer's
    batch = max(
        cfg.stream_batch_size * _item_bytes(cfg, modality, b, 1),
        eval_bs * _item_bytes(cfg, modality, b, ten_crop),
    )
    ram = _loader_ram(cfg, b, batch)
    return StageCost(
        row, 1,
        gpu_hours=Figure(hours, "estimate", basis),
        wall_hours=Figure(hours, "estimate", "= GPU-hours (one GPU, held for the whole stage)"),
        disk_gb=Figure(prof["params"] * (4 + 8) / 1e9, "computed",
                       "best (weights) + last (weights, momentum) checkpoints, float32"),
        gpu_mem_gib=Figure(mem / GIB, "estimate", f"params x {STREAM_BYTES_PER_PARAM} B + batch "
                           f"{cfg.stream_batch_size} x saved activations (float32 count on the meta"
                           " device; bf16 autocast ~ half)"),
        ram_gib=Figure(ram / GIB, "estimate" if device else "computed",
                       f"loader: (num_workers x prefetch_factor + 2) x the larger batch (train "
                       f"{cfg.stream_batch_size} samples, eval {eval_bs} videos x {ten_crop} views)"
                       f" x item bytes ({b['pipeline']} pipeline)"),
        cores_to_feed=feed,
        note=f"{bound}; evaluation = {eval_share:.0%} of FLOPs",
    )  # fmt: skip


def _feature_bytes(cfg: StudyConfig, tap: str) -> float:
    import numpy as np

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
    compute_s = images * prof["fwd_flops"] / b.flops_per_s
    if b["pipeline"] == "device":
        core_s = videos * b.ms(modality, "eval") / 1e3
        decode_s = images * _frames_per_step(cfg, modality) / float(b["gpu_jpeg_per_s"])
    else:
        core_s, decode_s = images * b.ms(modality, "train") / 1e3, 0.0  # a centre crop per step
    hours, feed, bound = _gpu_stage(compute_s, decode_s, core_s, cfg.num_workers)
    batch = FEATURE_BATCH_VIDEOS * cfg.num_segments
    steps_bytes = FEATURE_BATCH_VIDEOS * _item_bytes(cfg, modality, b, cfg.num_segments)
    return StageCost(
        row, 1,
        gpu_hours=Figure(hours, "estimate", f"{b.gpu_basis()}; T centre-crop images per video, "
                         f"full forward; max(GPU, loader on num_workers = {cfg.num_workers} "
                         f"cores, {b['pipeline']} pipeline)"),
        wall_hours=Figure(hours, "estimate", "= GPU-hours (one GPU, held for the whole stage)"),
        disk_gb=disk,
        gpu_mem_gib=Figure((prof["params"] * 4 + 3 * batch * prof["max_activation_bytes"]) / GIB,
                           "estimate", f"weights + 3 x the largest activation x {batch} images"),
        ram_gib=Figure(_loader_ram(cfg, b, steps_bytes) / GIB, "estimate",
                       f"loader: (num_workers x prefetch_factor + 2) batches of "
                       f"{FEATURE_BATCH_VIDEOS} videos x T steps ({b['pipeline']} pipeline)"),
        cores_to_feed=feed, note=f"{bound}; one pass for all its taps",
    )  # fmt: skip


def _cost_head(cfg: StudyConfig, node, row, b: Bases) -> StageCost:

    a = dict(node.args)
    split, layer, method = a["split"], a["layer"], a["method"]
    s = sizes(cfg, split)
    n_train, n_val = s.train_val(cfg.val_fraction)
    prof = head_profile(cfg, layer, method, a["layers"], a["kernel"] or cfg.convlstm_kernel,
                        a.get("kind"), _num_classes(cfg))  # fmt: skip
    epochs = cfg.convlstm_epochs
    epoch_flops = n_train * prof["train_flops"] + (n_val + s.test) * prof["fwd_flops"]
    read_videos = n_train + n_val + s.test  # train, val and test parts of the cache
    if cfg.protocol == "authors":
        # read from its validation-protocol twin (graph._run_head): no training, one
        # evaluation of val and test at the epoch the test selects
        epochs, epoch_flops, read_videos = 1, (n_val + s.test) * prof["fwd_flops"], n_val + s.test
    epoch_s = epoch_flops / b.head_flops_per_s
    launch_bound = ""
    if a.get("train_state") == "carried":
        # one video per step: the step is bound by the operators it dispatches, not its FLOPs
        step_ops, eval_ops = b.carried_ops or CARRIED_OPS_FALLBACK
        op_s = float(b["gpu_op_us"]) * 1e-6
        train_s = n_train * max(prof["train_flops"] / b.head_flops_per_s, step_ops * op_s)
        eval_s = (n_val + s.test) * max(prof["fwd_flops"] / b.head_flops_per_s, eval_ops * op_s)
        if cfg.protocol == "authors":
            train_s = 0.0
        launch_bound = (f"; batch of one video: {step_ops:.0f} operators per training step and "
                        f"{eval_ops:.0f} per evaluated video x gpu_op_us = {b['gpu_op_us']:g} us "
                        f"({b.source('gpu_op_us')}; {b.carried_ops_source or 'CARRIED_OPS_FALLBACK'})")  # fmt: skip
        epoch_s = max(epoch_s, train_s + eval_s)
    maps = 1 if (a.get("prefused") or method in ("spatial", "temporal")) else 2
    per_video = maps * _feature_bytes(cfg, layer)
    cache = read_videos * per_video
    read_s_once = cache / (b.read_mb_s * 1e6)
    once = b["head_cache_reads"] == "once"
    in_ram = n_train * per_video <= IN_MEMORY_LIMIT
    if once:
        # epoch 1 streams the cache from disk (reads overlap compute), later epochs from RAM
        total_s = max(epoch_s, read_s_once) + (epochs - 1) * epoch_s
        reads = cache
        bound = (
            "compute-bound"
            if epoch_s >= read_s_once
            else (
                f"first epoch read-bound ({read_s_once / 60:.0f} min to read {cache / 1e9:.0f} GB)"
            )
        )
        ram = cache
        ram_basis = "the whole cache (train + val + test) held in RAM after the first epoch (mmap)"
    else:
        reads = 0.0 if in_ram else epochs * cache
        total_s = max(epochs * epoch_s, reads / (b.read_mb_s * 1e6))
        bound = "compute-bound" if total_s == epochs * epoch_s else "reads-bound"
        ram = n_train * per_video if in_ram else 4 * cfg.convlstm_batch_size * per_video
        ram_basis = (
            "the training cache in RAM (features.IN_MEMORY_LIMIT)"
            if in_ram
            else "streamed from disk every epoch: a few batches of float16 maps"
        )
    hours = total_s / 3600
    basis = (f"{b.gpu_basis(head=True)}; head FLOPs in closed form (costs.head_profile); epochs x "
             f"(train + val + test videos); cache reads at read_mb_s = {b.read_mb_s:g} MB/s "
             f"({b.source('read_mb_s')}), head_cache_reads = {b['head_cache_reads']}"
             f"{launch_bound}")  # fmt: skip
    mem = prof["params"] * HEAD_BYTES_PER_PARAM + cfg.convlstm_batch_size * prof["saved_bytes"]
    return StageCost(
        row, 1,
        gpu_hours=Figure(hours, "estimate", basis),
        wall_hours=Figure(hours, "estimate", "= GPU-hours (one GPU, held for the whole stage)"),
        disk_gb=Figure(prof["params"] * HEAD_BYTES_PER_PARAM / 1e9, "computed",
                       "best (weights) + last (weights, Adam moments) checkpoints"),
        gpu_mem_gib=Figure(mem / GIB, "estimate", f"params x {HEAD_BYTES_PER_PARAM} B + batch "
                           f"{cfg.convlstm_batch_size} x saved activations (closed form, float32)"),
        ram_gib=Figure(ram / GIB, "computed", ram_basis),
        note=f"{bound}, {reads / 1e12:.2f} TB read",
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
        workers = self.cfg.num_workers
        b = self.bases
        if feeds:
            need = max(feeds)
            cores = (f"{workers} loader workers (num_workers) + the training process; "
                     f"{need:.1f} cores would keep the GPU busy with the {b['pipeline']} pipeline "
                     "(host ms per sample / GPU time)")  # fmt: skip
            if need > max(workers, 0):
                cores += (
                    f": the loader bounds the stages so marked; num_workers = "
                    f"{int(need + 0.999)} (and as many free cores) would not"
                )
            cores += f"; prepare uses prep_workers = {self.cfg.prep_workers}"
        else:
            cores = f"prep_workers = {self.cfg.prep_workers} (CPU-only study)"
        return {
            "GPU memory": _fmt(gpu.value, "GiB") + f" ({gpu.kind}: the largest stage, {gpu.basis})",
            "RAM": _fmt(ram.value, "GiB") + f" ({ram.kind}: the largest stage, {ram.basis})",
            "disk": _fmt(disk.value, "GB") + " (every stage's output kept: videos, rawframes, "
                    "feature cache, runs)",
            "cores": cores,
        }  # fmt: skip


def _launch(row, node, b: Bases, launched: set) -> Figure:
    """The start-up this stage's launch pays (cost_model.launch_startup), or nothing when the
    stage runs inside another one's launch. One launch per command, as the CLI runs them:
    ``prepare`` (one process: torchrun runs it on rank 0 only), ``train-stream`` per stream,
    ``extract-features`` per split (both streams, every tap), ``train-convlstm`` per head;
    the training stages run as ``nproc`` processes. A notebook that builds several stages in
    one kernel pays it once."""
    if node.stage == "rawframes":
        return launch_startup(b, nproc=1)
    if node.stage == "features":
        key = ("features", node.get("split"), row["for"])
        if key in launched:
            return ZERO
        launched.add(key)
    if node.stage in ("stream", "features", "head"):
        return launch_startup(b)
    return ZERO


def _with_startup(cost: StageCost, start: Figure) -> StageCost:
    if start.value:
        total = cost.wall_hours + start  # the weaker kind of the two
        basis = f"{cost.wall_hours.basis} + {start.basis}" if cost.wall_hours.value else start.basis
        cost.wall_hours = Figure(total.value, total.kind, basis)
        cost.note = "; ".join(x for x in (cost.note, f"+ {start.value * 3600:.0f} s start-up")
                              if x)  # fmt: skip
    return cost


def plan_costs(cfg: StudyConfig, entries: list | None = None,
               results_dir: str | Path | None = None, assume=None,
               calibration: str | Path | None = None) -> PlanCosts:  # fmt: skip
    """Costs of every entry of ``study_plan.plan_entries(cfg)`` (row, node or None, config).
    ``assume``: overrides of ``cost_model.ASSUMPTIONS`` (``["read_mb_s=500"]`` or a dict).
    ``calibration``: a JSON with this CPU's TV-L1 rate (a rehearsal's or a flow benchmark's:
    ``Bases.read_flow_calibration``), for prepare on the CPU. Every stage's wall time
    includes the start-up of its launch (:func:`_launch`)."""

    b = Bases.load(results_dir, assume=assume, calibration=calibration)
    apply_measured(b, cfg)  # the committed GPU runs' shares, where --assume does not set them
    configured = getattr(cfg, "input_pipeline", None)  # the params file's loader, when it has one
    if "pipeline" not in b.set_by_user and configured in ("device", "host"):
        b.values["pipeline"] = configured
        b.from_params["pipeline"] = f"the params file's input_pipeline = {configured}"
    entries = study_plan.plan_entries(cfg) if entries is None else entries
    passes: set = set()
    launched: set = set()
    seen = {(n, c) for _, n, c in entries if n is not None}
    out = []

    def one(row, node, c) -> StageCost:
        return _with_startup(priced(row, node, c), _launch(row, node, b, launched))

    def priced(row, node, c) -> StageCost:
        if node.stage == "dataset":
            return _cost_dataset(c, row, b)
        if node.stage == "rawframes":
            return _cost_rawframes(c, row, b)
        if node.stage == "stream":
            return _cost_stream(c, node, row, b)
        if node.stage == "features":
            group = (node.get("stream"), node.get("split"), node_seed(node), row["for"])
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
        for why, n, c2 in study_plan.table3_nodes(cfg, chosen):
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
    lines.append("assumptions (set any of the first ones with --assume NAME=VALUE):")
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
