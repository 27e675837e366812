"""The options of ``twostream prepare`` that change the bytes it writes, and their key.

They are the StudyConfig fields of the ``rawframes`` stage (``config.stage_fields("rawframes")``),
plus the TV-L1 overrides and the JPEG quality; :func:`options_from_config` maps one onto the other."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from twostream.core.config import device_type, stage_fields
from twostream.core.errors import UserError
from twostream.core.names import QUANTIZATIONS
from twostream.data import layout
from twostream.data.video import parse_size
from twostream.flow.params import BACKENDS, PRESETS, get_params

FORMAT_VERSION = 1  # bump when the on-disk layout changes: forces a redo


@dataclass(frozen=True)
class PrepareOptions:
    """Everything that changes the bytes written; stored in ``prepare_config.json``."""

    short_side: int | None = None
    resize: str | None = None  # "WxH", exclusive with short_side
    flow_backend: str = "opencv"
    flow_preset: str = "fast"
    flow_device: str = "cpu"
    flow_quantization: str = "bound"
    flow_bound: float = 20.0
    # Extra TV-L1 parameters over the preset, e.g. (("warps", 3),): every OpenCV knob is
    # reachable from the command line (--flow-param warps=3); sorted so the key is stable.
    flow_params: tuple[tuple[str, float], ...] = ()
    jpeg_quality: int = layout.JPEG_QUALITY

    def __post_init__(self) -> None:

        if self.short_side is not None and self.resize is not None:
            raise UserError("give either --short-side or --size WxH, not both")
        if self.short_side is not None and int(self.short_side) < 2:
            raise UserError(f"short side must be >= 2 pixels, got {self.short_side}")
        parse_size(self.resize)  # raises a UserError for a malformed WxH
        if self.flow_backend not in BACKENDS:
            raise UserError(f"unknown flow backend {self.flow_backend!r}; known: {list(BACKENDS)}")
        if self.flow_preset not in PRESETS:
            raise UserError(f"unknown flow preset {self.flow_preset!r}; known: {sorted(PRESETS)}")
        params = tuple(sorted((str(k), v) for k, v in dict(self.flow_params).items()))
        object.__setattr__(self, "flow_params", params)
        object.__setattr__(self, "flow_bound", float(self.flow_bound))
        get_params(self.flow_preset, **dict(params))  # unknown names -> UserError
        if self.flow_quantization not in QUANTIZATIONS:
            raise UserError(
                f"unknown flow quantization {self.flow_quantization!r}; known: {list(QUANTIZATIONS)}"
            )
        if not self.flow_bound > 0:
            raise UserError(f"flow bound must be > 0 pixels, got {self.flow_bound}")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", str(self.flow_device)):
            raise UserError(
                f"flow device {self.flow_device!r} is not cpu, cuda or cuda:N (e.g. cuda:1)"
            )
        if self.flow_device != "cpu" and self.flow_backend == "opencv":
            raise UserError(
                "the opencv flow backend runs on the CPU; use --flow-backend torch for cuda"
            )

    def tvl1_params(self) -> dict[str, Any]:
        """The TV-L1 parameters the preset + overrides resolve to *now*: a preset whose
        definition changes in flow.py must not reuse frames made with the old one."""

        return dataclasses.asdict(get_params(self.flow_preset, **dict(self.flow_params)))

    def describe(self) -> dict[str, Any]:
        """What the bytes depend on (hashed by :meth:`key`). The flow device as its type:
        cuda:0 and cuda:1 write the same bytes, so they share the key "cuda"; cpu and cuda
        keep separate keys, because CPU and GPU TV-L1 may differ in float rounding."""
        params = dataclasses.asdict(self)
        params["flow_device"] = device_type(self.flow_device)
        return {"format": FORMAT_VERSION, "params": params, "tvl1": self.tvl1_params()}

    def key(self) -> str:
        """Hash of everything that changes the bytes: a marker with another key is stale."""
        payload = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:16]


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(PrepareOptions))


def options_from_config(cfg, **extra: Any) -> PrepareOptions:
    """The PrepareOptions of a StudyConfig: its ``rawframes`` stage fields (+ ``extra``)."""

    return PrepareOptions(**{f: getattr(cfg, f) for f in stage_fields("rawframes")}, **extra)
