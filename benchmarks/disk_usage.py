"""Disk needed per stage at full scale, measured on real clips and extrapolated.

Runs ``twostream prepare`` (short side 256, as the authors' code) on a folder of real
videos (default: the UCF101 clips of ../shared/data/real_clips), measures the bytes per
frame of the RGB and flow JPEGs, and combines them with the feature-cache sizes (float16,
exact: T x H x W x C x 2 bytes) into a per-stage disk table for UCF101.

    python benchmarks/disk_usage.py [--videos DIR]

Prints a table and writes benchmarks/results/disk_usage.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from twostream.core.config import StudyConfig
from twostream.core.params_io import save_json
from twostream.core.runtime import device_description
from twostream.models.streams import tap_channels
from twostream.prepare.run import prepare
from twostream.study.results import git_commit, library_versions

REPO = Path(__file__).resolve().parents[1]
UCF101_VIDEOS, UCF101_FRAMES = 13320, 27 * 3600 * 25  # 13,320 clips, ~27 h at 25 fps (UCF101 paper)
GRID = {"conv3_x": 28, "conv4_x": 14, "conv5_x_inner": 7, "conv5_x": 7, "fc": 1}  # at 224 px


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--videos", default=str(REPO.parent / "shared" / "data" / "real_clips" / "UCF101")
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    videos = Path(args.videos)
    if not videos.is_dir():
        print(f"no videos at {videos}; pass --videos DIR", file=sys.stderr)
        return 2
    cfg = StudyConfig.from_yaml(REPO / "params" / "ucf101.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        summary = prepare(
            videos,
            tmp,
            short_side=cfg.short_side,
            flow_backend="opencv",
            flow_preset="fast",
            workers=1,
            show_progress=False,
        )
        files = [p for p in Path(tmp).rglob("*.jpg")]
        rgb = [p.stat().st_size for p in files if p.name.startswith("img_")]
        flo = [p.stat().st_size for p in files if p.name.startswith("flow_")]
    per_frame = {"rgb_bytes": sum(rgb) / len(rgb), "flow_xy_bytes": 2 * sum(flo) / len(flo)}
    rows = [
        {"stage": "rawframes (RGB JPEG)", "gb": UCF101_FRAMES * per_frame["rgb_bytes"] / 1e9},
        {
            "stage": "rawframes (flow x+y JPEG)",
            "gb": UCF101_FRAMES * per_frame["flow_xy_bytes"] / 1e9,
        },
    ]
    for tap, g in GRID.items():
        values = cfg.num_segments * g * g * tap_channels(cfg.backbone, tap)
        gb = UCF101_VIDEOS * values * 2 / 1e9
        rows.append(
            {"stage": f"features {tap}, one stream (float16)", "gb": gb, "values_per_video": values}
        )
        rows.append(
            {
                "stage": f"features {tap}, both streams / fused once (sum, max)",
                "gb": 2 * gb,
                "fused_once_gb": gb,
            }
        )
    print(f"measured on {len(rgb)} frames of {summary}")
    print(
        f"bytes per frame: RGB {per_frame['rgb_bytes']:.0f}, flow x+y {per_frame['flow_xy_bytes']:.0f}"
    )
    print(f"{'UCF101 stage':58s} {'GB':>8s}")
    for r in rows:
        extra = f"   (fused once: {r['fused_once_gb']:.0f} GB)" if "fused_once_gb" in r else ""
        print(f"{r['stage']:58s} {r['gb']:8.1f}{extra}")
    out = save_json(
        {
            "benchmark": "disk_usage",
            "device": device_description(),
            "git_commit": git_commit(),
            "versions": library_versions(),
            "videos": str(videos),
            "frames_measured": len(rgb),
            "short_side": cfg.short_side,
            "per_frame": per_frame,
            "ucf101_frames": UCF101_FRAMES,
            "ucf101_videos": UCF101_VIDEOS,
            "rows": rows,
        },
        Path(args.out) / "disk_usage.json",
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
