"""The names of the study's output folders, written and read in one place.

    runs/<stream>-split<k>[-s<seed>]-<key>                        a stream run
    features/<stream>-<backbone>-<tap>-split<k>[-s<seed>]-<key>   a feature cache
    runs/<kind>-split<k>-<layer>-<method>-<arch>-<key>            a head run

A stream run and its feature caches carry ``-s<seed>`` for a stream seed other than 0
(``stream_seeds``; seed 0 keeps the names of the runs made before stream seeds existed).
``<kind>`` is ``convlstm``, ``fclstm``, ``tavg`` or ``pooled``; ``<arch>`` is
``l<layers>k<kernel>`` (``l<layers>`` for the FC-LSTMs, which have no kernel) plus
``-s<seed>`` for a head seed other than 0, ``-ss<seed>`` for a head reading the features of
streams of a stream seed other than 0, one suffix per negative control (``-misalign``,
``-permutelabels``), then ``-carried`` for a head trained with its recurrent state carried
across training videos (the authors' training). Layer and method names hold no hyphen,
so :func:`parse` can split a name back into its parts (``twostream runs`` does, for runs
that have not written their results yet).
"""

from __future__ import annotations

import re
from typing import Any

from twostream.core.names import STREAMS

_NAME = re.compile(r"^(?P<prefix>[a-z]+)-split(?P<split>\d+)-(?P<rest>.+)$")
_SEED_PART = {"s": re.compile(r"^s\d+$"), "ss": re.compile(r"^ss\d+$")}


def _seed(seed: int, tag: str = "s") -> str:
    return f"-{tag}{int(seed)}" if seed else ""


def stream_run(stream: str, split: int, key: str, seed: int = 0) -> str:
    return f"{stream}-split{split}{_seed(seed)}-{key}"


def feature_cache(stream: str, backbone: str, tap: str, split: int, key: str,
                  seed: int = 0) -> str:  # fmt: skip
    return f"{stream}-{backbone}-{tap}-split{split}{_seed(seed)}-{key}"


def feature_group(stream: str, backbone: str, split: int, stream_key: str) -> str:
    """The lock name under which one stream's taps of one split are extracted together."""
    return f"{stream}-{backbone}-split{split}-{stream_key}"


def head_run(*, kind: str, split: int, layer: str, method: str, layers: int, kernel: int,
             seed: int = 0, controls: tuple[str, ...] = (), train_state: str = "reset",
             key: str, stream_seed: int = 0) -> str:  # fmt: skip
    arch = f"l{layers}" if layer == "fc" or not kernel else f"l{layers}k{kernel}"
    arch += _seed(seed) + _seed(stream_seed, "ss")
    arch += "".join(f"-{c.replace('_', '')}" for c in controls)
    arch += "-carried" if train_state == "carried" else ""
    return f"{kind}-split{split}-{layer}-{method}-{arch}-{key}"


def parse(name: str) -> dict[str, Any] | None:
    """``{"prefix", "split", "parts", "seed", "stream_seed"}`` of a run folder's name (None
    when it is none of ours): ``prefix`` is the stream or the head kind, ``parts`` the
    hyphen-separated rest (a stream: ``[s<seed>,] key``; a head: layer, method, arch...,
    key); ``seed`` is a stream run's stream seed or a head's head seed (the ``s<seed>``
    part, 0 without one), ``stream_seed`` a head's stream seed (``ss<seed>``, 0 without;
    a stream run: its ``seed``)."""
    m = _NAME.match(name)
    if not m:
        return None
    parts = m.group("rest").split("-")
    seeds = {tag: int(p[len(tag):]) for p in parts[:-1] for tag in ("s", "ss")
             if _SEED_PART[tag].match(p)}  # fmt: skip
    seed, prefix = seeds.get("s", 0), m.group("prefix")
    return {"prefix": prefix, "split": int(m.group("split")), "parts": parts, "seed": seed,
            "stream_seed": seed if prefix in STREAMS else seeds.get("ss", 0)}  # fmt: skip


__all__ = ["feature_cache", "feature_group", "head_run", "parse", "stream_run"]
