"""Official split parsing (UCF101 / HMDB51 pitfalls), validation split, videos-vs-lists check."""

from __future__ import annotations

import collections
import re

import pytest

from twostream.cli.main import main
from twostream.core.errors import UserError
from twostream.data import summary as dataset_report
from twostream.data.splits import (
    VideoRecord,
    hmdb51_group,
    list_videos,
    load_classes,
    load_split,
    train_val_split,
)
from twostream.data.summary import check_videos

# ----------------------------------------------------------------------------- official UCF101


@pytest.mark.parametrize(
    "split, n_train, n_test, first, last",
    [(1, 9537, 3783, 1, 7), (2, 9586, 3734, 8, 14), (3, 9624, 3696, 15, 21)],
)
def test_ucf101_official_counts_and_groups(ucf_splits_dir, split, n_train, n_test, first, last):
    train, test = load_split("ucf101", ucf_splits_dir, split)
    assert (len(train), len(test)) == (n_train, n_test)
    test_groups = {r.group for r in test}
    assert test_groups == {f"g{g:02d}" for g in range(first, last + 1)}
    assert not test_groups & {r.group for r in train}
    assert len({r.path for r in train + test}) == 13320
    assert {r.label for r in train} == {r.label for r in test} == set(range(101))


def test_ucf101_labels_come_from_classind(ucf_splits_dir):
    assert b"\r\n" in (ucf_splits_dir / "trainlist01.txt").read_bytes()  # CRLF is really there
    classes = load_classes("ucf101", ucf_splits_dir)
    assert len(classes) == 101 and classes[0] == "ApplyEyeMakeup" and classes[-1] == "YoYo"
    # classInd is ordered case-insensitively: a plain sort would swap these pairs
    assert classes.index("Hammering") == 34 and classes.index("HammerThrow") == 35
    assert classes.index("JumpingJack") == 46 and classes.index("JumpRope") == 47
    assert sorted(classes) != classes
    train, test = load_split("ucf101", ucf_splits_dir, 1)
    by_path = {r.path: r for r in train + test}
    assert by_path["Hammering/v_Hammering_g01_c01.avi"].label == 34
    assert by_path["HammerThrow/v_HammerThrow_g01_c01.avi"].label == 35
    assert by_path["JumpRope/v_JumpRope_g01_c01.avi"].label == 47


def test_ucf101_handstand_pushups_path_keeps_folder_name(ucf_splits_dir):
    train, test = load_split("ucf101", ucf_splits_dir, 1)
    hs = [r for r in train + test if "handstandpushups" in r.path.lower()]
    assert hs and all(r.path.startswith("HandstandPushups/v_HandStandPushups_g") for r in hs)
    label = load_classes("ucf101", ucf_splits_dir).index("HandstandPushups")
    assert {r.label for r in hs} == {label} == {36}
    # the test list has no labels: they must come from the folder, not from the file name
    assert any(r.path == "HandstandPushups/v_HandStandPushups_g01_c01.avi" for r in test)


def test_ucf101_validation_split_is_group_disjoint(ucf_splits_dir):
    train, _ = load_split("ucf101", ucf_splits_dir, 1)
    tr, val = train_val_split(train, val_fraction=0.2, seed=0)
    assert len(tr) + len(val) == len(train)
    assert not {r.group for r in tr} & {r.group for r in val}
    assert 0.15 < len(val) / len(train) < 0.3
    assert {r.label for r in val} == set(range(101))  # stratified: every class is validated
    assert train_val_split(train, val_fraction=0.2, seed=0) == (tr, val)
    assert train_val_split(train, val_fraction=0.2, seed=1)[1] != val


# ----------------------------------------------------------------------------- official HMDB51


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_official_counts(hmdb_splits_dir, split):
    train, test = load_split("hmdb51", hmdb_splits_dir, split)
    assert (len(train), len(test)) == (3570, 1530)
    per_class_train = collections.Counter(r.label for r in train)
    per_class_test = collections.Counter(r.label for r in test)
    assert set(per_class_train.values()) == {70} and len(per_class_train) == 51
    assert set(per_class_test.values()) == {30} and len(per_class_test) == 51
    # within a class, the official splits keep source videos apart (our group rule agrees)
    for label in range(51):
        g_tr = {r.group for r in train if r.label == label}
        g_te = {r.group for r in test if r.label == label}
        assert not g_tr & g_te


def test_hmdb51_classes_names_and_all_videos(hmdb_splits_dir):
    classes = load_classes("hmdb51", hmdb_splits_dir)
    assert len(classes) == 51 and classes == sorted(classes)
    assert classes[0] == "brush_hair" and "climb_stairs" in classes and "ride_horse" in classes
    assert len(list(hmdb_splits_dir.iterdir())) == 153
    videos = list_videos("hmdb51", hmdb_splits_dir)
    assert len(videos) == 6766  # id 0 (unused in a split) videos are part of the data set
    special = [r for r in videos if re.search(r"[()!#\[\]&+;~@]", r.path)]
    assert len(special) == 536
    train, test = load_split("hmdb51", hmdb_splits_dir, 1)
    by_path = {r.path: r for r in train + test}
    name = (
        "brush_hair/Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!_brush_hair_h_cm_np1_fr_goo_0.avi"
    )
    assert by_path[name].label == 0
    assert by_path[name].group == "Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!"
    assert not any(p.endswith(" ") or "\r" in p for p in by_path)
    climb = classes.index("climb_stairs")
    assert all(r.path.startswith("climb_stairs/") for r in train if r.label == climb)


def test_hmdb51_validation_split(hmdb_splits_dir):
    train, _ = load_split("hmdb51", hmdb_splits_dir, 1)
    tr, val = train_val_split(train, val_fraction=0.2, seed=3)
    assert not {r.group for r in tr} & {r.group for r in val}
    counts = collections.Counter(r.label for r in val)
    assert len(counts) == 51 and all(8 <= n <= 30 for n in counts.values())  # 70 * 0.2 = 14


def test_hmdb51_group_rule():
    assert hmdb51_group("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair") == "April_09"
    # the class name itself contains underscores and the title contains the class words
    assert (
        hmdb51_group("Beginner_Boxing_Lessons_climb_stairs_l_cm_np1_ba_med_2.avi", "climb_stairs")
        == "Beginner_Boxing_Lessons"
    )
    assert hmdb51_group("v_ZoomIn_g03_c02.avi", "ZoomIn") == "g03"  # synthetic HMDB format
    assert hmdb51_group("my_clip_12.avi", "run") == "my_clip"


# ----------------------------------------------------------------------------- hand-made fixtures


def write(path, text: str, *, crlf: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
    return path


def make_ucf(tmp_path, *, classind=None, train1=None, test1=None):
    d = tmp_path / "ucf"
    # case-insensitive order as in the real classInd: sorting would put "Bx" first
    write(d / "classInd.txt", classind or "1 aa\n2 Bx\n3 HandstandPushups\n")
    write(
        d / "trainlist01.txt",
        train1
        or (
            "aa/v_aa_g02_c01.avi 1 \n"
            "Bx/v_Bx_g02_c01.avi 2\n"
            "HandstandPushups/v_HandStandPushups_g03_c01.avi 3\n\n"
        ),
    )
    write(
        d / "testlist01.txt",
        test1 or "aa/v_aa_g01_c01.avi\nHandstandPushups/v_HandStandPushups_g01_c02.avi  \n",
    )
    return d


def test_ucf_fixture_parses_with_crlf_and_trailing_spaces(tmp_path):
    d = make_ucf(tmp_path)
    assert load_classes("ucf101", d) == ["aa", "Bx", "HandstandPushups"]
    train, test = load_split("ucf101", d, 1)
    assert train == [
        VideoRecord("aa/v_aa_g02_c01.avi", 0, "g02"),
        VideoRecord("Bx/v_Bx_g02_c01.avi", 1, "g02"),
        VideoRecord("HandstandPushups/v_HandStandPushups_g03_c01.avi", 2, "g03"),
    ]
    assert test == [
        VideoRecord("aa/v_aa_g01_c01.avi", 0, "g01"),
        VideoRecord("HandstandPushups/v_HandStandPushups_g01_c02.avi", 2, "g01"),
    ]
    assert test[1].stem == "v_HandStandPushups_g01_c02" and test[1].class_name == "HandstandPushups"


@pytest.mark.parametrize(
    "kwargs, file, line, needle",
    [
        ({"classind": "1 aa\n2 Bx extra\n"}, "classInd.txt", 2, "expected '<index> <ClassName>'"),
        ({"classind": "1 aa\n3 Bx\n"}, "classInd.txt", 2, "expected 2"),
        ({"classind": "1 aa\n2 aa\n"}, "classInd.txt", 2, "already listed on line 1"),
        (
            {"train1": "aa/v_aa_g02_c01.avi\n"},
            "trainlist01.txt",
            1,
            "expected '<Class>/<video>.avi <label>'",
        ),
        (
            {"train1": "aa/v_aa_g02_c01.avi 1\nBx/v_Bx_g02_c01.avi x\n"},
            "trainlist01.txt",
            2,
            "not a number",
        ),
        ({"train1": "aa/v_aa_g02_c01.avi 2\n"}, "trainlist01.txt", 1, "disagrees with"),
        ({"train1": "v_aa_g02_c01.avi 1\n"}, "trainlist01.txt", 1, "expected"),
        (
            {"train1": "aa/v_aa_g02_c01.avi 1\nCc/v_Cc_g02_c01.avi 1\n"},
            "trainlist01.txt",
            2,
            "unknown class 'Cc'",
        ),
        (
            {"test1": "handstandpushups/v_HandStandPushups_g01_c02.avi\n"},
            "testlist01.txt",
            1,
            "did you mean 'HandstandPushups'",
        ),
        (
            {"train1": "aa/v_aa_g02_c01.avi 1\n\naa/v_aa_g02_c01.avi 1\n"},
            "trainlist01.txt",
            3,
            "duplicate video",
        ),
        ({"test1": "Bx/v_Bx_g02_c01.avi\n"}, "testlist01.txt", 1, "line 2 of"),
    ],
)
def test_ucf_malformed_files_name_file_and_line(tmp_path, kwargs, file, line, needle):
    d = make_ucf(tmp_path, **kwargs)
    with pytest.raises(UserError) as err:
        load_split("ucf101", d, 1)
    msg = str(err.value)
    assert f"{file}, line {line}:" in msg and needle in msg
    assert "\n" not in msg


def test_ucf_missing_files_say_what_to_do(tmp_path):
    d = make_ucf(tmp_path)
    with pytest.raises(UserError, match=r"trainlist02\.txt: split file not found; download"):
        load_split("ucf101", d, 2)
    (d / "classInd.txt").unlink()
    with pytest.raises(UserError, match=r"classInd\.txt: split file not found"):
        load_classes("ucf101", d)
    with pytest.raises(UserError, match="does not exist"):
        load_split("ucf101", tmp_path / "nowhere", 1)
    with pytest.raises(UserError, match="split must be 1, 2 or 3"):
        load_split("ucf101", d, 4)
    with pytest.raises(UserError, match="did you mean 'ucf101'"):
        load_classes("ucf100", d)


def make_hmdb(tmp_path, files: dict[str, str]):
    d = tmp_path / "hmdb"
    for name, text in files.items():
        write(d / name, text, crlf=False)
    return d


HMDB_OK = {
    # class names with underscores; names with ( ) ! # [ ] & + ; ~ @; trailing spaces; id 0
    "climb_stairs_test_split1.txt": (
        "Film_(1)_climb_stairs_f_cm_np1_fr_med_0.avi 1 \n"
        "Film_(1)_climb_stairs_f_cm_np1_fr_med_1.avi 0 \n"
        "Other!#[x]&+;~@_climb_stairs_f_nm_np1_ba_bad_0.avi 2 \n"
    ),
    "brush_hair_test_split1.txt": "Hair_brush_hair_h_cm_np1_fr_goo_0.avi 2 \n",
}


def test_hmdb_fixture_parses(tmp_path):
    d = make_hmdb(tmp_path, HMDB_OK)
    assert load_classes("hmdb51", d) == ["brush_hair", "climb_stairs"]
    train, test = load_split("hmdb51", d, 1)
    assert train == [
        VideoRecord("climb_stairs/Film_(1)_climb_stairs_f_cm_np1_fr_med_0.avi", 1, "Film_(1)")
    ]
    assert test == [
        VideoRecord("brush_hair/Hair_brush_hair_h_cm_np1_fr_goo_0.avi", 0, "Hair"),
        VideoRecord(
            "climb_stairs/Other!#[x]&+;~@_climb_stairs_f_nm_np1_ba_bad_0.avi", 1, "Other!#[x]&+;~@"
        ),
    ]


@pytest.mark.parametrize(
    "change, file, line, needle",
    [
        (
            {"brush_hair_test_split1.txt": "a_brush_hair_h_cm_np1_fr_goo_0.avi 3 \n"},
            "brush_hair_test_split1.txt",
            1,
            "id 0 (unused)",
        ),
        (
            {"brush_hair_test_split1.txt": "x.avi 1\na_brush_hair_h_cm_np1_fr_goo_0.avi\n"},
            "brush_hair_test_split1.txt",
            2,
            "expected '<video>.avi <id>'",
        ),
        (
            {"brush_hair_test_split1.txt": "Film_(1)_climb_stairs_f_cm_np1_fr_med_0.avi 1 \n"},
            "climb_stairs_test_split1.txt",
            1,
            "duplicate video",
        ),
        (
            {"brush_hair_test_split1.txt": "x/y.avi 1\n"},
            "brush_hair_test_split1.txt",
            1,
            "contains '/'",
        ),
    ],
)
def test_hmdb_malformed_files_name_file_and_line(tmp_path, change, file, line, needle):
    d = make_hmdb(tmp_path, {**HMDB_OK, **change})
    with pytest.raises(UserError) as err:
        load_split("hmdb51", d, 1)
    assert f"{file}, line {line}:" in str(err.value) and needle in str(err.value)


def test_hmdb_missing_files(tmp_path):
    d = make_hmdb(tmp_path, {**HMDB_OK, "brush_hair_test_split2.txt": "a.avi 1 \n"})
    with pytest.raises(UserError, match=r"climb_stairs_test_split2\.txt: split file not found"):
        load_split("hmdb51", d, 2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no HMDB51 split files"):
        load_classes("hmdb51", empty)


# ----------------------------------------------------------------------------- validation split


def test_train_val_split_hand_checked():
    # class 0: groups a (2 clips), b (2), c (1); class 1: groups a (2), d (3)
    recs = [
        VideoRecord("A/1", 0, "a"), VideoRecord("A/2", 0, "a"), VideoRecord("A/3", 0, "b"),
        VideoRecord("A/4", 0, "b"), VideoRecord("A/5", 0, "c"), VideoRecord("B/1", 1, "a"),
        VideoRecord("B/2", 1, "a"), VideoRecord("B/3", 1, "d"), VideoRecord("B/4", 1, "d"),
        VideoRecord("B/5", 1, "d"),
    ]  # fmt: skip
    for seed in range(20):
        tr, val = train_val_split(recs, val_fraction=0.4, seed=seed)
        assert sorted(tr + val, key=lambda r: r.path) == sorted(recs, key=lambda r: r.path)
        assert not {r.group for r in tr} & {r.group for r in val}
        assert {r.label for r in tr} == {0, 1}  # no class loses all its training videos
        assert val and [r for r in recs if r in val] == val  # input order kept
    assert train_val_split(recs, val_fraction=0.0, seed=0) == (recs, [])
    with pytest.raises(UserError, match="val_fraction"):
        train_val_split(recs, val_fraction=1.0, seed=0)
    # without groups every video is its own group: plain stratified 50% here
    solo = [VideoRecord(f"C/{i}", i % 2, None) for i in range(8)]
    _, val = train_val_split(solo, val_fraction=0.5, seed=0)
    assert collections.Counter(r.label for r in val) == {0: 2, 1: 2}


# ----------------------------------------------------------------------------- videos vs lists


def test_check_videos_reports_missing_and_unlisted(tmp_path):
    videos = tmp_path / "videos"
    for rel in ["aa/v_aa_g01_c01.avi", "aa/[odd] (1)!.avi", "Bx/extra.mp4", "Bx/notes.txt",
                "Bx/.v_x.avi.tmp", "Bx/.hidden.avi"]:  # fmt: skip
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        (videos / rel).write_bytes(b"x")
    records = [VideoRecord("aa/v_aa_g01_c01.avi", 0), VideoRecord("aa/[odd] (1)!.avi", 0)]
    report = check_videos((records, [VideoRecord("Bx/gone.avi", 1)]), videos)
    assert report.missing == ["Bx/gone.avi"]
    assert report.unlisted == ["Bx/extra.mp4"]  # not the .txt, not hidden/temporary files
    assert (report.listed, report.found, report.ok) == (3, 3, False)
    assert "1 missing, 1 unlisted" in report.summary()
    assert check_videos(records + ["Bx/extra.mp4"], videos).ok
    with pytest.raises(UserError, match="does not exist"):
        check_videos(records, tmp_path / "none")


def test_splits_cli(tmp_path, capsys):
    d = make_ucf(tmp_path)
    assert main(["splits", "--dataset", "ucf101", "--splits", str(d)]) == 2  # no split 2 files
    assert "trainlist02.txt" in capsys.readouterr().err
    for s in (2, 3):
        (d / f"trainlist0{s}.txt").write_bytes((d / "trainlist01.txt").read_bytes())
        (d / f"testlist0{s}.txt").write_bytes((d / "testlist01.txt").read_bytes())
    assert main(["splits", "--dataset", "ucf101", "--splits", str(d)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1\s+3\s+2\s+3", out)  # split 1: 3 train, 2 test, 3 classes
    videos = tmp_path / "videos"
    (videos / "aa").mkdir(parents=True)
    (videos / "aa" / "v_aa_g01_c01.avi").write_bytes(b"x")
    (videos / "aa" / "stray.avi").write_bytes(b"x")
    assert main(["splits", "--dataset", "ucf101", "--splits", str(d), "--videos", str(videos)]) == 1
    out = capsys.readouterr().out
    assert "4 missing, 1 unlisted" in out and "missing: Bx/v_Bx_g02_c01.avi" in out


def test_splits_cli_on_official_lists(ucf_splits_dir, capsys):
    assert main(["splits", "--dataset", "ucf101", "--splits", str(ucf_splits_dir)]) == 0
    out = capsys.readouterr().out
    assert "g01-g07" in out and "g08-g14" in out and "g15-g21" in out and "9537" in out


def test_summaries(tmp_path):
    d = make_ucf(tmp_path)
    for s in (2, 3):
        (d / f"trainlist0{s}.txt").write_bytes((d / "trainlist01.txt").read_bytes())
        (d / f"testlist0{s}.txt").write_bytes((d / "testlist01.txt").read_bytes())
    summary = dataset_report.split_summary("ucf101", d)
    assert summary["train"].tolist() == [3, 3, 3] and summary["test_groups"].tolist() == ["g01"] * 3
    counts = dataset_report.class_counts("ucf101", d)
    assert counts["train1"].tolist() == [1, 1, 1] and counts["test1"].tolist() == [1, 0, 1]
