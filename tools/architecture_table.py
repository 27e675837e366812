"""Print the README's table of every module of lib/twostream/: folder, module, first sentence
of its docstring, in the layered contract's order (pyproject.toml, [tool.importlinter]).

    python tools/architecture_table.py   # paste between the README's architecture markers
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def folders() -> list[str]:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = cfg["contracts"][0]["layers"]
    return [p.strip().split(".")[-1] for layer in layers for p in layer.split("|")]


def first_sentence(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    return re.split(r"\.\s+(?=[A-Z])", text)[0].rstrip(".")


def rows() -> list[str]:
    out = ["| folder | module | what it holds |", "|---|---|---|"]
    for pkg in folders():
        for f in sorted((REPO / "lib" / "twostream" / pkg).glob("*.py")):
            if f.name != "__init__.py":
                out.append(f"| `{pkg}/` | `{f.stem}` | {first_sentence(f)} |")
    return out


if __name__ == "__main__":
    sys.stdout.write("\n".join(rows()) + "\n")
