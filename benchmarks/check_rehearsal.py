"""The plan's cost model against the rehearsal: predicted and measured wall time per stage.

    python benchmarks/check_rehearsal.py [--rehearsal build/rehearsal.json]
                                         [--out benchmarks/results/rehearsal-check-cpu.json]
                                         [--startup benchmarks/results/startup-cpu.json]

``tools/rehearse.py`` (``make rehearse``) runs every full-scale stage at the paper's shapes
on this CPU and writes each stage's wall time with the machine's calibrated rates (a
ResNet-101 training step's and eval forward's FLOP/s, what ``torch.compile`` adds to a
run's first step and first forward, TV-L1 pairs/s on one core, what a torchrun launch adds
to its workers' start-up). This script prices the same parameter file with
``twostream.study.costs.plan_costs`` -- the CPU standing in for the GPU: ``gpu_tflops`` =
the calibrated eval rate, shares 1, the host input pipeline, the rehearsal JSON as the
plan's CPU flow calibration, ``startup_s`` = the rehearsal's measured start-up stage,
``torchrun_s`` = its calibration's (older rehearsals: ``--startup``'s JSON, measured
separately on a machine of the same kind), ``nproc`` = 2 for the head it ran under torchrun
-- and adds only what the plan leaves out at full scale and a rehearsal of a few steps
cannot: the compile of each run and the second start of the stream killed and resumed.
Passes when every stage's prediction is within 2x of its measurement (:func:`within_2x`).

The rates no calibration sets (host ms per sample) come from the committed CPU benchmark
JSONs, which another machine may have written.
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
STARTUP_JSON = REPO / "benchmarks" / "results" / "startup-cpu.json"
TORCHRUN_NPROC = 2  # tools/rehearse.py's ConvLSTM stage


def within_2x(ratio: float | None) -> bool:
    """A prediction passes when it is within a factor 2 of the measurement, either way."""
    return ratio is not None and 0.5 <= ratio <= 2.0


def torchrun_calibration(cal: dict, startup_json: Path) -> tuple[float, str]:
    """(torchrun_s, where it comes from): the rehearsal's own calibration, else the start-up
    benchmark's (rehearsals before tools/rehearse.py calibrated it)."""
    if "torchrun_s" in cal:
        return float(cal["torchrun_s"]), "the rehearsal's calibration"
    if not startup_json.is_file():
        raise SystemExit(f"the rehearsal has no torchrun calibration and {startup_json} does not "
                         "exist: run `python tools/rehearse.py --startup-only --json "
                         f"{startup_json}` or a new `make rehearse`")  # fmt: skip
    d = json.loads(startup_json.read_text())
    where = (d.get("machine") or {}).get("processor", "?")
    return float(d["calibration"]["torchrun_s"]), f"{startup_json.name} ({where}, {d.get('date')})"


def predictions(rehearsal: dict, cfg: StudyConfig, calibration: Path,
                startup_json: Path = STARTUP_JSON) -> list[dict]:  # fmt: skip
    cal = rehearsal["calibration"]
    measured = {s["stage"]: s["wall_s"] for s in rehearsal["stages"]}
    start = next(v for k, v in measured.items() if k.startswith("startup"))
    torchrun_s, torchrun_src = torchrun_calibration(cal, startup_json)
    assume = [f"gpu_tflops={cal['eval_flop_per_s'] / 1e12}", "gpu_utilisation=1",
              "head_utilisation=1", "pipeline=host", f"startup_s={start}",
              f"torchrun_s={torchrun_s}"]  # fmt: skip

    def priced(nproc: int) -> dict[str, float]:
        # (the plan's host has 16 cores, the rehearsal's 2: either way 2 processes start at
        # once, one per core, so the start-up term is the same)
        pc = costs.plan_costs(cfg, assume=[*assume, f"nproc={nproc}"], calibration=calibration)
        return {s.row["what"]: (s.wall_hours.value or 0.0) * 3600 for s in pc.stages}

    plan, plan_torchrun = priced(1), priced(TORCHRUN_NPROC)
    compile_run = cal["compile_train_s"] + cal["compile_eval_s"] if cfg.compile else 0.0
    compile_eval = cal["compile_eval_s"] if cfg.compile else 0.0
    split = cfg.splits[0]

    def stage(prefix: str) -> float:
        return sum(v for k, v in measured.items() if k.startswith(prefix))

    def one(prefix: str, table: dict[str, float] = plan) -> float:
        return next(v for k, v in table.items() if k.startswith(prefix))

    rows = [
        ("prepare", stage("prepare"), plan["rawframes"],
         "the plan's rawframes (its CPU TV-L1 rate: the rehearsal's calibration; + start-up)"),
        # killed after its first epoch and resumed: two starts and two compiles
        ("stream spatial (killed + resumed)", stage("stream spatial"),
         start + 2 * compile_run + one(f"stream spatial, split {split}"),
         "the plan's stream stage (+ start-up) + the second start + 2 compiles"),
        ("stream temporal", stage("stream temporal"),
         compile_run + one(f"stream temporal, split {split}"),
         "the plan's stream stage (+ start-up) + compile"),
        ("features conv5_x", stage("features"),
         2 * compile_eval + one(f"features spatial conv5_x, split {split}")
         + one(f"features temporal conv5_x, split {split}"),
         "both streams' feature passes (+ one start-up: one command) + 2 eval compiles"),
        ("ConvLSTM head (2 gloo processes)", stage("ConvLSTM"),
         one("head ", plan_torchrun),
         f"the plan's head at nproc = {TORCHRUN_NPROC} (its FLOPs at the eval rate + start-up "
         f"+ torchrun_s = {torchrun_s:.1f} s from {torchrun_src})"),
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
    ap.add_argument("--startup", type=Path, default=STARTUP_JSON,
                    help="torchrun_s for a rehearsal whose calibration lacks it")  # fmt: skip
    args = ap.parse_args(argv)
    rehearsal = json.loads(args.rehearsal.read_text())
    params = Path(rehearsal["params"])
    cfg = StudyConfig.from_yaml(params if params.is_absolute() else REPO / params)
    rows = predictions(rehearsal, cfg, args.rehearsal, args.startup)
    ok = all(within_2x(r["ratio"]) for r in rows)
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
