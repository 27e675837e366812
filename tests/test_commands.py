"""The inspection commands on a tiny trained study: ``twostream runs`` lists every run folder
with RunDir's status and the selection rule's epoch, ``twostream evaluate`` reproduces the
scores a stream and a head run wrote (and writes only into its own folder), and the stage
commands say which config they use and refuse a real data set without a params file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from twostream.cli.main import main
from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.pipeline import graph as stages
from twostream.train.rundir import RunDir

# 3 classes x 8 clips, 2 epochs of each stage: both streams, features and a head in ~10 s
TINY = dict(
    device="cpu", prep_workers=1, splits=[1], synth_classes=3, synth_clips_per_class=8,
    synth_groups=4, synth_frames=12, synth_width=48, synth_height=40, crop_size=32,
    input_size=32, num_segments=3, flow_length=2, stream_epochs=2, stream_batch_size=8,
    samples_per_video=1, val_fraction=0.34,
)  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cfg = StudyConfig.from_dict({**TINY, "data_root": str(root)})
    head = stages.head(cfg)
    runs = {s: RunDir(r) for s, r in stages.streams(cfg).items()}
    runs["head"] = RunDir(head["run_dir"])
    return cfg, runs


def _sets(cfg: StudyConfig) -> list[str]:
    out = []
    for k, v in {**TINY, "data_root": cfg.data_root}.items():
        out += ["--set", f"{k}={v}"]
    return out


# ----------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_runs_lists_status_selected_epoch_and_top1_with_n(study, tmp_path, capsys):
    cfg, runs = study
    # a copy of a finished run without results.json is partial; a bare folder is empty
    runs_dir = cfg.runs_dir
    partial = runs_dir / "temporal-split2-0000beef"
    shutil.copytree(runs["temporal"].path, partial)
    (partial / "results.json").unlink()
    (runs_dir / "spatial-split3-0000dead").mkdir()
    try:
        assert main(["runs", "--data-root", cfg.data_root, "--dataset", "synthetic", "--json"]) == 0
        rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
        spatial = rows[runs["spatial"].name]
        info = runs["spatial"].read_results()
        assert spatial["stage"] == "stream rgb" and spatial["split"] == 1
        assert spatial["status"] == "finished" and spatial["dataset"] == "synthetic"
        assert spatial["epoch"] == info["best_epoch"] and spatial["epochs"] == 2
        assert (spatial["val_top1"], spatial["val_n"]) == (info["val_top1"], info["val_n"])
        assert (spatial["test_top1"], spatial["test_n"]) == (info["top1"], info["n"])
        head = rows[runs["head"].name]
        assert head["stage"] == "head convlstm conv5_x/sum l1k3" and head["status"] == "finished"
        assert rows[runs["temporal"].name]["stage"] == "stream flow"
        p = rows[partial.name]
        assert (p["status"], p["stage"], p["split"]) == ("partial", "stream flow", 1)
        assert p["epoch"] == rows[runs["temporal"].name]["epoch"] and p["test_n"] is None
        e = rows["spatial-split3-0000dead"]
        assert (e["status"], e["stage"], e["split"], e["epoch"]) == ("empty", "stream rgb", 3, None)

        assert main(["runs", "--data-root", cfg.data_root]) == 0  # every data set, a table
        out = capsys.readouterr().out
        assert "5 run folder(s)" in out and "3 finished, 1 partial, 1 empty" in out
        assert f"{100 * info['val_top1']:.1f}% (n={info['val_n']})" in out
    finally:
        shutil.rmtree(partial)
        (runs_dir / "spatial-split3-0000dead").rmdir()


def test_runs_on_a_missing_root_is_one_line(tmp_path, capsys):
    assert main(["runs", "--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and "\n" not in err


# ----------------------------------------------------------------------------- evaluate


@pytest.mark.slow
@pytest.mark.parametrize("which", ["spatial", "temporal", "head"])
def test_evaluate_reproduces_the_scores_the_run_wrote(study, which, capsys):
    _, runs = study
    run = runs[which]
    before = {p.name: p.stat().st_mtime_ns for p in run.path.iterdir() if p.is_file()}
    assert main(["evaluate", "--run", str(run.path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    folder = run.path / "evaluate" / "1crop-3seg"
    target = RunDir(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    info = run.read_results()
    for part in ("val", "test"):
        mine, theirs = target.load_scores(part), run.load_scores(part)
        np.testing.assert_allclose(mine["scores"], theirs["scores"], atol=1e-5)
        assert (mine["labels"] == theirs["labels"]).all()
        assert (mine["videos"] == theirs["videos"]).all()
    assert metrics["test"]["top1"] == info["top1"] and metrics["test"]["n"] == info["n"]
    assert metrics["val"]["top1"] == info["val_top1"] and metrics["epoch"] == info["best_epoch"]
    t = metrics["test"]
    assert t["ci_low"] <= t["top1"] <= t["ci_high"]
    assert f"test top-1 {100 * t['top1']:.1f}% ({t['k']}/{t['n']}), 95% Wilson" in out
    # the run's own files are untouched
    assert {p.name: p.stat().st_mtime_ns for p in run.path.iterdir() if p.is_file()} == before


@pytest.mark.slow
def test_evaluate_other_settings_and_refusals(study, tmp_path, capsys):
    from twostream.train.evaluate import evaluate_run

    _, runs = study
    m = evaluate_run(runs["spatial"].path, crops=10, segments=5, split=2, device="cpu")
    assert m["out"] == runs["spatial"].path / "evaluate" / "split2-10crop-5seg"
    assert (m["crops"], m["segments"], m["split"], m["run_split"]) == (10, 5, 2, 1)
    assert m["test_videos_seen_in_training"] > 0  # split 2's test videos: split 1's training
    assert RunDir(m["out"]).load_scores("test")["scores"].shape[1] == 3
    with pytest.raises(UserError, match="run folder itself"):
        evaluate_run(runs["spatial"].path, out=runs["spatial"].path, device="cpu")
    with pytest.raises(UserError, match="holds a run"):
        evaluate_run(runs["spatial"].path, out=runs["temporal"].path, device="cpu")
    with pytest.raises(UserError, match="centre crop only"):
        evaluate_run(runs["head"].path, crops=10, device="cpu")
    with pytest.raises(UserError, match="num_segments=5"):
        evaluate_run(runs["head"].path, segments=5, device="cpu")
    with pytest.raises(UserError, match="not a run folder"):
        evaluate_run(tmp_path, device="cpu")


# ----------------------------------------------------------------------------- config source


def test_stage_commands_refuse_a_real_data_set_without_params(capsys):
    for argv in (["train-stream", "--stream", "rgb"], ["extract-features"], ["train-convlstm"],
                 ["prepare"]):  # fmt: skip
        for dataset in ("ucf101", "hmdb51"):
            assert main([*argv, "--set", f"dataset={dataset}"]) == 2, argv
            err = capsys.readouterr().err.strip()
            assert f"pass --params params/{dataset}.yaml" in err and "\n" not in err, err


def test_the_config_source_is_the_first_line(tmp_path, capsys):
    import argparse

    from twostream.core.config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    config_from_args(parser.parse_args(["--set", "seed=3"]))
    line = capsys.readouterr().out
    assert line.startswith("using the test preset (StudyConfig defaults: synthetic, data/test")
    assert "with --set seed" in line and "pass --params FILE" in line
    params = tmp_path / "u.yaml"
    params.write_text(f"dataset: ucf101\ndata_root: {tmp_path}\n")
    cfg = config_from_args(parser.parse_args(["--params", str(params)]))
    assert cfg.dataset == "ucf101"  # a params file may name a real data set
    assert capsys.readouterr().out.startswith(f"using {params} (ucf101, data in {tmp_path}")


@pytest.mark.slow
def test_a_stage_command_without_params_says_so_first(study, capsys):
    cfg, runs = study
    assert main(["train-convlstm", *_sets(cfg)]) == 0  # the study's head: reused
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("using the test preset (StudyConfig defaults: synthetic, ")
    assert any(str(runs["head"].path) in ln for ln in lines)
