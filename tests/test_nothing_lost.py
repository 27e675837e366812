"""Issue 19, "nothing crashes, nothing is lost": checkpoints through torch.compile / DDP
wrappers, the compile backend knob, flow keyed by what changes the bytes, a finished video
kept until its replacement is whole, and 0-based (Slurm) shards."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch

from tests.test_prepare import run_prepare, tree_hashes, write_video
from twostream.core import checkpoint_io
from twostream.core.config import COMPILE_BACKENDS, StudyConfig, stage_fields
from twostream.core.errors import UserError
from twostream.core.params_io import to_jsonable
from twostream.models.streams import build_stream, load_stream
from twostream.pipeline import graph
from twostream.prepare import run as pp
from twostream.prepare import state as ps
from twostream.prepare import worker
from twostream.prepare.options import PrepareOptions
from twostream.train import checkpoint, stream_trainer
from twostream.train.checkpoint import load_checkpoint, save_checkpoint

# ----------------------------------------------------------------------------- checkpoints


def _net(seed: int):
    torch.manual_seed(seed)
    return build_stream(modality="rgb", backbone="resnet10_w32", num_classes=3)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


WRAPS = {
    "compiled": lambda m: torch.compile(m, backend="eager"),
    "ddp-like": torch.nn.DataParallel,  # the same "module." prefix as DDP, without a group
    "compiled(ddp-like)": lambda m: torch.compile(torch.nn.DataParallel(m), backend="eager"),
    "ddp-like(compiled)": lambda m: torch.nn.DataParallel(torch.compile(m, backend="eager")),
}


@pytest.mark.parametrize("wrap", list(WRAPS), ids=str)
def test_checkpoint_round_trips_through_compile_and_ddp_wrappers(tmp_path, wrap):
    trained, fresh = _net(0), _net(1)
    assert not _same_weights(trained, fresh)
    # a wrapped (compiled) run saves; an uncompiled model loads (evaluation, features)
    path = save_checkpoint(tmp_path / "a.pt", model=WRAPS[wrap](trained), epoch=0, config={})
    saved = torch.load(path, weights_only=False)["model"]
    assert not [k for k in saved if "_orig_mod." in k or k.startswith("module.")]
    load_checkpoint(path, model=fresh, restore_rng=False)
    assert _same_weights(trained, fresh)
    # and the reverse: an uncompiled run's checkpoint resumes into a wrapped model
    other = _net(2)
    path = save_checkpoint(tmp_path / "b.pt", model=other, epoch=0, config={})
    target = _net(3)
    load_checkpoint(path, model=WRAPS[wrap](target), restore_rng=False)
    assert _same_weights(other, target)
    assert checkpoint._unwrap(WRAPS[wrap](target)) is target  # what the GPU suite probes


def test_checkpoints_written_with_wrapper_prefixes_still_load(tmp_path):
    """Files of earlier releases hold ``_orig_mod.`` (or ``_orig_mod.module.``) keys."""
    net = _net(0)
    wrapped = torch.compile(torch.nn.DataParallel(net), backend="eager")
    state = wrapped.state_dict()
    assert next(iter(state)).startswith("_orig_mod.module.")
    path = tmp_path / "old.pt"
    torch.save({"model": state, "epoch": 0, "extra": {"arch": net.arch}}, path)
    fresh = _net(1)
    load_checkpoint(path, model=fresh, restore_rng=False)
    assert _same_weights(net, fresh)
    assert _same_weights(net, load_stream(path))  # models' reader strips them too


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a whole zip"], ids=["empty", "cut"])
def test_load_stream_refuses_an_empty_or_truncated_file_in_one_line(tmp_path, content):
    path = tmp_path / "checkpoint_best.pt"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_stream(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "train it again" in msg
    assert ("empty" if not content else "truncated or corrupt") in msg
    with pytest.raises(UserError, match="does not exist"):
        load_stream(tmp_path / "nope.pt")


def test_strip_wrapper_prefixes_keeps_inner_module_names():
    state = {"_orig_mod.module.body.x": 1, "body._orig_mod.y": 2, "head.module.z": 3}
    assert checkpoint_io.strip_wrapper_prefixes(state) == {
        "body.x": 1,
        "body.y": 2,
        "head.module.z": 3,  # a submodule called "module" is not a wrapper
    }


# ----------------------------------------------------------------------------- compile backend


def test_compile_backend_is_a_checked_knob_used_by_prepare_model(monkeypatch):
    assert StudyConfig().compile_backend == "inductor"
    assert COMPILE_BACKENDS == ("inductor", "aot_eager", "eager", "cudagraphs")
    for backend in COMPILE_BACKENDS:
        assert StudyConfig(compile_backend=backend).compile_backend == backend
    with pytest.raises(UserError, match="compile_backend must be one of inductor, aot_eager"):
        StudyConfig.from_dict({"compile_backend": "tensorrt"})
    assert "compile_backend" not in {f for s in ("stream", "features") for f in stage_fields(s)}
    seen = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: seen.append(kw) or m)
    stream_trainer.prepare_model(torch.nn.Linear(2, 2), torch.device("cpu"), compile=True,
                                 backend="aot_eager")  # fmt: skip
    assert seen == [{"backend": "aot_eager"}]


# ----------------------------------------------------------------------------- flow keys


def _old_prepare_key(opts: PrepareOptions) -> str:
    """The marker key as releases before this change computed it (the device as given)."""
    payload = {"format": 1, "params": dataclasses.asdict(opts), "tvl1": opts.tvl1_params()}
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _old_stage_key(cfg: StudyConfig) -> str:
    d = to_jsonable(cfg)
    payload = {"stage": "rawframes", "fields": {f: d[f] for f in stage_fields("rawframes")},
               "args": [], "needs": [graph.key(cfg, graph.Node("dataset"))]}  # fmt: skip
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]


def test_flow_keys_hold_the_device_type_only():
    smoke = StudyConfig.from_yaml("params/smoke.yaml")
    cpu = PrepareOptions(flow_backend="torch", flow_device="cpu")
    keys = {d: PrepareOptions(flow_backend="torch", flow_device=d).key()
            for d in ("cpu", "cuda", "cuda:0", "cuda:1")}  # fmt: skip
    assert keys["cuda"] == keys["cuda:0"] == keys["cuda:1"]
    assert keys["cpu"] != keys["cuda"]  # CPU and GPU TV-L1 may round differently
    assert keys["cpu"] == _old_prepare_key(cpu)  # existing rawframes stay valid
    cuda = PrepareOptions(flow_backend="torch", flow_device="cuda")
    assert keys["cuda"] == _old_prepare_key(cuda)
    # the pipeline's stage keys (and so every stream run's key) likewise
    node = graph.Node("rawframes")
    assert graph.key(smoke, node) == _old_stage_key(smoke)  # the smoke study's keys unchanged
    gpu = {d: smoke.replace(flow_backend="torch", flow_device=d) for d in ("cuda", "cuda:1")}
    assert graph.key(gpu["cuda"], node) == graph.key(gpu["cuda:1"], node)
    assert graph.key(gpu["cuda"], node) == _old_stage_key(gpu["cuda"])
    stream = graph.stream_node("spatial", 1)
    assert graph.key(gpu["cuda"], stream) == graph.key(gpu["cuda:1"], stream)
    with pytest.raises(UserError, match="not cpu, cuda or cuda:N"):
        PrepareOptions(flow_backend="torch", flow_device="gpu1")


# ----------------------------------------------------------------------------- finished flow


@pytest.fixture
def two_videos(tmp_path):
    vids = tmp_path / "v"
    write_video(vids / "A" / "a.avi", frames=4)
    write_video(vids / "A" / "b.avi", frames=5, seed=1)
    return vids


def test_a_missing_flow_device_fails_before_anything_is_touched(two_videos, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fresh = tmp_path / "fresh"
    with pytest.raises(UserError) as err:
        run_prepare(two_videos, fresh, flow_backend="torch", flow_device="cuda")
    msg = str(err.value)
    assert "\n" not in msg and "needs CUDA" in msg and "nothing was written" in msg
    assert not fresh.exists()
    out = tmp_path / "out"
    assert run_prepare(two_videos, out).ok == 2
    before = tree_hashes(out)
    with pytest.raises(UserError, match="needs CUDA"):
        run_prepare(two_videos, out, flow_backend="torch", flow_device="cuda:1")
    assert tree_hashes(out) == before


def test_a_failed_redo_leaves_the_finished_video_intact(two_videos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run_prepare(two_videos, out, workers=1).ok == 2
    before = tree_hashes(out)
    frames = {p: h for p, h in before.items() if p.startswith("A/")}
    assert len(frames) == 4 + 3 * 2 + 5 + 4 * 2

    def broken(*args, **kwargs):
        raise RuntimeError("flow exploded")

    monkeypatch.setattr(worker, "tvl1_batch", broken)
    s = run_prepare(two_videos, out, workers=1, short_side=16)  # another key, failing
    assert (s.ok, s.failed) == (0, 2) and "flow exploded" in s.failed_videos[0][1]
    after = tree_hashes(out)
    assert {p: h for p, h in after.items() if p.startswith("A/")} == frames  # byte-identical
    assert not [p for p in (out / "A").iterdir() if p.name.startswith(".")]  # no partial left
    monkeypatch.undo()
    s = run_prepare(two_videos, out, workers=1)  # the old parameters: reused, not redone
    assert (s.reused, s.ok, s.frames) == (2, 2, 0)
    assert [r["status"] for r in ps.manifest_records(out)] == ["ok", "ok"]
    assert tree_hashes(out) == before
    s = run_prepare(two_videos, out, workers=1, short_side=16)  # the new ones, now working
    assert (s.reused, s.ok) == (0, 2)


def test_a_killed_redo_leaves_the_old_frames_and_its_partial_folder_is_cleared(
    two_videos, tmp_path
):
    out = tmp_path / "out"
    run_prepare(two_videos, out, workers=1)
    before = tree_hashes(out)
    partial = ps.partial_folder(out / "A" / "a")
    partial.mkdir()
    (partial / "img_00001.jpg").write_bytes(b"half")  # a worker killed mid-video
    s = run_prepare(two_videos, out, workers=1)
    assert s.reused == 2 and not partial.exists() and tree_hashes(out) == before


# ----------------------------------------------------------------------------- shards


def test_shards_count_from_zero_and_read_slurm(monkeypatch):
    assert pp.parse_shard("0/16") == (0, 16) and pp.parse_shard("15/16") == (15, 16)
    assert pp.parse_shard(None) == (0, 1)
    with pytest.raises(UserError) as err:
        pp.parse_shard("16/16")
    assert str(err.value) == (
        "--shard 16/16: need 0 <= I < N (shards count from 0: 16 parts are 0/16 .. 15/16, "
        "as Slurm's --array=0-15)"
    )
    for name in ("ID", "COUNT", "MIN", "MAX"):
        monkeypatch.delenv(f"SLURM_ARRAY_TASK_{name}", raising=False)
    with pytest.raises(UserError, match="SLURM_ARRAY_TASK_ID is not set"):
        pp.parse_shard("slurm")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "16")
    assert pp.parse_shard("slurm") == (0, 16)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "15")
    assert pp.parse_shard("slurm") == (15, 16)
    monkeypatch.delenv("SLURM_ARRAY_TASK_COUNT")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")  # --array=1-16
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "16")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "16")
    assert pp.parse_shard("slurm") == (15, 16)


def test_a_shard_reports_only_its_own_videos(tmp_path):
    vids = tmp_path / "videos"
    names = ["Jump/v_Jump_g01_c01.avi", "Jump/v_Jump_g02_c01.avi", "Run/v_Run_g01_c01.avi",
             "Run/v_Run_g02_c01.avi"]  # fmt: skip
    for seed, name in enumerate(names):
        write_video(vids / name, frames=4, seed=seed)
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Jump\n2 Run\n")
    (splits / "trainlist01.txt").write_text(
        "Jump/v_Jump_g01_c01.avi 1\nRun/v_Run_g01_c01.avi 2\nRun/v_Run_g03_c01.avi 2\n"
    )  # g03 is listed but not on disk
    (splits / "testlist01.txt").write_text("Jump/v_Jump_g02_c01.avi\nRun/v_Run_g02_c01.avi\n")
    out = tmp_path / "out"
    first = run_prepare(vids, out, splits_dir=splits, shard="0/2", workers=1)
    assert (first.selected, first.ok, first.missing_from_disk) == (2, 2, 1)
    assert "1 video(s) listed in the splits are not on disk" in str(first)
    assert "shard 0/2" in str(first)
    second = run_prepare(vids, out, splits_dir=splits, shard="1/2", workers=1)
    assert (second.selected, second.ok, second.missing_from_disk) == (2, 2, 0)
    whole = run_prepare(vids, out, splits_dir=splits, workers=1)
    assert (whole.reused, whole.missing_from_disk) == (4, 1)


def test_a_knob_at_its_omit_default_value_leaves_every_key_unchanged():
    """A knob added with ``key=omit_default(d)`` must not move existing caches while it holds
    ``d``, and must enter the key once it holds anything else (both directions)."""
    from twostream.core import config as config_mod

    smoke = StudyConfig.from_yaml("params/smoke.yaml")
    stream = graph.stream_node("spatial", 1)
    before = graph.key(smoke, stream)
    keep = config_mod.omit_default(smoke.lr_spatial)
    assert keep(smoke.lr_spatial) == config_mod.OMIT and keep(0.5) == 0.5
    meta = dict(config_mod.STUDY_FIELDS["lr_spatial"].metadata)
    try:  # lr_spatial temporarily keyed the omit_default way
        config_mod.STUDY_FIELDS["lr_spatial"].metadata = {**meta, "key": keep}
        graph.key.cache_clear()
        assert graph.key(smoke, stream) != before  # the field itself is gone from the key ...
        changed = smoke.replace(lr_spatial=0.5)
        assert graph.key(changed, stream) != graph.key(smoke, stream)  # ... and back when set
    finally:
        config_mod.STUDY_FIELDS["lr_spatial"].metadata = meta
        graph.key.cache_clear()
    assert graph.key(smoke, stream) == before
