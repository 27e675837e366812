"""The executed notebooks of a reproduce run as a reader sees them: every check of
``tools/notebook_check.py`` (size <= 1 MB, <= 40 lines per cell output, no frozen progress
bar, the result first, no duplicate figure, figure dpi, papermill's cell collapsed) on
``results/<params>/executed`` for every params file that has one. Skips when no run is there
(a fresh clone before ``make reproduce``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "notebook_check.py"
_spec = importlib.util.spec_from_file_location("notebook_check", TOOL)
nc = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("notebook_check", nc)
_spec.loader.exec_module(nc)

EXECUTED = sorted(
    p for p in (ROOT / "results").glob("*/executed") if any(p.glob("[0-9][0-9]_*.ipynb"))
)


@pytest.mark.skipif(not EXECUTED, reason="no results/<params>/executed/ notebooks (run "
                    "`twostream reproduce --params FILE` first)")  # fmt: skip
@pytest.mark.parametrize("folder", EXECUTED, ids=[p.parent.name for p in EXECUTED])
def test_executed_notebooks_within_budget(folder):
    failures = []
    for path in nc.find_notebooks([str(folder)]):
        report = nc.check_notebook(path)
        failures += [
            f"{path.name}: {c['name']} = {c['value']} (limit {c['limit']}) {c['detail']}"
            for c in report["checks"]
            if not c["passed"]
        ]
    assert not failures, "\n".join(failures)
