"""A first-order estimate of wall time per stage on one H100, until a GPU run measures it.

Counts the work of every stage of the full-scale study (UCF101 split 1, params/ucf101.yaml)
with torch's FLOP counter on the library's own modules, and turns it into hours under
*stated* assumptions: a sustained fraction of the H100's dense bf16 peak for the
convolution-bound stages, and a memory-traffic model for TV-L1 (which is bandwidth-bound).
Every number it prints is an ESTIMATE, labelled as such in its JSON; `benchmarks/dry_run.py`
on a GPU replaces it with measurements.

    python benchmarks/estimate_h100.py [--utilisation 0.35] [--bandwidth-utilisation 0.5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from twostream.core.config import StudyConfig
from twostream.core.params_io import save_json
from twostream.models import convlstm
from twostream.models import streams as models
from twostream.study.results import git_commit, library_versions

REPO = Path(__file__).resolve().parents[1]
H100_BF16_DENSE_TFLOPS = 989.0  # NVIDIA H100 SXM datasheet, dense (no sparsity)
H100_HBM_TB_S = 3.35  # H100 SXM HBM3 bandwidth
UCF101 = {"train": 9537, "test": 3783, "videos": 13320, "frames": 27 * 3600 * 25}


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def stream_flops(cfg: StudyConfig, modality: str) -> tuple[float, float]:
    """(train step, forward) FLOPs per image of one ResNet stream at the paper's input size."""
    net = models.build_stream(modality=modality, backbone=cfg.backbone, num_classes=101,
                              flow_length=cfg.flow_length)  # fmt: skip
    c = 3 if modality == "rgb" else 2 * cfg.flow_length
    x = torch.randn(1, c, cfg.input_size, cfg.input_size, device="meta")
    net = net.to("meta")
    y = torch.zeros(1, dtype=torch.long, device="meta")
    train = flops(lambda: F.cross_entropy(net(x), y).backward())
    with torch.no_grad():
        fwd = flops(lambda: net.features(x, ["conv5_x"]))
    return train, fwd


def convlstm_flops(cfg: StudyConfig) -> float:
    """Training FLOPs per video (forward + backward) of the paper-scale ConvLSTM head."""
    c = models.tap_channels(cfg.backbone, "conv5_x")
    head = convlstm.build_head(kind="convlstm", in_channels=c, num_classes=101,
                               fusion=cfg.fusion_method, layers=cfg.convlstm_layers,
                               kernel=cfg.convlstm_kernel, hidden=cfg.convlstm_hidden).to("meta")  # fmt: skip
    a = torch.randn(1, cfg.num_segments, c, 7, 7, device="meta")
    y = torch.zeros(1, dtype=torch.long, device="meta")
    return flops(lambda: F.cross_entropy(head(a, a), y).backward())


def tvl1_seconds_per_pair(
    width: int,
    height: int,
    *,
    scales: int,
    scale_step: float,
    warps: int,
    iterations: int,
    bandwidth: float,
) -> float:
    """Bandwidth model: each primal-dual iteration streams ~20 float32 maps per pixel."""
    pixels = sum(width * height * scale_step ** (2 * s) for s in range(scales))
    bytes_per_iteration_pixel = 20 * 4
    return pixels * warps * iterations * bytes_per_iteration_pixel / bandwidth


def data_rates(cores: int) -> dict[str, float]:
    """Items/s the CPU side can decode + augment, from the recorded dry run's one-process rate."""
    import json
    import re

    path = Path(__file__).parent / "results" / "dry_run-cpu.json"
    rates = {"rgb": 500.0, "flow": 150.0}  # fallbacks of the order measured here
    if path.is_file():
        for stage in json.loads(path.read_text())["stages"]:
            m = re.search(r"data (\d+) img/s", stage.get("throughput", ""))
            if m:
                rates["rgb" if stage["stage"].startswith("spatial") else "flow"] = float(m.group(1))
    return {k: v * cores for k, v in rates.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=str(REPO / "params" / "ucf101.yaml"))
    ap.add_argument(
        "--utilisation",
        type=float,
        default=0.10,
        help="sustained share of the dense bf16 peak; ResNet training typically "
        "sustains ~5-15%% of it (small 7x7-56x56 convolutions, BN, ReLU)",
    )
    ap.add_argument("--cores", type=int, default=16, help="CPU cores feeding the GPU (JPEG decode)")
    ap.add_argument(
        "--bandwidth-utilisation",
        type=float,
        default=0.5,
        help="sustained share of HBM bandwidth for TV-L1",
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "estimate-h100.json"))
    args = ap.parse_args(argv)
    cfg = StudyConfig.from_yaml(args.params)
    rate = H100_BF16_DENSE_TFLOPS * 1e12 * args.utilisation
    data = data_rates(args.cores)
    rows = []
    pair_s = tvl1_seconds_per_pair(341, 256, scales=5, scale_step=0.8, warps=5, iterations=300,
                                   bandwidth=H100_HBM_TB_S * 1e12 * args.bandwidth_utilisation)  # fmt: skip
    rows.append({"stage": "TV-L1 flow, all frames (paper preset, 300 iterations, no early stop)",
                 "hours": UCF101["frames"] * pair_s / 3600, "model": "memory traffic"})  # fmt: skip
    for modality, name in (("rgb", "spatial"), ("flow", "temporal")):
        train, fwd = stream_flops(cfg, modality)
        n_train = cfg.stream_epochs * UCF101["train"] * cfg.samples_per_video
        n_eval = cfg.stream_epochs * 0.2 * UCF101["train"] * cfg.num_segments  # val every epoch
        compute_h = (n_train * train + n_eval * fwd) / rate / 3600
        data_h = (n_train + n_eval) / data[modality] / 3600
        rows.append({"stage": f"{name} stream fine-tuning ({cfg.stream_epochs} epochs)",
                     "hours": max(compute_h, data_h), "compute_hours": compute_h, "data_hours": data_h,
                     "gflop_per_image": train / 1e9, "model": "max(FLOPs, JPEG decode)"})  # fmt: skip
        n_feat = UCF101["videos"] * cfg.num_segments
        compute_h, data_h = n_feat * fwd / rate / 3600, n_feat / data[modality] / 3600
        rows.append({"stage": f"{name} conv5_x features, all videos (T={cfg.num_segments})",
                     "hours": max(compute_h, data_h), "compute_hours": compute_h, "data_hours": data_h,
                     "gflop_per_image": fwd / 1e9, "model": "max(FLOPs, JPEG decode)"})  # fmt: skip
    head = convlstm_flops(cfg)
    n = cfg.convlstm_epochs * (UCF101["train"] + UCF101["test"] / 3)  # + eval ~ 1/3 of a train step
    rows.append({"stage": f"ConvLSTM {cfg.convlstm_layers}x{cfg.convlstm_kernel}x{cfg.convlstm_kernel}, "
                          f"{cfg.convlstm_hidden} ch ({cfg.convlstm_epochs} epochs)",
                 "hours": n * head / rate / 3600, "gflop_per_video": head / 1e9, "model": "FLOPs"})  # fmt: skip
    once = rows[0]["hours"]
    per_split = sum(r["hours"] for r in rows[1:])
    print(f"ESTIMATE for one H100 (not measured): {args.utilisation:.0%} of {H100_BF16_DENSE_TFLOPS:g} "
          f"TFLOP/s bf16, {args.bandwidth_utilisation:.0%} of {H100_HBM_TB_S} TB/s")  # fmt: skip
    for r in rows:
        why = ""
        if "data_hours" in r:
            why = " (data-bound)" if r["data_hours"] > r["compute_hours"] else " (compute-bound)"
        print(f"  {r['stage']:72s} {r['hours']:7.2f} h{why}")
    print(
        f"  flow once {once:.1f} h + per split {per_split:.1f} h -> three splits {once + 3 * per_split:.1f} h"
    )
    out = save_json({"benchmark": "estimate_h100", "measured": False, "device": "none (estimate)",
                     "assumptions": {"bf16_dense_tflops": H100_BF16_DENSE_TFLOPS,
                                     "utilisation": args.utilisation, "hbm_tb_s": H100_HBM_TB_S,
                                     "bandwidth_utilisation": args.bandwidth_utilisation,
                                     "cpu_cores": args.cores, "data_items_per_s": data},
                     "git_commit": git_commit(), "versions": library_versions(),
                     "config": cfg.to_dict(), "rows": rows,
                     "hours": {"flow_once": once, "per_split": per_split,
                               "three_splits": once + 3 * per_split}}, args.out)  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
