"""benchmarks/check_rehearsal.py: the plan's predictions against a rehearsal's measurements
pass within 2x and fail when a stage is 3x off, either way."""

import copy
import importlib.util
import json

import pytest

from twostream.core.config import StudyConfig
from twostream.core.runtime import project_root

ROOT = project_root()
_spec = importlib.util.spec_from_file_location(
    "check_rehearsal", ROOT / "benchmarks" / "check_rehearsal.py"
)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

COMMITTED = ROOT / "benchmarks" / "results" / "rehearsal-cpu.json"
STAGES = {  # the check's row -> the rehearsal stage it sums
    "prepare": "prepare (short side 256, paper TV-L1)",
    "stream spatial (killed + resumed)": "stream spatial, resumed",
    "stream temporal": "stream temporal (20-channel flow)",
    "features conv5_x": "features conv5_x",
    "ConvLSTM head (2 gloo processes)": "ConvLSTM conv5_x sum 2x5x5 h300, 2 gloo processes",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A rehearsal whose every stage measured exactly what the plan predicts (the rehearsal's
    params at the published UCF101 sizes: no data needed), its JSON the flow calibration."""
    committed = json.loads(COMMITTED.read_text())
    cfg = StudyConfig.from_yaml(ROOT / "params" / "ucf101-paper.yaml",
                                data_root="/nonexistent/data").replace(
        **{k: tuple(v) if isinstance(v, list) else v
           for k, v in committed["overrides"].items()})  # fmt: skip
    reh = copy.deepcopy(committed)
    reh["calibration"]["torchrun_s"] = 20.0
    path = tmp_path_factory.mktemp("rehearsal") / "rehearsal.json"
    path.write_text(json.dumps(reh))
    for s in reh["stages"]:
        if s["stage"] == "stream spatial, killed":
            s["wall_s"] = 0.0
    rows = check.predictions(reh, cfg, path)
    for r in rows:
        stage = next(s for s in reh["stages"] if s["stage"] == STAGES[r["stage"]])
        stage["wall_s"] = r["predicted_s"]
    return reh, cfg, path


def _verdicts(reh, cfg, path):
    return {r["stage"]: check.within_2x(r["ratio"]) for r in check.predictions(reh, cfg, path)}


@pytest.mark.parametrize("factor", [3.0, 1 / 3])
def test_a_stage_three_times_off_fails_and_the_others_pass(setup, factor):
    reh, cfg, path = setup
    assert all(_verdicts(reh, cfg, path).values())
    for row, name in STAGES.items():
        off = copy.deepcopy(reh)
        stage = next(s for s in off["stages"] if s["stage"] == name)
        stage["wall_s"] *= factor
        verdicts = _verdicts(off, cfg, path)
        assert verdicts[row] is False, (row, factor)
        assert all(v for k, v in verdicts.items() if k != row)


def test_within_2x_both_ways():
    assert check.within_2x(0.5) and check.within_2x(2.0) and check.within_2x(1.0)
    assert not check.within_2x(0.33) and not check.within_2x(3.0) and not check.within_2x(None)


def test_the_head_under_torchrun_is_priced_with_its_processes_start_up(setup):
    reh, cfg, path = setup
    head = lambda rows: next(r for r in rows if r["stage"].startswith("ConvLSTM"))  # noqa: E731
    base = head(check.predictions(reh, cfg, path))["predicted_s"]
    more = copy.deepcopy(reh)
    more["calibration"]["torchrun_s"] = 50.0
    assert head(check.predictions(more, cfg, path))["predicted_s"] == pytest.approx(
        base + 30, abs=0.2
    )
