import json

import pytest

from twostream.config import StudyConfig, load_params, stage_key
from twostream.errors import UserError
from twostream.utils import atomic_write_text, project_root


def test_smoke_params_equal_defaults():
    # nbval runs the notebooks with their defaults; make reproduce with params/smoke.yaml.
    # Both must be the same run.
    assert (
        StudyConfig.from_dict(load_params(project_root() / "params" / "smoke.yaml"))
        == StudyConfig()
    )


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_full_scale_params_load(name):
    cfg = StudyConfig.from_yaml(project_root() / "params" / f"{name}.yaml")
    assert cfg.dataset == name and cfg.backbone == "resnet101" and cfg.input_size == 224


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


def test_stage_key_tracks_only_named_fields():
    a, b = StudyConfig(), StudyConfig(seed=1)
    assert stage_key(a, ["backbone"]) == stage_key(b, ["backbone"])
    assert stage_key(a, ["seed"]) != stage_key(b, ["seed"])


def test_atomic_write_leaves_no_temp_on_error(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    from twostream.utils import atomic_path

    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
