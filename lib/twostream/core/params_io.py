"""Reading and writing the study's files of values: params files as strict YAML (a syntax error, a duplicate key, a non-UTF-8 byte or an empty file is one line naming the file and the line), typed coercion into a dataclass, and JSON that holds paths and tuples."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from twostream.core.errors import UserError
from twostream.core.runtime import atomic_write_text


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Light coercion for YAML/JSON values: lists -> tuples, ints -> floats, 'none' -> None."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(name, value, non_none[0])
        return value
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            inner = args[0] if args else Any
            return tuple(_coerce(name, v, inner) for v in value)
        if isinstance(value, (int, float, str)):
            inner = args[0] if args else Any
            return (_coerce(name, value, inner),)
        raise UserError(f"config key {name!r}: expected a list, got {value!r}")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise UserError(f"config key {name!r}: expected a number, got {value!r}") from None
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if annotation is bool and not isinstance(value, bool):
        raise UserError(f"config key {name!r}: expected true/false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"config key {name!r}: expected an integer, got {value!r}")
    if annotation is str and not isinstance(value, str):
        raise UserError(f"config key {name!r}: expected a string, got {value!r}")
    return value


def dataclass_from_dict(cls, data: dict[str, Any], *, source: str = "config"):
    """Build a (frozen) dataclass from a dict, rejecting unknown keys with a suggestion."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        parts = []
        for k in unknown:
            close = difflib.get_close_matches(k, names, n=1)
            parts.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise UserError(
            f"{source}: unknown key(s) {', '.join(parts)} for {cls.__name__}; "
            f"known keys: params/test.yaml lists every one"
        )
    try:
        kwargs = {k: _coerce(k, v, hints[k]) for k, v in data.items()}
        return cls(**kwargs)
    except UserError as exc:  # name where the value came from (a file, --set)
        msg = str(exc)
        for prefix in ("config: ", "config "):
            if msg.startswith(prefix) and source != "config":
                msg = f"{source}: {msg[len(prefix) :]}"
                break
        raise UserError(msg) from None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, paths and numpy scalars to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return obj.item()
        except (ValueError, RuntimeError):
            pass
    return obj


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""

    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"key {key!r} is set twice (first on line {first}); keep one of the two")
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently, so ``stream_epochs: 8`` further up would quietly not apply)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(key, line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, int | None]:
    """(what yaml says is wrong, 1-based line or None) of a parse error."""
    if isinstance(exc, _DuplicateKey):
        return str(exc), exc.line
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    if context:
        problem = f"{context}, {problem}"
    return problem, line


def parse_yaml_text(text: str, where: str) -> Any:
    """``yaml`` text -> Python, a syntax error or a duplicate key as one-line ``UserError``
    naming ``where`` (a file, ``--set KEY=...``) and the line yaml points to."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem, line = yaml_problem(exc)
        at = f", line {line}" if line is not None else ""
        if isinstance(exc, _DuplicateKey):
            raise UserError(f"{where}{at}: {problem}") from None
        raise UserError(
            f"{where}{at}: not valid YAML ({problem}); params files are flat `key: value` "
            "lines, lists as [1, 2] (see params/test.yaml)"
        ) from None
