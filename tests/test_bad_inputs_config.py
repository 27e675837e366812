"""Issue 21: a bad params file or --set value fails as one line naming where it came from."""

import pytest

from twostream.cli.main import main
from twostream.core.config import RANGES, StudyConfig, load_params
from twostream.core.errors import UserError

CMD = ["train-stream", "--stream", "rgb", "--run-dir"]


def run_cli(capsys, tmp_path, *args):
    rc = main([*CMD, str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    return rc, err.splitlines()[0] if err else ""


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"split: [1, 2\nseed: 0\n", ", line 2: not valid YAML ("),
        (b"seed: 0\nstream_epochs: 2\nseed: 1\n", ", line 3: key 'seed' is set twice (first on line 1)"),
        (b"", " is empty (no `key: value` line); copy a preset such as params/test.yaml"),
        (b"# a comment only\n", " is empty (no `key: value` line)"),
        (b"seed: 0\nbackbone: r\xe9snet\n", ", line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
        (b"- seed\n", ": expected a mapping of `key: value` lines, got a list"),
        (b"stream_epochs: 0\n", ": stream_epochs must be an integer >= 1, got 0"),
        (b"stream_epochs: -3\n", ": stream_epochs must be an integer >= 1, got -3"),
        (b"stream_batch_size: -8\n", ": stream_batch_size must be an integer >= 1, got -8"),
        (b"num_segments: 0\n", ": num_segments must be an integer >= 1, got 0"),
        (b"crop_size: 0\n", ": crop_size must be an integer >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_params_file_is_one_line_naming_the_file(capsys, tmp_path, content, expected):
    params = tmp_path / "bad.yaml"
    params.write_bytes(content)
    rc, first = run_cli(capsys, tmp_path, "--params", str(params))
    assert rc == 2
    assert first == f"twostream train-stream: error: {params}{expected}" or first.startswith(
        f"twostream train-stream: error: {params}{expected}"
    )
    assert not (tmp_path / "run").exists()


def test_bad_set_value_names_set_not_the_params_file(capsys, tmp_path):
    rc, first = run_cli(capsys, tmp_path, "--params", "params/smoke.yaml", "--set", "splits=[1,2")
    assert rc == 2
    assert first.startswith(
        "twostream train-stream: error: --set 'splits=[1,2': the value is not valid YAML ("
    )
    rc, first = run_cli(
        capsys, tmp_path, "--params", "params/smoke.yaml", "--set", "stream_epoch=3"
    )
    assert rc == 2
    assert first.startswith(
        "twostream train-stream: error: --set: unknown key(s) 'stream_epoch' "
        "(did you mean 'stream_epochs'?)"
    )
    rc, first = run_cli(
        capsys, tmp_path, "--params", "params/smoke.yaml", "--set", "stream_epochs=-3"
    )
    assert rc == 2
    assert first == (
        "twostream train-stream: error: --set (over params/smoke.yaml): "
        "stream_epochs must be an integer >= 1, got -3"
    )


@pytest.mark.parametrize(
    "field, bad",
    [(n, 0) for n, (low, _, open_) in RANGES.items() if low == 1 or open_]
    + [(n, -1) for n, (low, _, _) in RANGES.items() if low == 0]
    + [("synth_frames", 1), ("synth_version", 4), ("convlstm_dropout", 1.0)],
)
def test_every_count_and_size_has_a_range(field, bad):
    value = (bad,) if field == "head_seeds" else bad
    with pytest.raises(UserError, match=rf"^config: {field} must be .*, got {bad!r}"):
        StudyConfig.from_dict({field: value})


def test_presets_are_within_the_ranges():
    for name in ("test", "smoke", "smoke-confirm", "smoke-reseeded", "ucf101", "hmdb51", "ucf101-paper",
                 "hmdb51-paper"):  # fmt: skip
        StudyConfig.from_dict(load_params(f"params/{name}.yaml"))
