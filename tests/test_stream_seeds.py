"""Stream seeds (``stream_seeds``): seed 0 keeps every key and run folder; another seed is a
node, a key and a folder of its own that ``run_names.parse`` reads back; head replicate i
reads the features of stream seed i; the streams table and Table 3 draw the stream seeds
(seeds column, spread over seeds, NaN with one seed)."""

from __future__ import annotations

import numpy as np
import pytest

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.core.runtime import project_root
from twostream.core.stats import correct_of
from twostream.pipeline import graph as stages
from twostream.pipeline import run_names
from twostream.study import plan as study_plan
from twostream.study import tables as study

# The keys of the test preset (StudyConfig()) computed on the parent commit c3bc3b0, before
# stream seeds existed: `stages.output(StudyConfig(), node).name` for each node below.
BEFORE = {
    stages.stream_node("spatial", 1): "spatial-split1-becfb0e1",
    stages.stream_node("temporal", 2): "temporal-split2-ec673f3c",
    stages.features_node("temporal", 1, "conv5_x"): "temporal-resnet10_w32-conv5_x-split1-97db8434",
    stages.features_node("spatial", 3, "fc"): "spatial-resnet10_w32-fc-split3-83257819",
    stages.head_node(1, "conv5_x", "sum", 1, 3): "convlstm-split1-conv5_x-sum-l1k3-c311c952",
    stages.head_node(2, "conv3_x", "conv", 2, 5, seed=1): "convlstm-split2-conv3_x-conv-l2k5-s1-8ac9e553",
    stages.head_node(1, "conv5_x", "sum", 1, 3, train_state="carried"):
        "convlstm-split1-conv5_x-sum-l1k3-carried-edc818c3",
}  # fmt: skip


def test_stream_seed_0_keeps_every_key_and_run_folder():
    cfg = StudyConfig()
    for node, name in BEFORE.items():
        assert stages.output(cfg, node).name == name, node
    # the embedded study's stream runs, as its executed notebook 02 names them
    smoke = StudyConfig.from_yaml(project_root() / "params" / "smoke.yaml")
    executed = (project_root() / "results/smoke/executed/02_stream_finetuning.ipynb").read_text()
    for stream, name in (("spatial", "spatial-split1-4e42d53d"),
                         ("temporal", "temporal-split1-5e3cbcc1")):  # fmt: skip
        assert name in executed
        assert stages.output(smoke, stages.stream_node(stream, 1)).name == name
        assert stages.stream_node(stream, 1, seed=0) == stages.stream_node(stream, 1)
    head = stages.head_node(1, "conv5_x", "sum", 1, 3)
    assert stages.head_node(1, "conv5_x", "sum", 1, 3, stream_seed=0) == head


def test_a_nonzero_stream_seed_is_its_own_node_key_and_folder():
    cfg = StudyConfig()
    s0, s2 = stages.stream_node("temporal", 1), stages.stream_node("temporal", 1, seed=2)
    assert stages.key(cfg, s2) != stages.key(cfg, s0)
    name = stages.output(cfg, s2).name
    assert name == f"temporal-split1-s2-{stages.key(cfg, s2)}"
    p = run_names.parse(name)
    assert (p["prefix"], p["split"], p["seed"], p["stream_seed"]) == ("temporal", 1, 2, 2)
    assert p["parts"][-1] == stages.key(cfg, s2)
    assert run_names.parse(stages.output(cfg, s0).name)["seed"] == 0

    f0, f2 = (stages.features_node("temporal", 1, "conv5_x", seed=s) for s in (0, 2))
    assert stages.needs(f2) == (s2,) and stages.needs(f0) == (s0,)
    assert stages.key(cfg, f2) != stages.key(cfg, f0)
    assert stages.output(cfg, f2).name.endswith(f"-split1-s2-{stages.key(cfg, f2)}")

    h = stages.head_node(1, "conv5_x", "sum", 1, 3, seed=1, stream_seed=2)
    plain = stages.head_node(1, "conv5_x", "sum", 1, 3, seed=1)
    assert stages.key(cfg, h) != stages.key(cfg, plain)
    name = stages.output(cfg, h).name
    assert name == f"convlstm-split1-conv5_x-sum-l1k3-s1-ss2-{stages.key(cfg, h)}"
    p = run_names.parse(name)
    assert (p["prefix"], p["seed"], p["stream_seed"]) == ("convlstm", 1, 2)
    assert p["parts"][:2] == ["conv5_x", "sum"] and p["parts"][-1] == stages.key(cfg, h)
    assert run_names.parse(stages.output(cfg, plain).name)["stream_seed"] == 0
    assert "stream seed 2" in str(h) and "stream seed 2" in str(s2)


def test_a_replicate_head_reads_its_own_stream_seeds_features():
    cfg = StudyConfig(head_seeds=(0, 1, 2), stream_seeds=(0, 1, 2))
    assert cfg.replicates() == ((0, 0), (1, 1), (2, 2))
    for ss, h in cfg.replicates():
        node = stages.head_node(1, "conv5_x", "sum", 1, 3, seed=h, stream_seed=ss)
        assert stages.needs(node) == tuple(
            stages.features_node(s, 1, "conv5_x", seed=ss) for s in ("spatial", "temporal")
        )
        assert cfg.stream_seed_for(h) == ss
    one = StudyConfig(head_seeds=(0, 1, 2), stream_seeds=(5,))
    assert one.replicates() == ((5, 0), (5, 1), (5, 2))
    # the plan lists one stream run and feature cache per stream seed, each head once per
    # replicate on its own stream seed's features
    nodes = [n for _, n in study_plan.study_nodes(cfg)]
    streams = [n for n in nodes if n.stage == "stream" and n.get("stream") == "spatial"]
    assert len(streams) == 3 * len({cfg.split, *cfg.splits})
    heads = [n for n in nodes if n.stage == "head"]
    assert {(dict(n.args).get("stream_seed", 0), n.get("seed")) for n in heads} == set(
        cfg.replicates()
    )
    needed = {f for n in heads for f in stages.needs(n)}
    assert needed <= set(nodes)  # every feature cache a head reads is planned


def test_config_refuses_stream_seeds_of_another_length():
    StudyConfig(head_seeds=(0, 1, 2), stream_seeds=(0,))
    StudyConfig(head_seeds=(0, 1, 2), stream_seeds=(0, 1, 2))
    with pytest.raises(UserError, match="stream_seeds must hold one seed or as many as head_seeds"):
        StudyConfig(head_seeds=(0, 1, 2), stream_seeds=(0, 1))
    with pytest.raises(UserError, match="stream_seeds"):
        StudyConfig(stream_seeds=())
    with pytest.raises(UserError, match="stream_seeds"):
        StudyConfig(stream_seeds=(-1,))


def test_full_presets_reseed_the_streams_the_paper_presets_do_not():
    for name, seeds in (("ucf101", (0, 1, 2)), ("hmdb51", (0, 1, 2)), ("ucf101-paper", (0,)),
                        ("hmdb51-paper", (0,)), ("smoke", (0,)), ("test", (0,))):  # fmt: skip
        cfg = StudyConfig.from_yaml(project_root() / "params" / f"{name}.yaml")
        assert cfg.stream_seeds == seeds, name


# ----------------------------------------------------------------------------- tables

K, N = 4, 24


def _fake_run(rng, acc: float, part_videos: dict) -> dict:
    """A finished stream run's fields the tables read: per-part scores, labels, videos."""
    run = {"num_classes": K, "best_epoch": 2, "history": [1, 2], "weights": "none"}
    for part, videos in part_videos.items():
        labels = np.arange(len(videos)) % K
        scores = rng.random((len(videos), K)) * 0.5
        hit = rng.random(len(videos)) < acc
        scores[np.arange(len(videos)), np.where(hit, labels, (labels + 1) % K)] += 1.0
        run[part] = {"scores": scores / scores.sum(1, keepdims=True), "labels": labels,
                     "videos": np.asarray(videos)}  # fmt: skip
    return run


def _videos(part: str, n: int) -> list[str]:
    return [f"v_C{i % K}_g{10 + i // 6:02d}_c{i % 3:02d}_{part}" for i in range(n)]


def test_streams_table_and_late_fusion_draw_the_stream_seeds():
    rng = np.random.default_rng(0)
    vids = {"test": _videos("t", N), "val": _videos("v", N // 2)}
    sp = [_fake_run(rng, a, vids) for a in (0.4, 0.7)]
    tp = [_fake_run(rng, a, vids) for a in (0.5, 0.9)]
    two = study.streams_table({"spatial": sp, "temporal": tp}, split=1)
    assert two["seeds"].tolist() == [2, 2]
    assert np.isfinite(two["top1_std"]).all() and (two["top1_std"] > 0).all()
    accs = [correct_of(r["test"]["scores"], r["test"]["labels"]).mean() for r in sp]
    assert two.loc[0, "top1"] == pytest.approx(np.mean(accs))
    assert two.loc[0, "top1_std"] == pytest.approx(np.std(accs, ddof=1))
    one = study.streams_table({"spatial": sp[0], "temporal": [tp[0]]}, split=1)
    assert one["seeds"].tolist() == [1, 1] and one["top1_std"].isna().all()
    # late fusion per replicate: the fusion of that replicate's own two streams
    lates = study.late_fusions(sp, tp)
    for f, a, b in zip(lates, sp, tp, strict=True):
        alone = study.late_fusion(a["val"], b["val"], a["test"], b["test"], K)
        np.testing.assert_array_equal(f["scores"], alone["scores"])
    c = study.late_correct(lates)
    assert c.shape == (2, N)
    assert np.isfinite(study.spread(c.mean(axis=1))) and np.isnan(study.spread(c[:1].mean(axis=1)))


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return StudyConfig(
        data_root=str(root), device="cpu", prep_workers=1, splits=(1,),
        table1_layers=("conv5_x",), table1_methods=("sum",), table2_layers=(1,),
        table2_kernels=(3,), head_seeds=(0, 1), stream_seeds=(0, 1),
    )  # fmt: skip


@pytest.mark.slow
def test_two_stream_seeds_end_to_end(tiny):
    seeded = study.load_stream_seeds(tiny, 1)
    for stream, runs in seeded.items():
        assert [run_names.parse(r["run_dir"].name)["seed"] for r in runs] == [0, 1], stream
        # same train / val split (cfg.seed's), other training: other test scores
        np.testing.assert_array_equal(runs[0]["val"]["videos"], runs[1]["val"]["videos"])
        assert not np.array_equal(runs[0]["test"]["scores"], runs[1]["test"]["scores"])
    table = study.streams_table(seeded, split=1)
    assert table["seeds"].tolist() == [2, 2] and np.isfinite(table["top1_std"]).all()

    final = study.final_comparison(tiny)
    rows = final["per_split"].set_index("method")
    for method in ("spatial only", "temporal only", "late score fusion", "two-stream ConvLSTM"):
        assert rows.loc[method, "seeds"] == 2, method
        assert np.isfinite(rows.loc[method, "top1_std"]), method
    assert (final["pairs"]["a_seeds"] == 2).all() and (final["pairs"]["b_seeds"] == 2).all()
    # each head replicate read its own stream seed's features
    for ss, h in tiny.replicates():
        head = stages.head(tiny, split=1, seed=h, stream_seed=ss)
        assert run_names.parse(head["run_dir"].name)["stream_seed"] == ss
        feats = stages.output(tiny, stages.features_node("spatial", 1, "conv5_x", seed=ss))
        assert str(feats) in {str(v) for v in head["feature_dirs"].values()}

    single = tiny.replace(head_seeds=(0,), stream_seeds=(0,))  # the seed-0 runs, cached
    rows = study.final_comparison(single)["per_split"]
    assert (rows["seeds"] == 1).all() and rows["top1_std"].isna().all()
