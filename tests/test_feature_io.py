"""Feature-cache I/O: float16 reads converted on the device give the numbers a float32 host
conversion gave, single-stream heads read one stream, heads of one process share the held
maps, the RAM budget comes from the machine, and a killed extraction resumes per video."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from twostream.core.config import StudyConfig
from twostream.pipeline import graph
from twostream.train import feature_store, features
from twostream.train import head_trainer as heads
from twostream.train.feature_store import HELD, READS
from twostream.train.features import (
    FeatureCache,
    clear_stale_cache,
    feature_path,
    prefuse,
    read_cache_manifest,
    save_npy,
    write_manifest,
)

K, T, C, H = 3, 3, 4, 3
CLASSES = ["C0", "C1", "C2"]


@dataclass(frozen=True)
class Rec:
    path: str
    label: int
    group: str | None = None


@pytest.fixture(autouse=True)
def _fresh_store(monkeypatch):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv("TWOSTREAM_CACHE_RAM_BYTES", raising=False)
    HELD.clear()
    READS.reset()
    yield
    HELD.clear()
    torch.set_num_threads(n)


def _records(per_class: int = 6):
    recs = [Rec(f"C{k}/v_C{k}_g{g:02d}_c01.avi", k) for k in range(K) for g in range(per_class)]
    return {
        "train": [r for r in recs if int(r.path[-10:-8]) < per_class - 2],
        "val": [r for r in recs if int(r.path[-10:-8]) == per_class - 2],
        "test": [r for r in recs if int(r.path[-10:-8]) == per_class - 1],
    }


def _write(root: Path, recs) -> dict[str, Path]:
    dirs = {"spatial": root / "spatial-x-conv5_x-1", "temporal": root / "temporal-x-conv5_x-2"}
    rng = np.random.default_rng(0)
    for r in recs:
        for s, d in dirs.items():
            x = rng.normal(0, 0.7, (T, C, H, H)).astype(np.float32)
            x[:, r.label] += 1.0 if s == "spatial" else 0.5
            save_npy(feature_path(d, r.path), x.astype(np.float16))
    return dirs


@pytest.fixture()
def maps(tmp_path):
    records = _records()
    every = [r for v in records.values() for r in v]
    return records, every, _write(tmp_path / "maps", every)


# ----------------------------------------------------------------------------- reading


def test_float16_batches_convert_on_the_device_to_the_host_values(maps):
    _, every, dirs = maps
    host = FeatureCache(dirs, every, in_memory=False)  # float32 on the host (the old path)
    half = FeatureCache(dirs, every, in_memory=False, dtype=None)
    a, b, y = half[[3, 0, 5]]
    assert a.dtype == torch.float16 and b.dtype == torch.float16
    a2, b2 = heads.to_device(a, b, "cpu")
    a1, b1, y1 = host[[3, 0, 5]]
    assert a2.dtype == torch.float32 and torch.equal(a2, a1) and torch.equal(b2, b1)
    assert torch.equal(y, y1)


def test_single_stream_cache_reads_one_stream_and_serves_it_as_both(maps):
    _, every, dirs = maps
    per_map = T * C * H * H * 2
    READS.reset()
    both = FeatureCache(dirs, every, in_memory=False, dtype=None)
    both[list(range(len(every)))]
    assert READS.reset()["bytes"] == 2 * len(every) * per_map
    only = heads.head_caches(dirs, {"all": every}, method="temporal", in_memory=False)["all"]
    a, b, _ = only[list(range(len(every)))]
    assert READS.reset()["bytes"] == len(every) * per_map and a is b
    assert torch.equal(b, both[list(range(len(every)))][1])
    assert heads.head_caches(dirs, {"x": every}, method="sum")["x"].names == (
        "spatial",
        "temporal",
    )


def test_held_maps_are_read_once_per_process_and_shared_by_heads(maps, tmp_path):
    records, every, dirs = maps
    per_map = T * C * H * H * 2
    first = heads.head_caches(dirs, records, method="sum")
    assert all(c.in_memory for c in first.values())
    assert READS.reset()["bytes"] == 2 * len(every) * per_map  # loaded once
    for method in ("spatial", "temporal", "sum"):  # Table 3's other heads, the audit
        again = heads.head_caches(dirs, records, method=method)
        for c in again.values():
            c[list(range(len(c)))]
    assert READS.reset()["bytes"] == 0
    # a rewritten file (a new checkpoint's maps, atomic rename) is never served stale
    v = records["test"][0].path
    new = np.full((T, C, H, H), 7, np.float16)
    save_npy(feature_path(dirs["spatial"], v), new)
    fresh = FeatureCache(dirs, records["test"])
    assert torch.equal(fresh[0][0], torch.from_numpy(new).float())


def test_budget_holds_what_fits_and_the_rest_is_read_each_time(maps, monkeypatch):
    _, every, dirs = maps
    per_map = T * C * H * H * 2
    monkeypatch.setenv("TWOSTREAM_CACHE_RAM_BYTES", str(5 * per_map))
    HELD.clear()
    assert feature_store.ram_budget() == 5 * per_map
    part = FeatureCache(dirs, every)
    assert not part.in_memory and HELD.held() == {"cpu": 5 * per_map}
    READS.reset()
    ref = FeatureCache(dirs, every, in_memory=False)
    want = ref[list(range(len(every)))]
    READS.reset()
    got = part[list(range(len(every)))]
    assert READS.reset()["bytes"] == (2 * len(every) - 5) * per_map
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    monkeypatch.delenv("TWOSTREAM_CACHE_RAM_BYTES")
    monkeypatch.setenv("TWOSTREAM_CACHE_RAM_FRACTION", "0.25")
    ram = feature_store.physical_ram_bytes()
    assert ram > 0 and feature_store.ram_budget() == int(0.25 * ram)
    assert feature_store.gpu_budget(torch.device("cpu")) == 0


def test_unreferenced_maps_make_room_for_a_new_cache(maps, monkeypatch):
    _, every, dirs = maps
    per_map = T * C * H * H * 2
    monkeypatch.setenv("TWOSTREAM_CACHE_RAM_BYTES", str(2 * len(every) * per_map))
    HELD.clear()
    one = FeatureCache(dirs, every)
    assert one.in_memory
    other = {s: Path(str(d) + "-other") for s, d in dirs.items()}
    for s in dirs:
        for v in every:
            save_npy(feature_path(other[s], v.path), np.ones((T, C, H, H), np.float16))
    assert not FeatureCache(other, every).in_memory  # the first cache is alive: no room
    del one
    import gc

    gc.collect()
    assert FeatureCache(other, every).in_memory  # its maps were dropped for the new ones


def test_prefused_maps_are_exactly_what_the_head_fuses(maps):
    _, every, dirs = maps
    videos = [r.path for r in every]
    s, m = prefuse(dirs, "sum", videos), prefuse(dirs, "max", videos)
    assert read_cache_manifest(s)["dtype"] == "float32"
    assert read_cache_manifest(m)["dtype"] == "float16"
    both = FeatureCache(dirs, every)
    a, b, _ = both[list(range(len(every)))]
    fs, _, _ = FeatureCache({"fused": s}, every)[list(range(len(every)))]
    fm, _, _ = FeatureCache({"fused": m}, every)[list(range(len(every)))]
    assert torch.equal(fs, a + b) and torch.equal(fm, torch.maximum(a, b))


def test_heads_train_identically_reading_less(maps, tmp_path, monkeypatch):
    """Single-stream heads on one stream, float16 converted on the device and shared held
    maps give bit-identical runs to both streams converted to float32 on the host."""
    records, _, dirs = maps
    cfg = StudyConfig(data_root=str(tmp_path / "d"), device="cpu", convlstm_hidden=4,
                      convlstm_epochs=2, convlstm_batch_size=4, convlstm_lr=1e-2)  # fmt: skip

    def run(method, tag):
        hcfg = cfg.replace(fusion_layer="conv5_x", fusion_method=method, convlstm_kernel=3)
        return heads.train_head(hcfg, split=1, feature_dirs=dirs, records=records,
                                classes=CLASSES, run=tmp_path / f"{tag}-{method}")  # fmt: skip

    new = {m: run(m, "new") for m in ("sum", "spatial", "temporal")}
    HELD.clear()

    def old_caches(feature_dirs, recs, *, method, device=None, misalign=False,
                   control_seed=0, shuffle_steps=False, in_memory=None):  # fmt: skip
        return {p: FeatureCache(feature_dirs, r, misalign=misalign, control_seed=control_seed,
                                in_memory=in_memory) for p, r in recs.items()}  # fmt: skip

    monkeypatch.setattr(heads, "head_caches", old_caches)
    for m, res in new.items():
        old = run(m, "old")
        cols = [c for c in res["history"] if c.endswith(("loss", "top1", "top5"))]
        assert res["history"][cols].equals(old["history"][cols]), m
        assert np.array_equal(res["scores"], old["scores"]), m


# ----------------------------------------------------------------------------- resume


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)

    def features(self, x, taps):
        y = torch.relu(self.c(x))
        return {t: (y if t == "conv5_x" else y.mean((2, 3))) for t in taps}


class FakeVideos(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 + i)
        return torch.randn(3, 3, 16, 16, generator=g), i % 3


VIDEOS = [f"C{i % 3}/v_C{i % 3}_g{i:02d}_c01.avi" for i in range(11)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.npy"))}


def _extract_stream(monkeypatch, root: Path, sha: str, *, fail_after: int | None = None):
    """features.extract_stream on a fake network and data set; ``fail_after`` k maps
    written, the process 'dies' (an exception mid-extraction)."""
    monkeypatch.setattr(features, "load_stream", lambda ckpt: TinyNet())
    monkeypatch.setattr(features, "VideoSteps", lambda records, *a, **k: FakeVideos(len(records)))
    monkeypatch.setattr(features, "eval_transform", lambda cfg, m: None)
    monkeypatch.setattr(features.engine, "setup_device",
                        lambda cfg: (torch.device("cpu"), 0, 1))  # fmt: skip
    written = []
    real = save_npy  # the module's own (a previous call's wrapper is still patched in)

    def save(path, array):
        if fail_after is not None and len(written) >= fail_after:
            raise KeyboardInterrupt("killed")
        real(path, array)
        written.append(path)

    monkeypatch.setattr(features, "save_npy", save)
    dirs = {t: root / f"spatial-tiny-{t}-key" for t in ("conv5_x", "fc")}
    cfg = StudyConfig(data_root=str(root / "d"), device="cpu", num_workers=0)
    for d in dirs.values():
        clear_stale_cache(d, sha)  # what graph._run_features does first
    try:
        features.extract_stream(cfg, stream="spatial", records=[Rec(v, 0) for v in VIDEOS],
                                checkpoint=root / "ckpt.pt", dirs=dirs, batch_videos=2,
                                checkpoint_sha1=sha)  # fmt: skip
    except KeyboardInterrupt:
        pass
    return dirs, written


def test_killed_extraction_resumes_only_missing_videos(tmp_path, monkeypatch):
    whole, _ = _extract_stream(monkeypatch, tmp_path / "whole", "abc")
    root = tmp_path / "killed"
    dirs, written = _extract_stream(monkeypatch, root, "abc", fail_after=9)
    assert len(written) == 9
    m = read_cache_manifest(dirs["conv5_x"])
    assert m["checkpoint_sha1"] == "abc" and not m["complete"]  # the record made first
    done = len(_files(dirs["conv5_x"]))
    _, again = _extract_stream(monkeypatch, root, "abc")
    # only the rest: 2 taps x the videos not yet written (chunks of 2 recomputed whole)
    assert len(again) == 2 * len(VIDEOS) - 9 and done > 0
    assert _files(root) == _files(tmp_path / "whole")
    for tap in whole:
        assert read_cache_manifest(dirs[tap])["complete"]
    # another checkpoint's maps are removed, not resumed
    _, redo = _extract_stream(monkeypatch, root, "def")
    assert len(redo) == 2 * len(VIDEOS)


def test_run_features_keeps_same_checkpoint_and_clears_others(tmp_path, monkeypatch):
    folder = tmp_path / "spatial-tiny-conv5_x-key"
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"weights")
    sha = features.file_digest(ckpt)
    seen = []
    monkeypatch.setattr(graph, "output", lambda cfg, node: folder)
    monkeypatch.setattr(graph, "_stream_checkpoint", lambda cfg, s, k, *seed: ckpt)
    monkeypatch.setattr(graph, "feature_records", lambda cfg, k: [])
    monkeypatch.setattr(graph, "extract_stream",
                        lambda cfg, **kw: seen.append((kw["checkpoint_sha1"], _files(folder))))  # fmt: skip
    cfg = StudyConfig(data_root=str(tmp_path / "d"))
    save_npy(feature_path(folder, VIDEOS[0]), np.zeros(3, np.float16))
    graph._run_features(cfg, "spatial", 1, ["conv5_x"])  # no manifest: unknown origin
    assert seen[-1] == (sha, {})
    save_npy(feature_path(folder, VIDEOS[0]), np.zeros(3, np.float16))
    write_manifest(folder, VIDEOS, checkpoint_sha1=sha)
    graph._run_features(cfg, "spatial", 1, ["conv5_x"])  # same checkpoint: kept
    assert len(seen[-1][1]) == 1
    write_manifest(folder, VIDEOS, checkpoint_sha1="other")
    graph._run_features(cfg, "spatial", 1, ["conv5_x"])  # another checkpoint: removed
    assert seen[-1][1] == {} and not folder.exists()
