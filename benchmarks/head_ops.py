"""How many operators one training step of a fusion + ConvLSTM head dispatches, by batch.

Why: a head trained the authors' way (one video per batch, ``train_state: carried``) does
the same FLOPs per video as one trained in batches of 32, but launches every operator of
the step -- 25 time steps x layers x the gates, their backward, clipping and Adam -- once
per *video* instead of once per 32. On a GPU such a step is bound by launches, not FLOPs,
and the plan (study/costs.py) prices it as ``ops per step x gpu_op_us``. The number of
operators does not depend on the channel count or the grid, so it is counted here on the
CPU at the paper's time steps and depth with small channels, through the library's own
training step (engine.train_one_epoch, CarriedState), with a TorchDispatchMode counter
(each ATen call it sees is one kernel launch on a GPU, give or take fusion).

    python benchmarks/head_ops.py [--out benchmarks/results/head-ops-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from twostream.core.config import StudyConfig
from twostream.core.runtime import device_description, project_root
from twostream.study.results import git_commit, library_versions
from twostream.train import engine
from twostream.train.head_trainer import CarriedState, build_head_model

ROOT = project_root()


class OpCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def small_head(cfg: StudyConfig, *, grid: int):
    """The head of ``cfg`` (its tap, fusion, depth, kernel, T) at 8 input channels, hidden 8
    and a ``grid`` x ``grid`` map: what it dispatches does not depend on those sizes."""
    return build_head_model(cfg.replace(convlstm_hidden=8), layer=cfg.fusion_layer,
                            method=cfg.fusion_method, layers=cfg.convlstm_layers,
                            kernel=cfg.convlstm_kernel,
                            shape=(cfg.num_segments, 8, grid, grid), num_classes=5)  # fmt: skip


def ops_per_step(cfg: StudyConfig, *, batch: int, carried: bool, steps: int = 3) -> float:
    """Mean operators per optimiser step of the head of ``cfg`` at ``batch`` videos, counted
    over ``steps`` steps after one warm-up step (Adam's state is created on the first)."""
    t, c, h = cfg.num_segments, 8, 3  # channels, hidden size and grid do not change the count
    model = small_head(cfg, grid=h)
    net = CarriedState(model) if carried else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)
    videos = torch.utils.data.TensorDataset(torch.randn((steps + 1) * batch, t, c, h, h),
                                            torch.randn((steps + 1) * batch, t, c, h, h),
                                            torch.randint(0, 5, ((steps + 1) * batch,)))  # fmt: skip

    def loader(first: int, n: int):  # the batches first .. first + n - 1, in order
        part = torch.utils.data.Subset(videos, range(first * batch, (first + n) * batch))
        return torch.utils.data.DataLoader(part, batch_size=batch)

    def prepare(b):
        return (b[0], b[1]), b[2]

    kw = dict(prepare=prepare, device=torch.device("cpu"), amp=False, grad_clip=cfg.grad_clip)
    # bf16 autocast as a GPU run has it (cfg.amp; the library keeps the CPU in float32): its
    # casts are operators too
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp)
    with amp:
        engine.train_one_epoch(net, loader(0, 1), opt, **kw)  # warm-up
    counter = OpCounter()
    with amp, counter:
        engine.train_one_epoch(net, loader(1, steps), opt, **kw)
    return counter.count / steps


def host_us_per_op(cfg: StudyConfig, *, steps: int = 30) -> float:
    """Microseconds per operator of a batch-of-one carried step timed on this CPU (one
    thread) at tiny channels, where a step is all dispatch and no arithmetic: the host's
    share of every operator, which a GPU step of tiny kernels cannot go below."""
    t, c, h = cfg.num_segments, 8, 2
    model = small_head(cfg, grid=h)
    net = CarriedState(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)
    videos = torch.utils.data.TensorDataset(torch.randn(steps, t, c, h, h),
                                            torch.randn(steps, t, c, h, h),
                                            torch.randint(0, 5, (steps,)))  # fmt: skip
    loader = torch.utils.data.DataLoader(videos, batch_size=1)
    kw = dict(prepare=lambda b: ((b[0], b[1]), b[2]), device=torch.device("cpu"), amp=False,
              grad_clip=cfg.grad_clip)  # fmt: skip
    engine.train_one_epoch(net, loader, opt, **kw)  # warm-up
    t0 = time.perf_counter()
    engine.train_one_epoch(net, loader, opt, **kw)
    step_s = (time.perf_counter() - t0) / steps
    return 1e6 * step_s / ops_per_step(cfg.replace(amp=False), batch=1, carried=True)


def forward_ops(cfg: StudyConfig, *, batch: int) -> float:
    """Operators of one evaluation forward pass (no gradient) at ``batch`` videos."""
    t, c, h = cfg.num_segments, 8, 3
    model = small_head(cfg, grid=h).eval()
    a, b = torch.randn(batch, t, c, h, h), torch.randn(batch, t, c, h, h)  # (B, T, C, H, W)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp):
        model(a, b)  # warm-up
        counter = OpCounter()
        with counter:
            model(a, b)
    return float(counter.count)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "ucf101-paper.yaml"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "head-ops-cpu.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = StudyConfig.from_yaml(args.params, data_root="/nonexistent")
    t0 = time.perf_counter()
    rows = []
    for batch, carried in ((cfg.convlstm_batch_size, False), (1, True)):
        n = ops_per_step(cfg, batch=batch, carried=carried)
        fwd = forward_ops(cfg, batch=batch)
        rows.append({"batch": batch, "carried": carried, "ops_per_step": n,
                     "ops_per_video": n / batch, "eval_ops_per_batch": fwd,
                     "eval_ops_per_video": fwd / batch})  # fmt: skip
    host_us = host_us_per_op(cfg)
    print(f"host: {host_us:.1f} us per operator (batch-of-one step at tiny channels, 1 thread)")
    print(
        f"{'batch':>5}  {'carried':>7}  {'ops/step':>9}  {'ops/video':>9}  {'eval ops/video':>14}"
    )
    for r in rows:
        print(
            f"{r['batch']:>5}  {r['carried']!s:>7}  {r['ops_per_step']:>9.0f}  "
            f"{r['ops_per_video']:>9.1f}  {r['eval_ops_per_video']:>14.1f}"
        )
    out = {
        "benchmark": "head_ops",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "device": device_description("cpu"),
        "versions": library_versions(),
        "params": Path(args.params).name,
        "head": {
            "layer": cfg.fusion_layer,
            "method": cfg.fusion_method,
            "layers": cfg.convlstm_layers,
            "kernel": cfg.convlstm_kernel,
            "time_steps": cfg.num_segments,
            "grad_clip": cfg.grad_clip,
        },  # fmt: skip
        "amp": cfg.amp,
        "host_us_per_op": host_us,
        "note": (
            "ATen operators dispatched per optimiser step (forward, loss, backward, "
            "bf16 autocast casts when amp, "
            "clipping, Adam foreach), counted with a TorchDispatchMode on the CPU at small "
            "channels and hidden size: the count depends on time steps, layers and the "
            "step's code, not on channels, hidden size or grid"
        ),  # fmt: skip
        "rows": rows,
        "wall_time_s": time.perf_counter() - t0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
