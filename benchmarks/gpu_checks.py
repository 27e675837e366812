"""The GPU suite's checks that no other benchmark makes: the loader at the configured worker
counts, peak GPU memory at the params file's batch sizes, and a compile + checkpoint round trip.

    python benchmarks/gpu_checks.py --device cuda --out DIR/gpu-checks-h100.json
    python benchmarks/gpu_checks.py --device cpu --tiny --out /tmp/x.json   # CPU, seconds

Sections (``--sections``, default all), each recorded in the JSON as soon as it finishes
(a section killed by a time limit leaves the ones before it):

* ``loader``    flow training samples/s through a DataLoader at 0 and ``num_workers`` (the
  params file's) workers and 2 x that: the host pipeline (workers decode + augment:
  ``TrainSteps`` + ``StackTransform``) and the device pipeline's host side (workers read the
  JPEG bytes: ``device_pipeline.read_encoded``) plus its device side (decode + augment of the
  batch on ``--device``), on random 340x256 JPEG rawframes in a temporary folder;
* ``memory``    peak memory (``torch.cuda.max_memory_allocated``; max RSS on the CPU) of one
  training step of each stream at ``stream_batch_size`` (bf16 autocast, channels_last on CUDA)
  and of the ConvLSTM head at ``convlstm_batch_size``;
* ``carried``   the head trained the authors' way (one video per step, state carried:
  ``CarriedState`` through ``engine.train_one_epoch``) at the params file's cell and the real
  conv5_x shape: ms per step, and that time over the operators a step dispatches (counted
  by benchmarks/head_ops.py) = the measured ``gpu_op_us`` of ``twostream plan``;
* ``roundtrip`` ``torch.compile`` a stream, train one step, save it with
  ``twostream.train.checkpoint.save_checkpoint``, load it with ``load_checkpoint`` into a fresh
  *uncompiled* model and compare the eval outputs. A state dict saved with ``_orig_mod.``
  prefixes (a compiled module not unwrapped) fails here, with the keys named.

The exit status is 1 when any section failed (its error is in the JSON).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twostream.core.config import StudyConfig
from twostream.core.runtime import atomic_write_text, device_description, resolve_device
from twostream.data import device_pipeline as dp
from twostream.data.datasets import TrainSteps
from twostream.data.transforms import StackTransform
from twostream.models import convlstm
from twostream.models.streams import build_stream, tap_channels
from twostream.study.results import git_commit, library_versions
from twostream.train import engine
from twostream.train.checkpoint import load_checkpoint, save_checkpoint
from twostream.train.head_trainer import CarriedState

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("loader", "memory", "carried", "roundtrip")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_ops import ops_per_step  # noqa: E402  (benchmarks/head_ops.py, a sibling script)
from train import write_rawframes  # noqa: E402  (benchmarks/train.py, a sibling script)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Encoded(torch.utils.data.Dataset):
    """The device pipeline's host side: one flow stack's JPEG bytes + its train parameters."""

    def __init__(self, folders, flow_length, augment, n):
        self.folders, self.L, self.augment, self.n = folders, flow_length, augment, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        folder = self.folders[i % len(self.folders)]
        g = dp.item_generator(0, 0, i)
        frames = len(list(folder.glob("flow_x_*.jpg")))
        t = int(torch.randint(1, max(2, frames - self.L + 1), (1,), generator=g))
        paths = [folder / f"flow_{a}_{k:05d}.jpg" for k in range(t, t + self.L) for a in "xy"]
        enc = dp.read_encoded(paths, modality="flow")
        h, w = enc.size
        return enc, self.augment.params(g, height=h, width=w), 0


def section_loader(args, cfg, device, tmp: Path) -> dict:
    videos, frames = (2, 12) if args.tiny else (8, 40)
    size = (96, 72) if args.tiny else (340, 256)
    recs = write_rawframes(tmp, videos=videos, frames=frames, width=size[0], height=size[1])
    folders = [tmp / r.path[:-4] for r in recs]
    crop, inp = (64, 56) if args.tiny else (cfg.crop_size, cfg.input_size)
    batch = 4 if args.tiny else cfg.stream_batch_size
    batches = 2 if args.tiny else 6
    counts = sorted({0, cfg.num_workers, 2 * cfg.num_workers} - ({16} if args.tiny else set()))
    if args.tiny:
        counts = [0, 1]
    tf = StackTransform(modality="flow", train=True, crop_size=crop, input_size=inp,
                        scale_min=cfg.scale_min, scale_max=cfg.scale_max, flip=True)  # fmt: skip
    host_ds = TrainSteps(recs, tmp, modality="flow", flow_length=cfg.flow_length,
                         samples_per_video=10_000, transform=tf, seed=0)  # fmt: skip
    aug = dp.DeviceAugment(modality="flow", crop_size=crop, input_size=inp,
                           scale_min=cfg.scale_min, scale_max=cfg.scale_max, flip=True)  # fmt: skip
    dev_ds = _Encoded(folders, cfg.flow_length, aug, 10_000)
    rows = []
    for workers in counts:
        for pipe, ds, collate in (("host", host_ds, None), ("device", dev_ds, dp.collate)):
            dl = torch.utils.data.DataLoader(
                ds, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=collate,
                pin_memory=device.type == "cuda", drop_last=True,
            )  # fmt: skip
            it = iter(dl)
            # Steady state only: the workers start together and fill prefetch_factor (2)
            # batches each, so the first 2 x workers batches arrive at once and would
            # measure the prefetch buffer, not the loader (the first GPU run reported
            # 121,000 samples/s for 8 host workers that way). Drain them untimed.
            for _ in range(1 + 2 * workers):
                next(it)
            t0 = time.perf_counter()
            dev_s = 0.0
            for _ in range(batches + workers):  # at least one batch per worker timed
                b = next(it)
                if pipe == "device":
                    t1 = time.perf_counter()
                    x = aug(b.stacks(device=device), b.params.to(device))
                    _sync(device)
                    dev_s += time.perf_counter() - t1
                    del x
            wall = time.perf_counter() - t0
            n = (batches + workers) * batch
            rows.append({"pipeline": pipe, "workers": workers, "batch": batch,
                         "samples_per_s": n / wall,
                         "device_ms_per_sample": dev_s * 1e3 / n if pipe == "device" else None,
                         "note": "device pipeline: wall includes the decode + augment on "
                                 f"{device.type}" if pipe == "device" else ""})  # fmt: skip
            del it, dl
    return {"frame_size": list(size), "modality": "flow", "configured_workers": cfg.num_workers,
            "rows": rows}  # fmt: skip


def section_memory(args, cfg, device) -> dict:
    backbone = "resnet18" if args.tiny else cfg.backbone
    bs = 2 if args.tiny else cfg.stream_batch_size
    size = 64 if args.tiny else cfg.input_size
    out = {"backbone": backbone, "rows": []}
    for modality in ("rgb", "flow"):
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = build_stream(modality=modality, backbone=backbone, num_classes=101,
                             flow_length=cfg.flow_length).to(device)  # fmt: skip
        mf = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        model = model.to(memory_format=mf)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        c = 3 if modality == "rgb" else 2 * cfg.flow_length
        x = torch.randn(bs, c, size, size, device=device).contiguous(memory_format=mf)
        y = torch.randint(0, 101, (bs,), device=device)
        for _ in range(2):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        out["rows"].append({"what": f"{modality} stream step", "batch": bs,
                            "peak_mb": _peak_mb(device)})  # fmt: skip
        del model, opt, x, y, loss
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    c = tap_channels(cfg.backbone, "conv5_x")
    hidden, t, grid = (16, 3, 2) if args.tiny else (cfg.convlstm_hidden, cfg.num_segments, 7)
    hb = 2 if args.tiny else cfg.convlstm_batch_size
    head = convlstm.build_head(kind="convlstm", in_channels=c, num_classes=101,
                               fusion=cfg.fusion_method, layers=cfg.convlstm_layers,
                               kernel=cfg.convlstm_kernel, hidden=hidden).to(device)  # fmt: skip
    opt = torch.optim.Adam(head.parameters(), lr=1e-4)
    a = torch.randn(hb, t, c, grid, grid, device=device)
    y = torch.randint(0, 101, (hb,), device=device)
    for _ in range(2):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
            loss = F.cross_entropy(head(a, a).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    out["rows"].append({"what": "ConvLSTM head step", "batch": hb, "peak_mb": _peak_mb(device)})
    return out


def section_carried(args, cfg, device) -> dict:
    """ms per training step of a batch-of-one head with carried state, and per operator."""
    c = tap_channels(cfg.backbone, cfg.fusion_layer)
    hidden, t, grid, steps = (16, 3, 2, 5) if args.tiny else (cfg.convlstm_hidden,
                                                               cfg.num_segments, 7, 60)  # fmt: skip
    head = convlstm.build_head(kind="convlstm", in_channels=c, num_classes=101,
                               fusion=cfg.fusion_method, layers=cfg.convlstm_layers,
                               kernel=cfg.convlstm_kernel, hidden=hidden).to(device)  # fmt: skip
    opt = torch.optim.Adam(head.parameters(), lr=1e-4, foreach=True)
    net = CarriedState(head)
    videos = torch.utils.data.TensorDataset(
        torch.randn(steps, t, c, grid, grid), torch.randint(0, 101, (steps,))
    )  # (N, T, C, H, W) maps, one per step
    loader = torch.utils.data.DataLoader(videos, batch_size=1)

    def prepare(b):
        x = b[0].to(device, non_blocking=True)
        return (x, x), b[1].to(device, non_blocking=True)

    kw = dict(prepare=prepare, device=device, amp=cfg.amp, grad_clip=cfg.grad_clip)
    engine.train_one_epoch(net, loader, opt, **kw)  # warm-up (allocator, cuDNN choices)
    _sync(device)
    t0 = time.perf_counter()
    engine.train_one_epoch(net, loader, opt, **kw)
    _sync(device)
    step_s = (time.perf_counter() - t0) / steps
    ops = ops_per_step(cfg.replace(num_segments=t), batch=1, carried=True)  # at the timed T
    return {"cell": f"{cfg.fusion_layer}/{cfg.fusion_method} {cfg.convlstm_layers}x"
                    f"{cfg.convlstm_kernel}, hidden {hidden}, T {t}, grid {grid}",
            "steps": steps, "ms_per_step": 1e3 * step_s, "ops_per_step": ops,
            "us_per_op": 1e6 * step_s / ops}  # fmt: skip


def section_roundtrip(args, cfg, device, tmp: Path) -> dict:
    backbone = "resnet18" if args.tiny else cfg.backbone
    size = 64 if args.tiny else cfg.input_size
    torch.manual_seed(0)
    model = build_stream(modality="rgb", backbone=backbone, num_classes=101).to(device)
    # --tiny: the eager backend (the same OptimizedModule wrapper, no inductor build on a CPU)
    compiled = torch.compile(model, backend="eager" if args.tiny else "inductor")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(4, 3, size, size, device=device)
    y = torch.randint(0, 101, (4,), device=device)
    t0 = time.perf_counter()
    loss = F.cross_entropy(compiled(x).float(), y)
    loss.backward()
    opt.step()
    _sync(device)
    compile_s = time.perf_counter() - t0
    path = save_checkpoint(tmp / "roundtrip.pt", model=compiled, epoch=0, config=cfg,
                           optimizer=opt)  # fmt: skip
    saved = torch.load(path, map_location="cpu", weights_only=False)["model"]
    prefixed = sorted(k for k in saved if k.startswith(("_orig_mod.", "module.")))
    fresh = build_stream(modality="rgb", backbone=backbone, num_classes=101).to(device)
    out = {"backbone": backbone, "compile_and_first_step_s": compile_s,
           "saved_keys": len(saved), "prefixed_keys": prefixed[:5],
           "prefixed_key_count": len(prefixed)}  # fmt: skip
    try:
        load_checkpoint(path, model=fresh, restore_rng=False)
    except Exception as e:  # noqa: BLE001 - reported, and the section fails
        raise RuntimeError(
            f"a checkpoint saved from a torch.compile'd model does not load into an uncompiled "
            f"one: {type(e).__name__}: {str(e)[:160]}... ({len(prefixed)} saved keys carry a "
            f"wrapper prefix, e.g. {prefixed[:2]}; checkpoint._unwrap must strip _orig_mod.)"
        ) from e
    model.eval()
    fresh.eval()
    with torch.no_grad():
        diff = (model(x) - fresh(x)).abs().max().item()
    out["max_abs_diff_eval"] = diff
    if diff > 1e-4:
        raise RuntimeError(f"the reloaded model's outputs differ by {diff:g}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--params", default=str(REPO / "params" / "ucf101-paper.yaml"))
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--tiny", action="store_true", help="CPU sizes (ResNet-18, small batches)")
    ap.add_argument("--out", required=True, help="JSON file, rewritten after every section")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    cfg = StudyConfig.from_yaml(args.params)
    record = {"benchmark": "gpu_checks", "device": device_description(device),
              "tiny": args.tiny, "params": args.params, "num_workers": cfg.num_workers,
              "git_commit": git_commit(), "versions": library_versions(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "sections": {}}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.sections:
        t0 = time.perf_counter()
        print(f"--- {name}", flush=True)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                if name == "loader":
                    res = section_loader(args, cfg, device, Path(tmp))
                elif name == "memory":
                    res = section_memory(args, cfg, device)
                elif name == "carried":
                    res = section_carried(args, cfg, device)
                else:
                    res = section_roundtrip(args, cfg, device, Path(tmp))
            res["status"] = "ok"
        except Exception as e:  # noqa: BLE001 - recorded; the exit status says it failed
            print("".join(traceback.format_exception_only(e))[:1500], file=sys.stderr)
            res = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
            failed.append(name)
        res["seconds"] = time.perf_counter() - t0
        record["sections"][name] = res
        print(json.dumps(res, default=str)[:2000], flush=True)
        atomic_write_text(out, json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
