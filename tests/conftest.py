"""Shared fixtures.

``shared_data`` points at ../shared/data (20 real clips + the official split files) beside
the checkout; tests that need it skip with a reason in a user's clone, which lacks it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from twostream.core import threads

# One of PYTEST_XDIST_WORKER_COUNT sibling processes: cores / workers threads each, passive
# OpenMP waiting (inherited by every subprocess a test starts). See twostream.core.threads.
threads.configure_process(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TWOSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"needs {path} (the project's reference data beside the checkout); absent in a user's clone"
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def ucf_splits_dir(shared_data) -> Path:
    return _need(shared_data / "official_splits" / "ucfTrainTestlist")


@pytest.fixture(scope="session")
def hmdb_splits_dir(shared_data) -> Path:
    return _need(shared_data / "official_splits" / "testTrainMulti_7030_splits")


@pytest.fixture(scope="session")
def real_clips(shared_data) -> Path:
    return _need(shared_data / "real_clips")


@pytest.fixture(autouse=True)
def _isolated_results(tmp_path, monkeypatch):
    """Unit tests never write into the repository's results/ folder."""
    if "TWOSTREAM_RESULTS" not in os.environ:
        monkeypatch.setenv("TWOSTREAM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("TWOSTREAM_QUIET", "1")
