import dataclasses
import json

import pytest

from twostream.core.config import StudyConfig, load_params
from twostream.core.errors import UserError
from twostream.core.runtime import atomic_write_text, project_root

PARAMS = project_root() / "params"
FIELDS = [f.name for f in dataclasses.fields(StudyConfig)]


def test_test_preset_is_the_defaults_and_lists_every_field():
    # nbval runs the notebooks with their parameters cells = StudyConfig's defaults; the
    # preset file says the same, field by field, so it can be read and run on its own.
    data = load_params(PARAMS / "test.yaml")
    assert list(data) == FIELDS
    assert StudyConfig.from_dict(data) == StudyConfig()


@pytest.mark.parametrize(
    "name",
    [
        "smoke",
        "smoke-confirm",
        "smoke-reseeded",
        "ucf101",
        "hmdb51",
        "ucf101-paper",
        "hmdb51-paper",
    ],
)
def test_study_presets_set_every_field(name):
    # A study run must never depend on a code default (the defaults are the test preset).
    data = load_params(PARAMS / f"{name}.yaml")
    cfg = StudyConfig.from_dict(data)
    needed = [f for f in FIELDS if cfg.dataset == "synthetic" or not f.startswith("synth_")]
    assert not [f for f in needed if f not in data], f"params/{name}.yaml lacks fields"


def test_confirmation_preset_is_smoke_with_a_fresh_seed():
    # params/smoke-confirm.yaml: the smoke study on a synthetic seed the design was not
    # tuned on, in a data folder of its own (the same folder would regenerate smoke's set)
    smoke, confirm = (load_params(PARAMS / f"{n}.yaml") for n in ("smoke", "smoke-confirm"))
    differ = {k for k in FIELDS if smoke.get(k) != confirm.get(k)}
    assert differ == {"synth_seed", "data_root"}
    assert confirm["synth_seed"] != smoke["synth_seed"] == 0
    assert StudyConfig.from_dict(confirm).dataset_dir != StudyConfig.from_dict(smoke).dataset_dir


def test_replication_preset_is_smoke_with_other_training_seeds_only():
    # params/smoke-reseeded.yaml: same data, split and everything else; other stream and head
    # seeds (the replication section of smoke's REPORT compares the two runs' verdicts)
    smoke, again = (load_params(PARAMS / f"{n}.yaml") for n in ("smoke", "smoke-reseeded"))
    differ = {k for k in FIELDS if smoke.get(k) != again.get(k)}
    assert differ == {"stream_seeds", "head_seeds"}
    assert not set(again["stream_seeds"]) & set(smoke["stream_seeds"])
    assert not set(again["head_seeds"]) & set(smoke["head_seeds"])


def test_smoke_is_not_the_test_preset():
    smoke = StudyConfig.from_yaml(PARAMS / "smoke.yaml")
    assert smoke != StudyConfig() and smoke.data_root != StudyConfig().data_root


@pytest.mark.parametrize("name", ["ucf101", "hmdb51", "ucf101-paper", "hmdb51-paper"])
def test_full_scale_params_load(name):
    cfg = StudyConfig.from_yaml(project_root() / "params" / f"{name}.yaml")
    assert (
        cfg.dataset == name.split("-")[0] and cfg.backbone == "resnet101" and cfg.input_size == 224
    )


def test_unknown_key_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'backbone'"):
        StudyConfig.from_dict({"backbon": "resnet18"})


def test_bad_values_fail_clearly():
    with pytest.raises(UserError, match="split must be 1, 2 or 3"):
        StudyConfig(split=4)
    with pytest.raises(UserError, match="expected an integer"):
        StudyConfig.from_dict({"synth_classes": "eight"})


def test_frozen_and_roundtrip():
    cfg = StudyConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]
    again = StudyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_atomic_write_leaves_no_temp_on_error(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    from twostream.core.runtime import atomic_path

    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
