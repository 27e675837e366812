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

from dataclasses import dataclass
from pathlib import Path

from twostream.core.config import StudyConfig
from twostream.flow.params import PRESETS
from twostream.models.streams import tap_channels
from twostream.study import plan as study_plan
from twostream.study.cost_model import (
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
    sizes,
    stream_profile,
)
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
    """Costs of every entry of ``study_plan.plan_entries(cfg)`` (row, node or None, config)."""

    b = Bases.load(results_dir)
    entries = study_plan.plan_entries(cfg) if entries is None else entries
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
