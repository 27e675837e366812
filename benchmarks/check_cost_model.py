"""Check the plan's cost model against stage times measured on this CPU at the paper's shapes.

    python benchmarks/check_cost_model.py [--dry-run benchmarks/results/dry_run-cpu.json]

``dry_run-cpu.json`` (``benchmarks/dry_run.py --quick``) times, through the library's own
code, a ResNet-101 training step of each stream (224 x 224, batch 2), the feature pass of
each stream (T = 25 centre crops per video, loading included) and a training step of the
2-layer 5x5 ConvLSTM head (300 hidden, 7 x 7 x 2048, T = 25, batch 2). The cost model prices
each of them as FLOPs / a sustained FLOP rate (+ the loader's host milliseconds where the
stage loads frames). One rate is calibrated on the spatial training step; the other stages
are *predicted* with it and the model's FLOP counts and host ms per sample
(``input-pipeline-cpu.json``, host pipeline: what dry_run.py uses). Passes when every
prediction is within 2x of the measurement. Writes benchmarks/results/cost-model-check-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from twostream.core.config import StudyConfig
from twostream.core.runtime import atomic_write_text
from twostream.study import cost_model

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", default=str(RESULTS / "dry_run-cpu.json"))
    ap.add_argument("--out", default=str(RESULTS / "cost-model-check-cpu.json"))
    args = ap.parse_args(argv)
    dry = json.loads(Path(args.dry_run).read_text())
    cfg = StudyConfig.from_dict(dry["config"])
    b = cost_model.Bases.load(RESULTS, assume=["pipeline=host"])
    stage = {r["stage"].split(" (")[0]: r for r in dry["stages"]}
    prof = {m: cost_model.stream_profile(cfg.backbone, m, cfg.input_size, cfg.flow_length, 101)
            for m in ("rgb", "flow")}  # fmt: skip
    head = cost_model.head_profile(cfg, "conv5_x", cfg.fusion_method, cfg.convlstm_layers,
                                   cfg.convlstm_kernel, num_classes=101)  # fmt: skip
    cal = stage["spatial stream training step"]
    rate = cal["batch"] * prof["rgb"]["train_flops"] / cal["step_s"]  # FLOP/s on this CPU
    T = cfg.num_segments
    rows = []

    def row(name, measured_s, flops, host_ms=0.0, what=""):
        predicted = flops / rate + host_ms / 1e3
        rows.append({"stage": name, "measured_s": measured_s, "predicted_s": predicted,
                     "ratio": predicted / measured_s, "flops": flops, "host_ms": host_ms,
                     "unit": what})  # fmt: skip

    row(
        "spatial stream training step",
        cal["step_s"],
        cal["batch"] * prof["rgb"]["train_flops"],
        what="one step, batch 2 (the calibration)",
    )
    r = stage["temporal stream training step"]
    row(
        "temporal stream training step",
        r["step_s"],
        r["batch"] * prof["flow"]["train_flops"],
        what="one step, batch 2 (input already loaded)",
    )
    for name, m in (("spatial conv5_x feature extraction", "rgb"),
                    ("temporal conv5_x feature extraction", "flow")):  # fmt: skip
        r = stage[name]
        row(
            name,
            r["step_s"],
            T * prof[m]["fwd_flops"],
            T * b.host_ms[("host", m, "train")],
            what=f"one video: {T} centre crops, loading on this process included",
        )
    r = next(v for k, v in stage.items() if k.startswith("ConvLSTM"))
    row(
        "ConvLSTM head training step",
        r["step_s"],
        r["batch"] * head["train_flops"],
        what="one step, batch 2 videos",
    )
    ok = all(0.5 <= x["ratio"] <= 2.0 for x in rows)
    record = {"benchmark": "cost_model_check", "device": dry.get("device"),
              "dry_run_json": Path(args.dry_run).name, "dry_run_commit": dry.get("git_commit"),
              "calibrated_flop_per_s": rate, "within_2x": ok, "rows": rows,
              "note": "one sustained FLOP rate, calibrated on the spatial training step, "
                      "predicts the other stages from the cost model's FLOP counts and the "
                      "host pipeline's measured ms per sample"}  # fmt: skip
    print(f"calibrated on the spatial training step: {rate / 1e9:.0f} GFLOP/s sustained")
    print(f"{'stage':42s} {'measured s':>10s} {'predicted s':>11s} {'ratio':>6s}")
    for x in rows:
        print(f"{x['stage']:42s} {x['measured_s']:10.3f} {x['predicted_s']:11.3f} "
              f"{x['ratio']:6.2f}")  # fmt: skip
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"{'all within 2x' if ok else 'NOT all within 2x'}; wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
