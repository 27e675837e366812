import subprocess
import sys

from twostream.cli.main import COMMANDS, main


def test_top_level_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_one_line(capsys):
    assert main(["prepar"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'prepare'" in err and "\n" not in err


def test_python_dash_m_works():
    r = subprocess.run(
        [sys.executable, "-m", "twostream", "--help"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "commands:" in r.stdout


def test_params_and_set_overrides_reach_the_config(tmp_path):
    import argparse

    from twostream.core.config import add_config_arguments, config_from_args

    params = tmp_path / "p.yaml"
    params.write_text("backbone: resnet34\nseed: 3\n")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--params", str(params), "--set", "seed=5", "--set", "splits=[2]"])
    cfg = config_from_args(args, split=2)
    assert (cfg.backbone, cfg.seed, cfg.splits, cfg.split) == ("resnet34", 5, (2,), 2)


def test_bad_set_through_a_command_is_one_line(capsys):
    assert main(["train-convlstm", "--set", "convlstm_kernal=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'convlstm_kernel'" in err and "\n" not in err
