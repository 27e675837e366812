"""The names of the study's output folders, written and read in one place.

    runs/<stream>-split<k>-<key>                                  a stream run
    features/<stream>-<backbone>-<tap>-split<k>-<key>             a feature cache
    runs/<kind>-split<k>-<layer>-<method>-<arch>-<key>            a head run

``<kind>`` is ``convlstm``, ``fclstm``, ``tavg`` or ``pooled``; ``<arch>`` is
``l<layers>k<kernel>`` (``l<layers>`` for the FC-LSTMs, which have no kernel) plus ``-s<seed>`` for a seed other than 0 and one suffix per
negative control (``-misalign``, ``-permutelabels``), then ``-carried`` for a head trained
with its recurrent state carried across training videos (the authors' training). Layer and method names hold no hyphen,
so :func:`parse` can split a name back into its parts (``twostream runs`` does, for runs
that have not written their results yet).
"""

from __future__ import annotations

import re
from typing import Any

_NAME = re.compile(r"^(?P<prefix>[a-z]+)-split(?P<split>\d+)-(?P<rest>.+)$")


def stream_run(stream: str, split: int, key: str) -> str:
    return f"{stream}-split{split}-{key}"


def feature_cache(stream: str, backbone: str, tap: str, split: int, key: str) -> str:
    return f"{stream}-{backbone}-{tap}-split{split}-{key}"


def feature_group(stream: str, backbone: str, split: int, stream_key: str) -> str:
    """The lock name under which one stream's taps of one split are extracted together."""
    return f"{stream}-{backbone}-split{split}-{stream_key}"


def head_run(*, kind: str, split: int, layer: str, method: str, layers: int, kernel: int,
             seed: int = 0, controls: tuple[str, ...] = (), train_state: str = "reset",
             key: str) -> str:  # fmt: skip
    arch = f"l{layers}" if layer == "fc" or not kernel else f"l{layers}k{kernel}"
    arch += f"-s{seed}" if seed else ""
    arch += "".join(f"-{c.replace('_', '')}" for c in controls)
    arch += "-carried" if train_state == "carried" else ""
    return f"{kind}-split{split}-{layer}-{method}-{arch}-{key}"


def parse(name: str) -> dict[str, Any] | None:
    """``{"prefix", "split", "parts"}`` of a run folder's name (None when it is none of
    ours): ``prefix`` is the stream or the head kind, ``parts`` the hyphen-separated rest
    (for a head: layer, method, arch..., key)."""
    m = _NAME.match(name)
    if not m:
        return None
    return {"prefix": m.group("prefix"), "split": int(m.group("split")),
            "parts": m.group("rest").split("-")}  # fmt: skip


__all__ = ["feature_cache", "feature_group", "head_run", "parse", "stream_run"]
