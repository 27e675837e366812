"""What the committed GPU runs measured, for the plan: the GPU-side rates of every full-scale
stage, read from the JSON that ``benchmarks/gpu_suite.sh`` writes.

TV-L1 is priced from the bare solver's rate (``flow-batch-<gpu>.json``, benchmarks/flow.py's
synthetic pairs at 320x240) at the params file's ``flow_batch`` and ``flow_compile`` (the
nearest batch measured). Its pairs/s depends on the frames: a pair stops iterating when it
converges and a CUDA batch runs as long as its slowest pair, so the share of HBM bandwidth is
taken over the iterations that run was measured to need (flow-iterations-cpu.json: the
batch-max on flow.py's pairs) and the plan multiplies it by the iterations of real UCF101
frames. The dry run's rate (its own frames through the same code) is kept as a cross-check,
taken over its own frames' iterations the same way; the plan prints both.

``dry_run-<gpu>.json`` times a few steps of each stage at the paper's shapes (TV-L1 at the
``paper`` preset, each ResNet-101 stream's bf16 training step at batch 64, the ConvLSTM's
step); ``convlstm-<gpu>.json`` times the head grid. :class:`~twostream.study.cost_model.Bases`
turns these rates into the sustained shares of the peak that the plan's assumptions name
(``gpu_utilisation``, ``head_utilisation``, ``bandwidth_utilisation``), each printed with
the file it came from; ``twostream plan --assume`` still overrides any of them.

Why shares and not the rates themselves: the plan prices any configuration (other backbones,
input sizes, taps) by counting its FLOPs and bytes; a measured share carries over to those
shapes, and to a GPU of the same architecture (an H200 run prices an H100: same 989 TFLOP/s
bf16 tensor cores; the HBM share is taken against the measuring GPU's own bandwidth).
Only complete runs count, and CPU runs never do.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twostream.core.config import StudyConfig
from twostream.flow.params import PRESETS
from twostream.study.cost_model import (
    TVL1_BYTES_PER_PIXEL_ITERATION,
    Bases,
    nearest,
    stream_profile,
    tvl1_nominal_iterations,
)

FLOW_SIZE = (320, 240)  # the frame size both GPU flow benchmarks time

# Datasheet peaks by a word of the GPU's name: dense bf16 TFLOP/s and HBM TB/s.
GPU_PEAKS = {
    "H200": (989.0, 4.8),
    "H100": (989.0, 3.35),
    "A100": (312.0, 2.04),
}


@dataclass(frozen=True)
class GpuRates:
    """Rates one GPU run measured (None where it did not measure the stage)."""

    gpu: str  # e.g. "NVIDIA H200"
    peak_tflops: float
    hbm_tb_s: float
    flow_pairs_s: float | None  # TV-L1, paper preset, 320x240, one batch
    flow_batch: int | None
    stream_img_s: dict[str, float]  # "spatial" / "temporal" -> training images/s (bf16)
    stream_batch: int | None
    head_tflops: dict[tuple[str, int, int], float]  # (tap, layers, kernel) -> achieved TFLOP/s
    sources: tuple[str, ...]
    config: dict[str, Any]  # the dry run's resolved StudyConfig: the shapes it measured
    # flow-batch-<gpu>.json: (mode, batch) -> pairs/s, paper preset at 320x240
    flow_bench: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)
    flow_bench_source: str | None = None


def _peaks(device: str) -> tuple[float, float] | None:
    for word, peaks in GPU_PEAKS.items():
        if word in device.upper():
            return peaks
    return None


def read_gpu_rates(results_dir: Path) -> GpuRates | None:
    """The rates of the most recent complete GPU dry run in ``results_dir`` (and the ConvLSTM
    grid of the same GPU, when committed), or None when there is none."""
    runs = []
    for path in sorted(results_dir.glob("dry_run-*.json")):
        d = json.loads(path.read_text())
        device = str(d.get("device", ""))
        if d.get("quick") or not d.get("complete") or not device.startswith("cuda"):
            continue
        if _peaks(device) is None:
            continue  # a GPU whose peak we do not know cannot give a share
        runs.append((str(d.get("created", "")), path, d))
    if not runs:
        return None
    _, path, d = max(runs, key=lambda r: r[0])
    gpu = str(d["device"]).split(":", 1)[-1].strip()
    peak, hbm = _peaks(gpu)
    flow = None
    flow_batch = stream_batch = None
    img_s: dict[str, float] = {}
    for st in d.get("stages", []):
        name = str(st.get("stage", ""))
        if name.startswith("TV-L1") and "paper" in name:
            flow, flow_batch = float(st["items_per_s"]), st.get("batch")
        for stream in ("spatial", "temporal"):
            if name == f"{stream} stream training step":
                img_s[stream] = float(st["items_per_s"])
                stream_batch = st.get("batch")
    head: dict[tuple[str, int, int], float] = {}
    sources = [path.name]
    for conv in sorted(results_dir.glob("convlstm-*.json")):
        c = json.loads(conv.read_text())
        if gpu not in str(c.get("device", "")):
            continue
        for row in c.get("configs", []):
            if row.get("train_tflops_achieved"):
                head[(row["tap"], int(row["layers"]), int(row["kernel"]))] = float(
                    row["train_tflops_achieved"]
                )
        sources.append(conv.name)
    bench, bench_source = {}, None
    for fb in sorted(results_dir.glob("flow-batch-*.json")):
        f = json.loads(fb.read_text())
        if gpu not in str(f.get("device", "")):
            continue
        for row in f.get("batch", []):
            size = "x".join(map(str, FLOW_SIZE))
            if row.get("size") == size and row.get("preset") == "paper" and row.get("pairs_per_s"):
                bench[(str(row["mode"]), int(row["batch"]))] = float(row["pairs_per_s"])
        bench_source = fb.name
    return GpuRates(gpu=gpu, peak_tflops=peak, hbm_tb_s=hbm, flow_pairs_s=flow,
                    flow_batch=flow_batch, stream_img_s=img_s, stream_batch=stream_batch,
                    head_tflops=head, sources=tuple(sources), config=d.get("config", {}),
                    flow_bench=bench, flow_bench_source=bench_source)  # fmt: skip


def head_share(rates: GpuRates, tap: str, layers: int, kernel: int) -> tuple[float, str] | None:
    """The ConvLSTM's achieved share of the peak at this cell, else the grid's median."""
    if not rates.head_tflops:
        return None
    cell = rates.head_tflops.get((tap, layers, kernel))
    if cell is not None:
        return cell / rates.peak_tflops, f"{tap} {layers}x{kernel}x{kernel}"
    med = statistics.median(rates.head_tflops.values())
    return med / rates.peak_tflops, f"median of {len(rates.head_tflops)} cells"


def flow_shares(rates: GpuRates, bases: Bases | None = None, study: StudyConfig | None = None
                ) -> dict[str, tuple[float, str]]:  # fmt: skip
    """The TV-L1 share of HBM bandwidth, by basis: ``bench`` (the bare solver at ``study``'s
    flow_batch / flow_compile) and ``dry_run``, each over the full-size-equivalent
    iterations its own frames need (flow-iterations-cpu.json; the preset's every iteration
    when that file is absent, and then no ``bench`` basis: its frames' count is unknown)."""
    p = PRESETS[str(rates.config.get("flow_preset", "paper"))]
    iters = bases.flow_iters if bases is not None else {}
    pixels = FLOW_SIZE[0] * FLOW_SIZE[1]
    hbm = rates.hbm_tb_s * 1e12

    def share(rate: float, its: float) -> float:
        return rate * pixels * its * TVL1_BYTES_PER_PIXEL_ITERATION / hbm

    out = {}
    study = study or StudyConfig()
    mode = "compile" if study.flow_compile else "eager"
    batches = [b for (m, b) in rates.flow_bench if m == mode]
    if batches and "flow_py" in iters:
        batch = nearest(batches, study.flow_batch)
        rate, its = rates.flow_bench[(mode, batch)], iters["flow_py"]["as_timed"]
        out["bench"] = (share(rate, its), f"measured: bare TV-L1 {rate:.0f} pairs/s ({mode}, batch "
                        f"{batch}, {rates.flow_bench_source} on {rates.gpu}) over the {its:.0f} "
                        f"full-size iterations per pair its frames need ({bases.flow_iters_source})")  # fmt: skip
        # the bare solver where the dry run ran (its batch, compiled: tvl1_batch's CUDA default)
        at = ("compile", nearest([b for (m, b) in rates.flow_bench if m == "compile"] or [batch],
                                 int(rates.flow_batch or 64)))  # fmt: skip
        if at in rates.flow_bench:
            out["bench_at_dry_run"] = (share(rates.flow_bench[at], its), f"compile, batch {at[1]}")
    if rates.flow_pairs_s:
        dry = iters.get("dry_run")
        its = dry["as_timed"] if dry else tvl1_nominal_iterations(p)
        what = "its frames need" if dry else "the preset allows (no flow-iterations-cpu.json)"
        out["dry_run"] = (share(rates.flow_pairs_s, its), f"measured: dry run TV-L1 "
                          f"{rates.flow_pairs_s:.1f} pairs/s at batch {rates.flow_batch} "
                          f"({rates.sources[0]} on {rates.gpu}) over the {its:.0f} full-size "
                          f"iterations per pair {what}")  # fmt: skip
    return out


def measured_shares(rates: GpuRates, bases: Bases | None = None,
                    study: StudyConfig | None = None) -> dict[str, tuple[float, str]]:  # fmt: skip
    """assumption name -> (share measured, where it comes from), at the dry run's own shapes
    (TV-L1: at ``study``'s flow_batch and flow_compile, see :func:`flow_shares`)."""
    cfg, out = rates.config, {}
    on = f"{rates.sources[0]} on {rates.gpu}"
    if rates.stream_img_s:
        flops = {s: stream_profile(cfg.get("backbone", "resnet101"),
                                   "rgb" if s == "spatial" else "flow",
                                   int(cfg.get("input_size", 224)), int(cfg.get("flow_length", 10)),
                                   101)["train_flops"] for s in rates.stream_img_s}  # fmt: skip
        achieved = statistics.mean(rates.stream_img_s[s] * flops[s] for s in flops)  # FLOP/s
        shown = ", ".join(f"{s} {v:,.0f} img/s" for s, v in rates.stream_img_s.items())
        out["gpu_utilisation"] = (achieved / (rates.peak_tflops * 1e12),
                                  f"measured: {shown} bf16 at batch {rates.stream_batch}, {on}")  # fmt: skip
    cell = head_share(rates, str(cfg.get("fusion_layer", "conv5_x")),
                      int(cfg.get("convlstm_layers", 2)), int(cfg.get("convlstm_kernel", 5)))  # fmt: skip
    if cell is not None:
        where = rates.sources[-1] if len(rates.sources) > 1 else rates.sources[0]
        out["head_utilisation"] = (cell[0], f"measured: ConvLSTM {cell[1]}, {where} on {rates.gpu}")
    # the TV-L1 traffic model of the plan, inverted at the measured rate (320x240 frames)
    flow = flow_shares(rates, bases, study)
    if flow:
        value, source = flow.get("bench") or flow["dry_run"]
        if "bench" in flow and "dry_run" in flow:
            dry, like = flow["dry_run"], flow.get("bench_at_dry_run", (value, "as configured"))
            source += (f"; cross-check, {dry[1].removeprefix('measured: ')}: {dry[0]:.1%}, {dry[0] / like[0]:.2f}x the bare "
                       f"solver's {like[0]:.1%} at its setting ({like[1]})")  # fmt: skip
        out["bandwidth_utilisation"] = (value, f"{source} ({rates.hbm_tb_s:g} TB/s HBM)")
        if "bench" in flow and "dry_run" in flow and bases is not None:
            bases.flow_cross_check = flow["dry_run"]
    return out


def apply_measured(bases: Bases, study: StudyConfig | None = None) -> GpuRates | None:
    """Set the bases' GPU shares from the committed GPU runs, where the user did not set them
    with ``--assume``; their printed source names the file and the rate. ``study``: the
    params whose flow_batch / flow_compile pick the TV-L1 measurement."""
    rates = read_gpu_rates(bases.results_dir)
    if rates is None:
        return None
    for name, (value, source) in measured_shares(rates, bases, study).items():
        if name in bases.set_by_user or not 0 < value <= 1:
            continue
        bases.values[name] = value
        bases.from_params[name] = source
    return rates
