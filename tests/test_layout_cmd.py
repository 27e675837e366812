"""``twostream layout`` on small fake unpacked downloads of both data sets: a good tree ends
up in the project's layout and the split reader accepts it; a broken one (missing video,
extra class, misplaced split folder, HMDB51 class archives still packed) is refused with a
message naming what is wrong, before anything moves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from twostream.cli.main import main
from twostream.core.errors import UserError
from twostream.data.official import layout
from twostream.data.splits import list_videos, load_classes, load_split
from twostream.data.summary import check_videos

UCF_CLASSES = ["ApplyEyeMakeup", "Hammering", "HandstandPushups"]


def _avi(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00AVI ")  # a name the walker counts, not a real video


def fake_ucf(root: Path) -> Path:
    """UCF-101/<Class>/v_*.avi and ucfTrainTestlist/ (CRLF), as the official archives unpack."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)).encode()
    )
    train, test = [], []
    for cls in UCF_CLASSES:
        stem = "HandStandPushups" if cls == "HandstandPushups" else cls  # the official quirk
        for g in (1, 2, 8, 9):
            name = f"{cls}/v_{stem}_g{g:02d}_c01.avi"
            _avi(root / "UCF-101" / name)
            (test if g < 8 else train).append(name)
    for s in (1, 2, 3):
        labelled = [f"{v} {UCF_CLASSES.index(v.split('/')[0]) + 1}" for v in train]
        (lists / f"trainlist0{s}.txt").write_bytes("\r\n".join(labelled).encode() + b"\r\n")
        (lists / f"testlist0{s}.txt").write_bytes("\r\n".join(test).encode() + b"\r\n")
    return root


HMDB_CLASSES = ["brush_hair", "climb_stairs", "sword"]


def fake_hmdb(root: Path, *, packed: bool = False) -> Path:
    """hmdb51_org/<class>/<video>.avi (or <class>.rar still packed) and
    testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt."""
    lists = root / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    for cls in HMDB_CLASSES:
        names = [f"Film_{i}_{cls}_f_cm_np1_fr_med_{i}.avi" for i in range(3)]
        names.append(f"Odd (take #2) [x]_{cls}_u_nm_np1_ba_goo_0.avi")  # HMDB51's characters
        if packed:
            (root / "hmdb51_org" / f"{cls}.rar").parent.mkdir(parents=True, exist_ok=True)
            (root / "hmdb51_org" / f"{cls}.rar").write_bytes(b"Rar!")
        else:
            for n in names:
                _avi(root / "hmdb51_org" / cls / n)
        for s in (1, 2, 3):
            ids = ["1", "1", "2", "0"]
            lines = "".join(f"{n} {i} \n" for n, i in zip(names, ids, strict=True))
            (lists / f"{cls}_test_split{s}.txt").write_text(lines)
    return root


def _accepted(dataset: str, target: Path) -> None:
    splits, videos = target / "splits", target / "videos"
    train, test = load_split(dataset, splits, 1)
    assert train and test
    assert check_videos(list_videos(dataset, splits), videos).ok
    assert not (target / "videos.partial").exists()
    assert (
        main(["splits", "--dataset", dataset, "--splits", str(splits), "--videos", str(videos)])
        == 0
    )


@pytest.mark.parametrize("mode", ["copy", "move", "link"])
def test_a_good_ucf101_tree_ends_up_in_place(tmp_path, mode, capsys):
    src = fake_ucf(tmp_path / "download")
    data = tmp_path / "data"
    assert main(["layout", "--dataset", "ucf101", "--from", str(src), "--data-root", str(data),
                 f"--{mode}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "3 classes and 12 videos listed, 12 video files found" in out and "problems: none" in out
    target = data / "ucf101"
    _accepted("ucf101", target)
    assert load_classes("ucf101", target / "splits") == UCF_CLASSES
    placed = target / "videos" / "HandstandPushups" / "v_HandStandPushups_g01_c01.avi"
    original = src / "UCF-101" / "HandstandPushups" / "v_HandStandPushups_g01_c01.avi"
    assert placed.is_file() and original.exists() == (mode != "move")
    if mode == "link":
        assert os.stat(placed).st_ino == os.stat(original).st_ino
    # a second run finds it in place and changes nothing
    assert (
        main(["layout", "--dataset", "ucf101", "--from", str(src), "--data-root", str(data)]) == 0
    )


def test_a_good_hmdb51_tree_ends_up_in_place(tmp_path):
    src = fake_hmdb(tmp_path / "download")
    report, target = layout("hmdb51", src, data_root=tmp_path / "data", mode="copy")
    assert report.ok and (report.classes, report.listed) == (3, 12)  # unused clips included
    _accepted("hmdb51", target)
    assert (target / "videos" / "sword" / "Odd (take #2) [x]_sword_u_nm_np1_ba_goo_0.avi").is_file()


def test_the_splits_folder_can_be_given_directly(tmp_path):
    src = fake_ucf(tmp_path / "download")
    elsewhere = tmp_path / "lists"
    (src / "ucfTrainTestlist").rename(elsewhere)
    with pytest.raises(UserError, match="pass --splits DIR"):
        layout("ucf101", src, data_root=tmp_path / "data")
    report, target = layout("ucf101", src, data_root=tmp_path / "data", splits=elsewhere)
    assert report.ok
    _accepted("ucf101", target)


def test_a_missing_video_is_named_and_nothing_moves(tmp_path, capsys):
    src = fake_ucf(tmp_path / "download")
    gone = src / "UCF-101" / "Hammering" / "v_Hammering_g08_c01.avi"
    gone.unlink()
    data = tmp_path / "data"
    with pytest.raises(
        UserError, match="1 listed video.s. missing: Hammering/v_Hammering_g08_c01.avi"
    ):
        layout("ucf101", src, data_root=data, mode="move")
    assert (src / "UCF-101" / "Hammering" / "v_Hammering_g01_c01.avi").is_file()  # not moved
    assert not (data / "ucf101" / "videos").exists()
    # --check reports file by file, truncated to --limit with a count
    for v in sorted((src / "UCF-101" / "ApplyEyeMakeup").iterdir()):
        v.unlink()
    args = ["layout", "--dataset", "ucf101", "--from", str(src), "--data-root", str(data)]
    assert main([*args, "--check", "--limit", "2"]) == 1
    out = capsys.readouterr().out
    assert "5 listed video(s) missing:" in out and "... and 3 more" in out
    assert not (data / "ucf101").exists()  # --check wrote nothing


def test_an_extra_class_and_an_unlisted_video_are_refused(tmp_path):
    src = fake_ucf(tmp_path / "download")
    _avi(src / "UCF-101" / "Knitting" / "v_Knitting_g01_c01.avi")
    _avi(src / "UCF-101" / "Hammering" / "v_Hammering_g30_c01.avi")
    with pytest.raises(UserError) as err:
        layout("ucf101", src, data_root=tmp_path / "data")
    msg = str(err.value)
    assert "no class of the split files: Knitting" in msg
    assert "no split file lists: Hammering/v_Hammering_g30_c01.avi" in msg


def test_a_misplaced_split_folder_is_refused(tmp_path):
    src = fake_ucf(tmp_path / "download")
    (src / "ucfTrainTestlist").rename(src / "UCF-101" / "ucfTrainTestlist")  # unzipped in UCF-101/
    with pytest.raises(UserError, match="split folder inside the videos folder"):
        layout("ucf101", src, data_root=tmp_path / "data")


def test_hmdb51_class_archives_still_packed_say_how_to_unpack(tmp_path):
    src = fake_hmdb(tmp_path / "download", packed=True)
    with pytest.raises(UserError, match=r"still packed.*unrar x.*7z x.*brush_hair\.rar"):
        layout("hmdb51", src, data_root=tmp_path / "data")
    # the split archive not unpacked: named with its command
    lists = src / "testTrainMulti_7030_splits"
    for f in lists.iterdir():
        f.unlink()
    lists.rmdir()
    (src / "test_train_splits.rar").write_bytes(b"Rar!")
    with pytest.raises(UserError, match="unrar x test_train_splits.rar"):
        layout("hmdb51", src, data_root=tmp_path / "data")


def test_an_occupied_target_that_differs_is_refused(tmp_path):
    src = fake_ucf(tmp_path / "download")
    _avi(tmp_path / "data" / "ucf101" / "videos" / "Other" / "x.avi")
    with pytest.raises(UserError, match="exists, is not empty"):
        layout("ucf101", src, data_root=tmp_path / "data")


@pytest.mark.shared
def test_the_official_ucf101_lists_against_a_full_fake_tree(tmp_path, ucf_splits_dir):
    """Every one of the 13,320 videos the official lists name, as empty files: all placed
    (moved), and one absent is named."""
    src = tmp_path / "download" / "UCF-101"
    for r in list_videos("ucf101", ucf_splits_dir):
        (src / r.path).parent.mkdir(parents=True, exist_ok=True)
        (src / r.path).touch()
    (src / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi").unlink()
    with pytest.raises(
        UserError, match="1 listed video.s. missing: ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    ):
        layout("ucf101", src.parent, data_root=tmp_path / "data", splits=ucf_splits_dir)
    (src / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi").touch()
    report, target = layout("ucf101", src.parent, data_root=tmp_path / "data", mode="move",
                            splits=ucf_splits_dir)  # fmt: skip
    assert (report.classes, report.listed, report.found) == (101, 13320, 13320)
    assert check_videos(list_videos("ucf101", target / "splits"), target / "videos").ok
