"""The plan's cost model against the rehearsal: predicted and measured wall time per stage.

    python benchmarks/check_rehearsal.py [--rehearsal build/rehearsal.json]
                                         [--out benchmarks/results/rehearsal-check-cpu.json]

``tools/rehearse.py`` (``make rehearse``) runs every full-scale stage at the paper's shapes
on this CPU and writes each stage's wall time with the machine's calibrated rates (a
ResNet-101 training step's and eval forward's FLOP/s, what ``torch.compile`` adds to a
run's first step and first forward). This script prices the same parameter file with
``twostream.study.costs.plan_costs`` -- the CPU standing in for the GPU: ``gpu_tflops`` =
the calibrated eval rate, shares 1, the host input pipeline -- and adds the fixed costs the
plan leaves out at full scale and a rehearsal of a few steps cannot: the process start (the
rehearsal's ``twostream runs`` stage) and the compile of each run. Passes when every
stage's prediction is within 2x of its measurement.

The rates of the plan that no calibration sets (host ms per sample, TV-L1 pairs/s per core)
come from the committed CPU benchmark JSONs, which another machine may have written; the
table says which.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from twostream.core.config import StudyConfig
from twostream.core.runtime import atomic_write_text
from twostream.study import costs

REPO = Path(__file__).resolve().parents[1]


def predictions(rehearsal: dict, cfg: StudyConfig) -> list[dict]:
    cal = rehearsal["calibration"]
    pc = costs.plan_costs(cfg, assume=[
        f"gpu_tflops={cal['eval_flop_per_s'] / 1e12}", "gpu_utilisation=1",
        "head_utilisation=1", "pipeline=host",
    ])  # fmt: skip
    plan = {s.row["what"]: (s.wall_hours.value or 0.0) * 3600 for s in pc.stages}
    measured = {s["stage"]: s["wall_s"] for s in rehearsal["stages"]}
    start = next(v for k, v in measured.items() if k.startswith("startup"))
    compile_run = cal["compile_train_s"] + cal["compile_eval_s"] if cfg.compile else 0.0
    compile_eval = cal["compile_eval_s"] if cfg.compile else 0.0
    split = cfg.splits[0]

    def stage(prefix: str) -> float:
        return sum(v for k, v in measured.items() if k.startswith(prefix))

    def one(prefix: str) -> float:
        return next(v for k, v in plan.items() if k.startswith(prefix))

    # the plan's CPU flow rate is flow-cpu.json's, measured on another machine and idle:
    # scale the rawframes stage (TV-L1 is most of it) to the rate calibrated here
    flow_json = pc.bases.flow_cpu.get((cfg.flow_backend, cfg.flow_preset))
    flow_here = cal.get("flow_pairs_per_s_core")
    scale = flow_json / flow_here if flow_json and flow_here else 1.0
    rows = [
        ("prepare", stage("prepare"), start + plan["rawframes"] * scale,
         f"start + rawframes x {scale:.2f} (flow-cpu.json's pairs/s per core over the "
         "calibrated one)"),
        # killed after its first epoch and resumed: two starts and two compiles
        ("stream spatial (killed + resumed)", stage("stream spatial"),
         2 * (start + compile_run) + one(f"stream spatial, split {split}"),
         "2 x (start + compile) + the plan's stream stage"),
        ("stream temporal", stage("stream temporal"),
         start + compile_run + one(f"stream temporal, split {split}"),
         "start + compile + the plan's stream stage"),
        ("features conv5_x", stage("features"),
         start + 2 * compile_eval + one(f"features spatial conv5_x, split {split}")
         + one(f"features temporal conv5_x, split {split}"),
         "start + 2 eval compiles + both streams' feature passes"),
        ("ConvLSTM head (2 gloo processes)", stage("ConvLSTM"),
         start + one("head "), "start + the plan's head (its FLOPs at the eval rate)"),
    ]  # fmt: skip
    out = []
    for name, m, p, basis in rows:
        out.append({"stage": name, "measured_s": round(m, 1), "predicted_s": round(p, 1),
                    "ratio": round(p / m, 2) if m else None, "basis": basis})  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rehearsal", type=Path, default=REPO / "build" / "rehearsal.json")
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "rehearsal-check-cpu.json")  # fmt: skip
    args = ap.parse_args(argv)
    rehearsal = json.loads(args.rehearsal.read_text())
    params = Path(rehearsal["params"])
    cfg = StudyConfig.from_yaml(params if params.is_absolute() else REPO / params)
    rows = predictions(rehearsal, cfg)
    ok = all(r["ratio"] is not None and 0.5 <= r["ratio"] <= 2.0 for r in rows)
    cal = rehearsal["calibration"]
    print(f"{rehearsal['machine']['processor']}, {rehearsal['machine']['cores']} cores: "
          f"{cal['eval_flop_per_s'] / 1e9:.0f} GFLOP/s eval, {cal['train_flop_per_s'] / 1e9:.0f} "
          f"train; compile adds {cal['compile_train_s']:.0f} + {cal['compile_eval_s']:.0f} s")  # fmt: skip
    print(f"{'stage':36s} {'measured s':>10s} {'predicted s':>11s} {'ratio':>6s}  basis")
    for r in rows:
        print(f"{r['stage']:36s} {r['measured_s']:10.1f} {r['predicted_s']:11.1f} "
              f"{r['ratio']:6.2f}  {r['basis']}")  # fmt: skip
    record = {"benchmark": "rehearsal_check", "machine": rehearsal["machine"],
              "rehearsal_date": rehearsal.get("date"), "calibration": cal,
              "within_2x": ok, "rows": rows}  # fmt: skip
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"{'every stage within 2x' if ok else 'NOT every stage within 2x'}; wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
