import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.train.features import (
    FeatureCache,
    check_taps,
    disk_table,
    extract_features,
    feature_path,
    prefuse,
    read_cache_manifest,
    tap_grid,
    write_manifest,
)

# The stand-in stream and data set, shared by this process and the kill -9 subprocess.
HELPERS = textwrap.dedent(
    """
    import time
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        # StreamNet interface: features(x, taps) -> {tap: (N, C, h, w) | (N, C)}
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.c3 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.c4 = nn.Conv2d(4, 5, 3, stride=2, padding=1)
            self.c5 = nn.Conv2d(5, 6, 3, stride=2, padding=1)
            self.calls = 0

        def features(self, x, taps):
            self.calls += 1
            out = {"conv3_x": torch.relu(self.c3(x))}
            out["conv4_x"] = torch.relu(self.c4(out["conv3_x"]))
            out["conv5_x_inner"] = self.c5(out["conv4_x"])
            out["conv5_x"] = torch.relu(out["conv5_x_inner"])
            out["fc"] = out["conv5_x"].mean((2, 3))
            return {t: out[t] for t in taps}

    class FakeVideos(torch.utils.data.Dataset):
        # item i -> (x (T, 3, 16, 16) seeded by i, label)
        def __init__(self, n, T=3, delay=0.0):
            self.n, self.T, self.delay = n, T, delay

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            time.sleep(self.delay)
            g = torch.Generator().manual_seed(1000 + i)
            return torch.randn(self.T, 3, 16, 16, generator=g), i % 3
    """
)
ns: dict = {}
exec(HELPERS, ns)
TinyNet, FakeVideos = ns["TinyNet"], ns["FakeVideos"]
VIDEOS = [f"C{i % 3}/v_C{i % 3}_g{i:02d}_c01.avi" for i in range(10)]
TAPS = ["conv3_x", "conv5_x", "fc"]


@dataclass(frozen=True)
class Rec:
    path: str
    label: int
    group: str | None = None


def _dirs(root: Path, taps=TAPS) -> dict:
    return {t: root / f"spatial-tiny-{t}-key" for t in taps}


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.npy"))}


def test_extract_writes_fp16_maps_of_all_taps_in_one_pass(tmp_path):
    model = TinyNet()
    dirs = _dirs(tmp_path)
    stats = extract_features(model, FakeVideos(10), VIDEOS, dirs, batch_videos=4)
    assert stats == {"computed": 10, "skipped": 0}
    assert model.calls == 3  # ceil(10 / 4) chunks, every tap from the same forward
    x = FakeVideos(10)[7][0]  # (T, 3, 16, 16)
    with torch.no_grad():
        ref = model.features(x, TAPS)
    for tap in TAPS:
        arr = np.load(feature_path(dirs[tap], VIDEOS[7]))
        assert arr.dtype == np.float16
        assert arr.shape == tuple(ref[tap].shape)  # (T, C, h, w) or (T, C)
        np.testing.assert_allclose(arr.astype(np.float32), ref[tap].numpy(), rtol=2e-3, atol=2e-3)
    assert feature_path(dirs["fc"], VIDEOS[7]) == dirs["fc"] / "C1" / "v_C1_g07_c01.npy"


def test_resume_recomputes_only_missing_chunks(tmp_path):
    dirs = _dirs(tmp_path)
    extract_features(TinyNet(), FakeVideos(10), VIDEOS, dirs, batch_videos=4)
    before = _all_files(tmp_path)
    feature_path(dirs["conv5_x"], VIDEOS[5]).unlink()  # chunk [4..7]
    model = TinyNet()
    stats = extract_features(model, FakeVideos(10), VIDEOS, dirs, batch_videos=4)
    assert stats == {"computed": 4, "skipped": 6} and model.calls == 1
    assert _all_files(tmp_path) == before
    model = TinyNet()
    assert extract_features(model, FakeVideos(10), VIDEOS, dirs, batch_videos=4)["computed"] == 0
    assert model.calls == 0


def test_shards_are_disjoint_and_complete(tmp_path):
    full, sharded = tmp_path / "full", tmp_path / "sharded"
    extract_features(TinyNet(), FakeVideos(10), VIDEOS, _dirs(full), batch_videos=2)
    s0 = extract_features(
        TinyNet(), FakeVideos(10), VIDEOS, _dirs(sharded), batch_videos=2, rank=0, world=2
    )
    assert s0["computed"] == 5
    assert len(list(sharded.rglob("*.npy"))) == 5 * len(TAPS)
    extract_features(
        TinyNet(), FakeVideos(10), VIDEOS, _dirs(sharded), batch_videos=2, rank=1, world=2
    )
    assert _all_files(full) == _all_files(sharded)


@pytest.mark.slow
def test_kill_9_then_rerun_gives_identical_files(tmp_path):
    script = tmp_path / "extract.py"
    script.write_text(
        HELPERS
        + textwrap.dedent(
            f"""
            import sys
            from pathlib import Path
            from twostream.train.features import extract_features
            root = Path(sys.argv[1])
            delay = float(sys.argv[2])
            videos = {VIDEOS!r}
            dirs = {{t: root / f"spatial-tiny-{{t}}-key" for t in {TAPS!r}}}
            extract_features(TinyNet(), FakeVideos(10, delay=delay), videos, dirs, batch_videos=2)
            """
        )
    )
    env = {**os.environ, "TWOSTREAM_QUIET": "1"}
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    extract_features(TinyNet(), FakeVideos(10), VIDEOS, _dirs(clean), batch_videos=2)
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.15"], env=env)
    deadline = time.time() + 40
    while time.time() < deadline and len(list(killed.rglob("*.npy"))) < 2 * len(TAPS):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(killed.rglob("*.npy")))
    assert 0 < partial < 10 * len(TAPS), "the kill should land mid-extraction"
    subprocess.run([sys.executable, str(script), str(killed), "0"], check=True, env=env, timeout=60)
    assert _all_files(killed) == _all_files(clean)
    assert len(_all_files(clean)) == 10 * len(TAPS)


def test_manifest(tmp_path):
    dirs = _dirs(tmp_path)
    extract_features(TinyNet(), FakeVideos(10), VIDEOS[:10], dirs, batch_videos=4)
    write_manifest(dirs["conv5_x"], VIDEOS, stream="spatial", tap="conv5_x", checkpoint="x.pt")
    m = read_cache_manifest(dirs["conv5_x"])
    assert m["shape"] == [3, 6, 2, 2] and m["dtype"] == "float16" and m["complete"]
    assert m["values_per_video"] == 72 and m["bytes_per_video"] == 144 and m["videos"] == 10
    write_manifest(dirs["fc"], [*VIDEOS, "C0/missing.avi"], tap="fc")
    m = read_cache_manifest(dirs["fc"])
    assert m["shape"] == [3, 6] and not m["complete"] and m["missing"] == 1


def test_feature_cache_ram_and_disk_agree(tmp_path):
    spatial, temporal = tmp_path / "s", tmp_path / "t"
    extract_features(TinyNet(), FakeVideos(10), VIDEOS, {"conv5_x": spatial}, batch_videos=4)
    extract_features(TinyNet(), FakeVideos(10, T=3), VIDEOS, {"conv5_x": temporal}, batch_videos=5)
    recs = [Rec(v, i % 3) for i, v in enumerate(VIDEOS)]
    dirs = {"spatial": spatial, "temporal": temporal}
    ram = FeatureCache(dirs, recs, in_memory=True)
    disk = FeatureCache(dirs, recs, in_memory=False)
    assert ram.in_memory and not disk.in_memory and len(ram) == 10
    assert ram.shape == (3, 6, 2, 2) and ram.values_per_video == 72
    a, b, y = ram[[4, 1, 7]]
    assert a.shape == (3, 3, 6, 2, 2) and a.dtype == torch.float32 and y.tolist() == [1, 1, 1]
    for got, want in zip(ram[[4, 1, 7]], disk[[4, 1, 7]]):
        assert torch.equal(got, want)
    a1, b1, y1 = disk[4]
    assert torch.equal(a1, a[0]) and int(y1) == 1
    expect = torch.from_numpy(np.load(feature_path(spatial, VIDEOS[4])).astype(np.float32))
    assert torch.equal(a1, expect)
    with pytest.raises(UserError, match="extract-features"):
        FeatureCache(dirs, [*recs, Rec("C0/nope.avi", 0)])


def test_prefuse_parameter_free_only(tmp_path):
    spatial, temporal = tmp_path / "spatial-tiny-conv5_x-k1", tmp_path / "temporal-tiny-conv5_x-k2"
    extract_features(TinyNet(), FakeVideos(10), VIDEOS, {"conv5_x": spatial}, batch_videos=4)
    torch.manual_seed(5)
    other = TinyNet()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1 * torch.randn_like(p))
    extract_features(other, FakeVideos(10), VIDEOS, {"conv5_x": temporal}, batch_videos=4)
    dirs = {"spatial": spatial, "temporal": temporal}
    out = prefuse(dirs, "max", VIDEOS)
    assert out.parent == tmp_path and out.name.startswith("fusedmax-tiny-conv5_x-")
    a = np.load(feature_path(spatial, VIDEOS[3])).astype(np.float32)
    b = np.load(feature_path(temporal, VIDEOS[3])).astype(np.float32)
    fused = np.load(feature_path(out, VIDEOS[3]))
    assert fused.dtype == np.float16
    np.testing.assert_array_equal(fused.astype(np.float32), np.maximum(a, b))
    s = prefuse(dirs, "sum", VIDEOS)
    np.testing.assert_allclose(
        np.load(feature_path(s, VIDEOS[3])).astype(np.float32), a + b, rtol=1e-3
    )
    assert read_cache_manifest(s)["complete"] and read_cache_manifest(s)["prefused"]
    cache = FeatureCache({"fused": s}, [Rec(v, 0) for v in VIDEOS])
    x, empty, _ = cache[[0, 1]]
    assert cache.prefused and x.shape == (2, 3, 6, 2, 2) and empty.numel() == 0
    with pytest.raises(UserError, match="parameter-free"):
        prefuse(dirs, "conv", VIDEOS)


def test_unknown_tap_lists_known():
    assert check_taps("conv5_x,fc,conv5_x") == ("conv5_x", "fc")
    with pytest.raises(
        UserError, match="known taps: conv3_x, conv4_x, conv5_x_inner, conv5_x_branch, conv5_x, fc"
    ):
        check_taps(["conv6_x"])


def test_disk_table_paper_scale():
    assert tap_grid(224, "conv3_x") == (28, 28) and tap_grid(224, "conv5_x") == (7, 7)
    assert tap_grid(80, "conv5_x") == (3, 3) and tap_grid(80, "fc") is None
    cfg = StudyConfig(
        dataset="ucf101", backbone="resnet101", input_size=224, crop_size=256, num_segments=25
    )
    t = disk_table(cfg, 13320).set_index(["layer", "storage"])
    both = t.loc[("conv5_x", "both streams (concat, conv)")]
    assert both["values_per_video"] == 2 * 25 * 7 * 7 * 2048
    assert both["bytes_per_video"] / 2 == pytest.approx(5.0e6, rel=0.01)  # ~5 MB per stream
    assert both["total_gb"] == pytest.approx(133.6, rel=0.01)
    assert t.loc[("conv5_x", "pre-fused (sum, max)"), "total_gb"] == pytest.approx(66.8, rel=0.01)
    assert t.loc[("conv3_x", "pre-fused (sum, max)"), "values_per_video"] == 25 * 28 * 28 * 512
    assert t.loc[("fc", "pre-fused (sum, max)"), "values_per_video"] == 25 * 2048


def test_extract_stream_with_real_stream(tmp_path):
    """A real (random) resnet18 checkpoint over JPEG rawframes: one pass for both taps."""
    import cv2

    from twostream.models.streams import build_stream
    from twostream.train import features
    from twostream.train.checkpoint import save_checkpoint

    cfg = StudyConfig(
        data_root=str(tmp_path),
        num_segments=2,
        flow_length=2,
        crop_size=32,
        input_size=32,
        device="cpu",
    )
    recs = [Rec("A/v_A_g01_c01.avi", 0, "g01"), Rec("B/v_B_g02_c01.avi", 1, "g02")]
    rng = np.random.default_rng(0)
    for r in recs:
        d = cfg.rawframes_dir / Path(r.path).parent / Path(r.path).stem
        d.mkdir(parents=True)
        for i in range(1, 7):
            cv2.imwrite(
                str(d / f"img_{i:05d}.jpg"), rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)
            )
            if i < 6:
                for c in "xy":
                    cv2.imwrite(
                        str(d / f"flow_{c}_{i:05d}.jpg"),
                        rng.integers(0, 255, (36, 40), dtype=np.uint8),
                    )
    runs = {}
    for stream, modality in (("spatial", "rgb"), ("temporal", "flow")):
        torch.manual_seed(0)
        net = build_stream(modality=modality, backbone="resnet18", num_classes=2, flow_length=2)
        runs[stream] = tmp_path / "runs" / stream
        save_checkpoint(
            runs[stream] / "checkpoint_best.pt",
            model=net,
            epoch=0,
            config=cfg,
            extra={"arch": net.arch},
        )
    out = {tap: {} for tap in ("conv5_x", "fc")}
    for stream in runs:
        dirs = {tap: tmp_path / "features" / f"{stream}-resnet18-{tap}" for tap in out}
        features.extract_stream(cfg, stream=stream, records=recs,
                                checkpoint=runs[stream] / "checkpoint_best.pt", dirs=dirs)  # fmt: skip
        for tap, d in dirs.items():
            out[tap][stream] = d
    assert set(out) == {"conv5_x", "fc"} and set(out["fc"]) == {"spatial", "temporal"}
    m = read_cache_manifest(out["conv5_x"]["temporal"])
    assert m["complete"] and m["shape"] == [2, 512, 1, 1] and m["checkpoint_sha1"]
    assert json.loads((out["fc"]["spatial"] / "manifest.json").read_text())["shape"] == [2, 512]
    # the cached maps are the stream's own features of the eval-transformed steps
    from twostream.data.datasets import VideoSteps
    from twostream.data.transforms import eval_transform

    x = VideoSteps(
        recs,
        cfg.rawframes_dir,
        modality="flow",
        num_segments=2,
        flow_length=2,
        transform=eval_transform(cfg, "flow"),
    )[1][0]
    net = build_stream(modality="flow", backbone="resnet18", num_classes=2, flow_length=2)
    net.load_state_dict(
        torch.load(runs["temporal"] / "checkpoint_best.pt", weights_only=False)["model"]
    )
    with torch.no_grad():
        ref = net.eval().features(x, ["fc"])["fc"].numpy()
    got = np.load(feature_path(out["fc"]["temporal"], recs[1].path)).astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=1e-2, atol=1e-2)


def test_values_beyond_float16_are_clipped_with_a_warning(tmp_path):
    """float16 saturates at 65504; an inf in the cache would poison every ConvLSTM run."""
    import warnings

    import numpy as np
    import torch

    from twostream.train.features import FLOAT16_MAX, extract_features

    class Huge(torch.nn.Module):
        def features(self, x, taps):
            return {t: x.mean(dim=(2, 3), keepdim=True) * 1e6 for t in taps}  # (N, C, 1, 1)

    data = [(torch.full((2, 3, 4, 4), v), 0) for v in (1.0, -1.0)]  # 2 videos, T = 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extract_features(
            Huge(), data, ["A/a.avi", "A/b.avi"], {"conv5_x": tmp_path}, batch_videos=2
        )
    assert any("float16 range" in str(w.message) for w in caught)
    a = np.load(tmp_path / "A" / "a.npy")
    b = np.load(tmp_path / "A" / "b.npy")
    assert np.isfinite(a).all() and a.max() == np.float16(FLOAT16_MAX) and b.min() == -a.max()
