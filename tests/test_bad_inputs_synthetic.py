"""Issue 21: a user's own files beside the synthetic set's videos (notes.avi, .DS_Store) never
make the set look stale, and replacing the set removes only the files it wrote, by name."""

from __future__ import annotations

from twostream.synthetic.writer import SynthParams, ensure_synthetic, is_current

SMALL = SynthParams(classes=2, clips_per_class=4, groups=4, frames=3, width=32, height=32)


def _snapshot(d):
    return {p.relative_to(d).as_posix(): p.stat().st_mtime_ns for p in (d / "videos").rglob("*")
            if p.is_file()}  # fmt: skip


def test_user_files_in_the_videos_folder_do_not_trigger_a_rewrite(tmp_path):
    d = tmp_path / "synthetic"
    ensure_synthetic(d, SMALL)
    (d / "rawframes").mkdir()
    (d / "rawframes" / "kept.txt").write_text("derived cache")
    user = {d / "videos" / "notes.avi": b"my notes", d / "videos" / ".DS_Store": b"\0\1",
            d / "videos" / "TranslateRight" / ".DS_Store": b"\0", d / "videos" / "README.txt": b"hi"}  # fmt: skip
    for path, data in user.items():
        path.write_bytes(data)
    before = _snapshot(d)
    assert is_current(d, SMALL)
    ensure_synthetic(d, SMALL)
    assert _snapshot(d) == before  # nothing rewritten
    assert (d / "rawframes" / "kept.txt").is_file()  # and no cache wiped


def test_replacing_the_set_removes_only_its_own_files(tmp_path):
    d = tmp_path / "synthetic"
    ensure_synthetic(d, SMALL)
    old_videos = sorted(p.relative_to(d) for p in (d / "videos").rglob("*.avi"))
    user = {d / "videos" / "notes.avi": b"my notes", d / "videos" / ".DS_Store": b"\0\1",
            d / "videos" / "TranslateRight" / "mine.avi": b"x", d / "splits" / "my.txt": b"y"}  # fmt: skip
    for path, data in user.items():
        path.write_bytes(data)
    other = SynthParams(classes=2, clips_per_class=4, groups=4, frames=3, width=32, height=32,
                        seed=1)  # fmt: skip
    ensure_synthetic(d, other)
    assert is_current(d, other)
    for path, data in user.items():
        assert path.read_bytes() == data, path
    new_videos = sorted(p.relative_to(d) for p in (d / "videos").rglob("v_*.avi"))
    assert new_videos == old_videos  # same names (same classes and clips), rewritten
    assert not list(d.glob(".synth-tmp-*"))
