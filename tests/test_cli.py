import subprocess
import sys

from twostream.cli import COMMANDS, main


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
