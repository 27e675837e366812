"""Feature-map fusion of the two streams (paper section 3.3, eqs. 1-5; Table 1's method axis).

A fusion ``f(X^a, X^b) -> y`` combines the spatial-stream map ``X^a`` and the temporal-stream
map ``X^b`` of one time step at the same location. Methods are a string registry
(``FUSIONS``), so the ablation loops over names and users can add their own with
``@register_fusion("name")``:

``sum``                 eq. 1, ``y = a + b``                                   C -> C
``max``                 eq. 2, ``y = max(a, b)`` element-wise                  C -> C
``concat``              eq. 4, channel blocks ``[a_1..a_C, b_1..b_C]``         C -> 2C
``concat_interleaved``  eq. 3, channel pairs, **b first**: ``[b_1, a_1, b_2, a_2, ...]``
                        (the paper's 1-based ``y_{2c} = X^a_c``, ``y_{2c-1} = X^b_c``, so the
                        odd 1-based positions, i.e. the first of each pair, hold ``b``) C -> 2C
``spatial``, ``temporal`` one stream only (``y = a`` / ``y = b``): the single-stream ConvLSTM
                        rows of Table 3, which separate the ConvLSTM's gain from the
                        fusion's                                              C -> C
``conv``                eq. 5, ``concat`` (eq. 4 order) then a learned 1x1 convolution
                        2C -> C with bias; initialised as ``sum`` (weights [I, I], bias 0,
                        as Feichtenhofer et al. 2016 did) so training starts from the
                        paper's chosen method                                   C -> C

Every module accepts ``(N, C, H, W)`` maps, ``(N, C)`` vectors (FC-layer features for the
FC-LSTM baseline) and time sequences ``(B, T, C, H, W)`` / ``(B, T, C)`` (T is folded into
the batch: fusion is per time step). The parameter-free methods (``is_parameter_free``)
give the same output whenever they run, so a feature cache may store their fused maps once
instead of both streams (half the disk for sum/max).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from twostream.core.errors import UserError

__all__ = [
    "FUSIONS",
    "Fusion",
    "build_fusion",
    "check_fusion",
    "fusion_out_channels",
    "is_parameter_free",
    "register_fusion",
]


class Fusion(nn.Module):
    """Base class: subclasses implement ``fuse(a, b)`` on ``(N, C, *spatial)`` tensors.

    ``forward`` checks the two inputs and folds a time axis into the batch, so ``fuse`` only
    ever sees channel-first tensors with the channels on dim 1.
    """

    parameter_free: ClassVar[bool] = True
    channel_multiplier: ClassVar[int] = 1  # out_channels = channel_multiplier * channels
    name: ClassVar[str] = ""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if int(channels) < 1:
            raise ValueError(f"fusion {self.name!r}: channels must be >= 1, got {channels}")
        self.in_channels = int(channels)
        self.out_channels = self.channel_multiplier * self.in_channels

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(
                f"fusion {self.name!r}: the two streams' features differ in shape "
                f"({tuple(a.shape)} vs {tuple(b.shape)}); extract both at the same tap and size"
            )
        # (N, C) and (N, C, H, W) are channel-first already; (B, T, C) and (B, T, C, H, W)
        # carry a time axis that is folded into the batch.
        if a.dim() in (2, 4):
            time_axis = False
        elif a.dim() in (3, 5):
            time_axis = True
        else:
            raise ValueError(
                f"fusion {self.name!r}: expected (N, C), (B, T, C), (N, C, H, W) or "
                f"(B, T, C, H, W) features, got shape {tuple(a.shape)}"
            )
        if a.shape[2 if time_axis else 1] != self.in_channels:
            raise ValueError(
                f"fusion {self.name!r} was built for {self.in_channels} channels, got features "
                f"of shape {tuple(a.shape)}"
            )
        if not time_axis:
            return self.fuse(a, b)
        B, T = a.shape[:2]
        y = self.fuse(a.flatten(0, 1), b.flatten(0, 1))  # (B*T, C', ...)
        return y.unflatten(0, (B, T))  # (B, T, C', ...)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}"


FUSIONS: dict[str, type[Fusion] | Callable[..., nn.Module]] = {}


def register_fusion(name: str):
    """Class decorator adding a fusion to ``FUSIONS`` under ``name``.

    The class is called as ``cls(channels, **kwargs)`` and must expose ``.out_channels``;
    subclass ``Fusion`` to get shape checks and time folding for free. Set the class
    attribute ``parameter_free = False`` when it has learnable parameters.
    """

    def decorator(cls):
        if name in FUSIONS and FUSIONS[name] is not cls:
            raise ValueError(f"fusion {name!r} is already registered ({FUSIONS[name]!r})")
        if isinstance(cls, type) and issubclass(cls, Fusion):
            cls.name = name
        FUSIONS[name] = cls
        return cls

    return decorator


def _lookup(name: str):
    try:
        return FUSIONS[name]
    except (KeyError, TypeError):
        raise UserError(
            f"unknown fusion method {name!r}; known methods: {', '.join(sorted(FUSIONS))}"
        ) from None


def check_fusion(name: str) -> str:
    """``name`` if it is a registered fusion method, else a UserError listing the known ones."""
    _lookup(name)
    return name


def build_fusion(name: str, *, channels: int, **kwargs) -> nn.Module:
    """The fusion module ``name`` for two streams of ``channels`` channels each."""
    module = _lookup(name)(channels, **kwargs)
    if not hasattr(module, "out_channels"):
        raise TypeError(f"fusion {name!r} does not expose .out_channels")
    return module


def is_parameter_free(name: str) -> bool:
    """True when ``name`` has no learnable parameters, so its output can be cached once."""
    return bool(getattr(_lookup(name), "parameter_free", False))


def fusion_out_channels(name: str, *, channels: int) -> int:
    """Output channels of ``name`` without building it (cheap even for 2048-channel conv)."""
    cls = _lookup(name)
    mult = getattr(cls, "channel_multiplier", None)
    if mult is None:
        return int(build_fusion(name, channels=channels).out_channels)
    return int(mult) * int(channels)


# ----------------------------------------------------------------------------- built-ins


@register_fusion("sum")
class SumFusion(Fusion):
    """Eq. 1: ``y_{i,j,c} = X^a_{i,j,c} + X^b_{i,j,c}``."""

    def fuse(self, a, b):
        return a + b


@register_fusion("max")
class MaxFusion(Fusion):
    """Eq. 2: ``y_{i,j,c} = max(X^a_{i,j,c}, X^b_{i,j,c})``."""

    def fuse(self, a, b):
        return torch.maximum(a, b)


@register_fusion("spatial")
class SpatialOnly(Fusion):
    """No fusion: the spatial stream's map alone (a single-stream ConvLSTM)."""

    def fuse(self, a, b):
        return a


@register_fusion("temporal")
class TemporalOnly(Fusion):
    """No fusion: the temporal stream's map alone (a single-stream ConvLSTM)."""

    def fuse(self, a, b):
        return b


@register_fusion("concat")
class ConcatFusion(Fusion):
    """Eq. 4: channel blocks, ``y_{1:C} = X^a``, ``y_{C+1:2C} = X^b``."""

    channel_multiplier = 2

    def fuse(self, a, b):
        return torch.cat([a, b], dim=1)  # (N, 2C, ...)


@register_fusion("concat_interleaved")
class InterleavedConcatFusion(Fusion):
    """Eq. 3 exactly as printed: ``y_{2c} = X^a_c``, ``y_{2c-1} = X^b_c`` (1-based).

    In 0-based channel order that is ``[b_1, a_1, b_2, a_2, ...]``: the temporal stream's
    channel comes *first* in each pair. (Most implementations put ``a`` first; with a
    learned layer after it the order only permutes weights, but we follow the paper.)
    """

    channel_multiplier = 2

    def fuse(self, a, b):
        return torch.stack([b, a], dim=2).flatten(1, 2)  # (N, C, 2, ...) -> (N, 2C, ...)


@register_fusion("conv")
class ConvFusion(Fusion):
    """Eq. 5: ``y = y^cat * f + b`` with ``f`` a bank of C 1x1x2C filters and a bias.

    ``init="sum"`` (default) starts from ``f = [I, I]``, ``b = 0`` (i.e. sum fusion);
    ``init="default"`` keeps PyTorch's Kaiming-uniform initialisation.
    """

    parameter_free = False

    def __init__(self, channels: int, *, init: str = "sum") -> None:
        super().__init__(channels)
        C = self.in_channels
        self.weight = nn.Parameter(torch.empty(C, 2 * C))  # (C_out, 2C_in): the 1x1 kernel
        self.bias = nn.Parameter(torch.empty(C))
        if init == "sum":
            with torch.no_grad():
                eye = torch.eye(C)
                self.weight.copy_(torch.cat([eye, eye], dim=1))
                self.bias.zero_()
        elif init == "default":
            conv = nn.Conv2d(2 * C, C, 1)  # borrow PyTorch's initialisation of a 1x1 conv
            with torch.no_grad():
                self.weight.copy_(conv.weight.flatten(1))
                self.bias.copy_(conv.bias)
        else:
            raise ValueError(f"conv fusion: unknown init {init!r}; known: sum, default")

    def fuse(self, a, b):
        y = torch.cat([a, b], dim=1)  # (N, 2C, ...), eq. 4 order
        if y.dim() == 2:  # vectors: a 1x1 conv is a linear layer
            return F.linear(y, self.weight, self.bias)  # (N, C)
        kernel = self.weight.reshape(*self.weight.shape, *([1] * (y.dim() - 2)))
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[y.dim()]
        return conv(y, kernel, self.bias)  # (N, C, H, W)
