"""The machine's state, not the user's input: read-only folders and a full disk.

Each case runs the ``twostream`` command as a user would and checks the exact first line
of stderr and the exit status (2), and that nothing the user has is changed.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests.test_prepare import TINY_FLOW, tree_hashes, write_video
from twostream.cli.main import main
from twostream.core.errors import machine_state_message
from twostream.prepare import run as pp
from twostream.prepare import state as ps

# /sys refuses new entries even to root on Linux (EPERM / EACCES): a folder no chmod can fake.
UNWRITABLE = Path("/sys/twostream-test")


def _unwritable_here() -> bool:
    try:
        UNWRITABLE.mkdir()
    except OSError:
        return True
    UNWRITABLE.rmdir()
    return False


needs_unwritable = pytest.mark.skipif(
    not _unwritable_here(), reason="needs a folder the OS refuses to create (/sys on Linux)"
)


@pytest.mark.parametrize(
    "code, expected",
    [
        (errno.EROFS, "/d/x is on a read-only file system: point --out / data_root at a "
                      "writable folder [EROFS]"),
        (errno.ENOSPC, "/d/x could not be written: no space left on the device; free space and "
                       "rerun (finished work is kept and resumed) or move data_root to a "
                       "larger disk [ENOSPC]"),
        (errno.ENOENT, None),  # a missing file is not the machine's state: stays a traceback
    ],
)  # fmt: skip
def test_machine_state_messages(code, expected):
    assert machine_state_message(OSError(code, "strerror", "/d/x")) == expected


@needs_unwritable
@pytest.mark.parametrize("command", [
    ["synth", "--out", str(UNWRITABLE / "data")],
    ["train-stream", "--stream", "rgb", "--params", "params/test.yaml",
     "--set", f"data_root={UNWRITABLE}"],
])  # fmt: skip
def test_an_unwritable_out_or_data_root_is_one_line(command, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"twostream {command[0]}: error: {UNWRITABLE}")
    assert "(operation not permitted)" in err[0] or "(permission denied)" in err[0]


def _prepared(tmp_path) -> tuple[Path, Path, Path, list[str]]:
    vids = tmp_path / "videos"
    for i, cls in enumerate(("Jump", "Run")):
        for g in (1, 2):
            write_video(vids / cls / f"v_{cls}_g0{g}_c01.avi", frames=4, seed=2 * i + g)
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Jump\n2 Run\n")
    (splits / "trainlist01.txt").write_text("Jump/v_Jump_g01_c01.avi 1\nRun/v_Run_g01_c01.avi 2\n")
    (splits / "testlist01.txt").write_text("Jump/v_Jump_g02_c01.avi\nRun/v_Run_g02_c01.avi\n")
    out = tmp_path / "rawframes"
    argv = ["prepare", "--videos", str(vids), "--out", str(out), "--splits", str(splits),
            "--workers", "1", "--short-side", "24", "--quiet"]  # fmt: skip
    for k, v in TINY_FLOW.items():
        argv += ["--flow-param", f"{k}={v}"]
    assert main(argv) == 0
    return vids, splits, out, argv


def test_prepare_on_complete_read_only_rawframes_reads_and_writes_nothing(
    tmp_path, capsys, monkeypatch
):
    _, _, out, argv = _prepared(tmp_path)
    before = tree_hashes(out)
    lock = out / ps.STATE_DIR / "lock"
    lock_mtime = lock.stat().st_mtime_ns if lock.exists() else None
    capsys.readouterr()
    # a read-only mount refuses even root; chmod would not, so the probe answers as one would
    monkeypatch.setattr(pp, "can_write", lambda path: False)
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (f"prepare: {out} is read-only; every video is already prepared and "
                      "verified: nothing to write")  # fmt: skip
    assert tree_hashes(out) == before
    lock = out / ps.STATE_DIR / "lock"
    assert not lock.exists() or lock.stat().st_mtime_ns == lock_mtime  # never taken anew


def test_prepare_on_incomplete_read_only_rawframes_is_one_line(tmp_path, capsys, monkeypatch):
    _, _, out, argv = _prepared(tmp_path)
    (out / "Run" / "v_Run_g02_c01" / "img_00002.jpg").unlink()
    capsys.readouterr()
    monkeypatch.setattr(pp, "can_write", lambda path: False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"twostream prepare: error: {out} is read-only and 1 of 4 video(s) still need "
        "extracting, e.g. Run/v_Run_g02_c01.avi (img_00002.jpg is missing): make it writable "
        "or prepare into a writable --out"
    ]


def test_prepare_with_a_full_disk_at_the_lists_says_what_was_done(tmp_path, capsys, monkeypatch):
    _, _, out, argv = _prepared(tmp_path)
    (out / "Jump" / "v_Jump_g01_c01" / "img_00001.jpg").write_bytes(b"")  # one to redo
    capsys.readouterr()

    write = ps.atomic_write_text

    def full(path, text, *a, **k):  # the disk fills up after the videos, at the lists
        if str(path).endswith("_rawframes.txt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write(path, text, *a, **k)

    monkeypatch.setattr(ps, "atomic_write_text", full)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "twostream prepare: error: 4 of 4 video(s) prepared, 0 failed, but "
        "ucf101_*_rawframes.txt was not written: "
    ), err
    assert "no space left on the device" in err[-1]
    assert err[-1].endswith("the prepared videos are kept: rerun prepare once it is fixed")
    assert (out / "Jump" / "v_Jump_g01_c01" / "img_00001.jpg").stat().st_size > 0
