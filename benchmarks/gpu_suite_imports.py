"""benchmarks/gpu_suite.sh's first step: can this machine run the suite at all?

    python benchmarks/gpu_suite_imports.py --out DIR/imports-<gpu>.json [--require-cuda]

Imports torch, torchvision, cv2, numpy and every ``twostream`` module (the package from
``lib/`` on PYTHONPATH or an editable install), records their versions and where twostream
was found, and (``--require-cuda``) checks that CUDA is available and runs a matmul on it.
Writes the JSON with ``"ok": true`` only when all of that worked; exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--require-cuda", action="store_true")
    args = ap.parse_args(argv)
    rec: dict = {"benchmark": "imports", "python": sys.version.split()[0],
                 "platform": platform.platform(),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "versions": {}, "errors": {}}  # fmt: skip
    for name in ("numpy", "torch", "torchvision", "cv2"):
        try:
            rec["versions"][name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as e:  # noqa: BLE001 - recorded
            rec["errors"][name] = f"{type(e).__name__}: {e}"
    modules = []
    try:
        import twostream

        rec["twostream_path"] = str(Path(twostream.__file__).parent)
        for m in pkgutil.walk_packages(twostream.__path__, "twostream."):
            if m.name.endswith("__main__"):
                continue  # runs the CLI on import
            modules.append(m.name)
            try:
                importlib.import_module(m.name)
            except Exception as e:  # noqa: BLE001 - recorded
                rec["errors"][m.name] = f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - recorded
        rec["errors"]["twostream"] = f"{type(e).__name__}: {e}"
    rec["twostream_modules"] = len(modules)
    if "torch" in rec["versions"]:
        import torch

        rec["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            try:
                rec["cuda_device"] = torch.cuda.get_device_name(0)
                rec["cuda_version"] = torch.version.cuda
                x = torch.randn(256, 256, device="cuda")
                rec["cuda_matmul_ok"] = bool(torch.isfinite(x @ x).all().item())
            except Exception as e:  # noqa: BLE001 - recorded
                rec["errors"]["cuda"] = f"{type(e).__name__}: {e}"
        elif args.require_cuda:
            rec["errors"]["cuda"] = "torch.cuda.is_available() is False"
    rec["ok"] = not rec["errors"] and bool(modules)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2) + "\n")
    for k, v in rec["errors"].items():
        print(f"import check: {k}: {v}", file=sys.stderr)
    print(f"imports {'ok' if rec['ok'] else 'FAILED'}: {len(modules)} twostream modules, "
          f"{rec['versions']}; wrote {out}")  # fmt: skip
    return 0 if rec["ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - the suite reads the exit status
        traceback.print_exc()
        sys.exit(1)
