"""ConvLSTM of eq. 6 (Shi et al. 2015) and the recognition heads built on it.

Eq. 6 of the paper, with ``*`` a 2-D convolution (zero padding keeps the grid) and ``∘`` the
Hadamard product::

    i_t = σ(W_xi * X_t + W_hi * H_{t-1} + b_i)
    f_t = σ(W_xf * X_t + W_hf * H_{t-1} + b_f)
    o_t = σ(W_xo * X_t + W_ho * H_{t-1} + b_o)
    C_t = f_t ∘ C_{t-1} + i_t ∘ tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)
    H_t = o_t ∘ tanh(C_t)

``peephole=True`` adds Shi et al.'s terms ``W_ci ∘ C_{t-1}`` and ``W_cf ∘ C_{t-1}`` to the
input and forget gates and ``W_co ∘ C_t`` to the output gate (the paper's eq. 6 has none).

Why the input-to-state convolution is separate: ``W_x* * X_t`` does not depend on the
recurrence, so it runs *once* as one convolution over all ``B*T`` frames before the time
loop (``input_mode="precompute"``, the default), and only ``W_h* * H_{t-1}`` (300 -> 1200
channels instead of 2048+300 -> 1200) stays inside the loop. This is the same arithmetic as
the per-step forms (``"per_step"``: two convolutions per step; ``"concat"``: one convolution
over ``[X_t, H_{t-1}]`` per step, how most ConvLSTM code is written) and is checked against
them in tests/test_convlstm.py; benchmarks/convlstm.py measures the speed-up.

Heads (what the training loop builds, via ``build_head``):

* ``FusionConvLSTM``: fusion per time step -> ConvLSTM (1-3 layers) -> global average
  pooling of the last layer's output state ``H_T`` -> dropout -> linear (logits; the
  softmax lives in the loss / the evaluation).
* ``FCLSTM``: the baseline, fusion of the streams' pooled FC-layer vectors -> ``nn.LSTM``
  -> last hidden state -> dropout -> linear.
* ``PooledLSTM``: the FC-LSTM on a convolutional tap: fusion per time step of the *maps*
  (as the ConvLSTM's) -> global average pooling over the grid -> ``nn.LSTM`` -> last
  hidden state -> dropout -> linear. Against the ConvLSTM at the same tap and fusion, only
  where the spatial pooling happens differs (before the recurrence instead of after it):
  the M3 baseline of the mechanism checks.
* ``FusionTimeAverage``: the ConvLSTM without its recurrence, the control of the order
  mechanism: fusion per time step -> the same stack of k x k convolutions (+ ReLU) per step
  -> the *mean over time* -> global average pooling -> dropout -> linear. It sees every
  step's fused maps at every place, so it can bind appearance to motion, but it cannot tell
  in which order the steps came.

Both take ``forward(a, b, state=None, return_state=False)`` with the spatial (``a``) and
temporal (``b``) stream features, and ``forward_fused(x, ...)`` for inputs already fused
(parameter-free fusions stored once in the cache). The state starts at zero for every
video unless one is passed in (the authors' code probably carried it across test videos;
``return_state`` / ``state`` let the protocol audit reproduce that on purpose).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twostream.core.names import HEAD_KINDS
from twostream.models.fusion import build_fusion, is_parameter_free

__all__ = [
    "FCLSTM",
    "HEADS",
    "INPUT_MODES",
    "KERNELS",
    "PooledLSTM",
    "ConvLSTM",
    "ConvLSTMCell",
    "FusionConvLSTM",
    "FusionTimeAverage",
    "build_head",
    "count_parameters",
]

KERNELS = (3, 5)
INPUT_MODES = ("precompute", "per_step", "concat")
HEADS = HEAD_KINDS  # ("convlstm", "fclstm", "tavg", "pooled")

State = tuple[torch.Tensor, torch.Tensor]  # (H, C), each (B, hidden, H, W)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer of eq. 6.

    ``input_conv`` holds ``W_x{i,f,o,c}`` and the biases ``b_{i,f,o,c}`` (gate order i, f,
    o, c along the output channels), ``hidden_conv`` holds ``W_h{i,f,o,c}`` (no bias: eq. 6
    has one bias per gate). Peephole weights, when enabled, have shape
    ``(hidden, *grid)`` -- Shi et al.'s full Hadamard weights -- if ``grid=(H, W)`` is
    given, else ``(hidden, 1, 1)`` (one weight per channel, broadcast over the grid).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        *,
        peephole: bool = False,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise ValueError(f"ConvLSTM kernel size must be odd (3 or 5), got {kernel_size}")
        self.in_channels = int(in_channels)
        self.hidden_channels = int(hidden_channels)
        self.kernel_size = int(kernel_size)
        self.peephole = bool(peephole)
        hid, pad = self.hidden_channels, self.kernel_size // 2  # padding k//2 keeps H x W
        self.input_conv = nn.Conv2d(self.in_channels, 4 * hid, self.kernel_size, padding=pad)
        self.hidden_conv = nn.Conv2d(hid, 4 * hid, self.kernel_size, padding=pad, bias=False)
        if self.peephole:
            shape = (hid, *grid) if grid is not None else (hid, 1, 1)
            self.w_ci = nn.Parameter(torch.zeros(shape))
            self.w_cf = nn.Parameter(torch.zeros(shape))
            self.w_co = nn.Parameter(torch.zeros(shape))
        else:
            self.register_parameter("w_ci", None)
            self.register_parameter("w_cf", None)
            self.register_parameter("w_co", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Kaiming-uniform convolutions (PyTorch's default), zero biases except the forget
        # gate's, which starts at 1 so the cell remembers by default early in training
        # (Jozefowicz et al. 2015); peepholes start at 0 (= the plain eq. 6 cell).
        self.input_conv.reset_parameters()
        self.hidden_conv.reset_parameters()
        hid = self.hidden_channels
        with torch.no_grad():
            self.input_conv.bias.zero_()
            self.input_conv.bias[hid : 2 * hid].fill_(1.0)
            for w in (self.w_ci, self.w_cf, self.w_co):
                if w is not None:
                    w.zero_()

    def init_state(self, x: torch.Tensor) -> State:
        """Zero ``(H, C)`` for a batch shaped like ``x`` (..., H, W) on its device/dtype."""
        shape = (x.shape[0], self.hidden_channels, x.shape[-2], x.shape[-1])
        z = torch.zeros(shape, device=x.device, dtype=x.dtype)
        return z, z

    def input_to_state(self, x: torch.Tensor) -> torch.Tensor:
        """``W_x* * X + b``: (N, C_in, H, W) -> (N, 4*hidden, H, W); any N (e.g. B*T)."""
        return self.input_conv(x)

    def step(self, xz: torch.Tensor, state: State) -> State:
        """One time step given the precomputed input term ``xz`` (B, 4*hidden, H, W)."""
        h, c = state
        z = xz + self.hidden_conv(h)  # (B, 4*hidden, H, W)
        return self._gates(z, c)

    def _gates(self, z: torch.Tensor, c: torch.Tensor) -> State:
        zi, zf, zo, zc = z.chunk(4, dim=1)  # each (B, hidden, H, W)
        if self.peephole:
            zi = zi + self.w_ci * c
            zf = zf + self.w_cf * c
        c_next = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zc)
        if self.peephole:
            zo = zo + self.w_co * c_next
        h_next = torch.sigmoid(zo) * torch.tanh(c_next)
        return h_next, c_next

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        """One time step on raw input ``x`` (B, C_in, H, W): two convolutions (per-step form)."""
        if state is None:
            state = self.init_state(x)
        return self.step(self.input_to_state(x), state)

    def concat_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single-convolution form: kernel over ``[X_t, H_{t-1}]`` and its bias."""
        w = torch.cat([self.input_conv.weight, self.hidden_conv.weight], dim=1)
        return w, self.input_conv.bias


class ConvLSTM(nn.Module):
    """A stack of ``num_layers`` ConvLSTM cells; layer l+1 reads layer l's output sequence.

    ``forward(x (B, T, C, H, W), state=None)`` returns ``(outputs, state)``: the last
    layer's ``H_t`` for every t, (B, T, hidden, H, W), and the final ``[(H_T, C_T)]`` of
    every layer. ``state`` (same structure) continues from a previous call; ``None`` starts
    from zeros.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int | list[int] = 300,
        num_layers: int = 1,
        kernel_size: int = 3,
        *,
        peephole: bool = False,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= int(num_layers) <= 3:
            raise ValueError(f"ConvLSTM layers must be 1, 2 or 3 (paper), got {num_layers}")
        if kernel_size not in KERNELS:
            raise ValueError(f"ConvLSTM kernel must be one of {KERNELS} (paper), got {kernel_size}")
        hidden = (
            [int(hidden_channels)] * num_layers
            if isinstance(hidden_channels, int)
            else [int(h) for h in hidden_channels]
        )
        if len(hidden) != num_layers:
            raise ValueError(f"ConvLSTM: {len(hidden)} hidden sizes for {num_layers} layers")
        ins = [int(in_channels), *hidden[:-1]]
        self.cells = nn.ModuleList(
            ConvLSTMCell(i, h, kernel_size, peephole=peephole, grid=grid)
            for i, h in zip(ins, hidden)
        )
        self.in_channels = int(in_channels)
        self.hidden_channels = hidden
        self.out_channels = hidden[-1]
        self.num_layers = int(num_layers)
        self.kernel_size = int(kernel_size)

    def forward(
        self, x: torch.Tensor, state: list[State] | None = None, *, input_mode: str = "precompute"
    ) -> tuple[torch.Tensor, list[State]]:
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"ConvLSTM expects (B, T, {self.in_channels}, H, W) input, got {tuple(x.shape)}"
            )
        if input_mode not in INPUT_MODES:
            raise ValueError(f"unknown input_mode {input_mode!r}; known: {', '.join(INPUT_MODES)}")
        if state is not None and len(state) != self.num_layers:
            raise ValueError(f"ConvLSTM state has {len(state)} layers, model has {self.num_layers}")
        B, T = x.shape[:2]
        seq = x  # (B, T, C, H, W)
        final: list[State] = []
        for layer, cell in enumerate(self.cells):
            hc = state[layer] if state is not None else cell.init_state(seq[:, 0])
            outs = []
            if input_mode == "precompute":
                # One convolution over all B*T frames, then only W_h * H_{t-1} per step.
                xz = cell.input_to_state(seq.flatten(0, 1)).unflatten(0, (B, T))  # (B, T, 4h, H, W)
                for t in range(T):
                    hc = cell.step(xz[:, t], hc)
                    outs.append(hc[0])
            elif input_mode == "per_step":
                for t in range(T):
                    hc = cell(seq[:, t], hc)
                    outs.append(hc[0])
            else:  # "concat": one convolution over [X_t, H_{t-1}] per step
                w, bias = cell.concat_weights()
                pad = cell.kernel_size // 2
                for t in range(T):
                    z = F.conv2d(torch.cat([seq[:, t], hc[0]], dim=1), w, bias, padding=pad)
                    hc = cell._gates(z, hc[1])
                    outs.append(hc[0])
            seq = torch.stack(outs, dim=1)  # (B, T, hidden, H, W)
            final.append(hc)
        return seq, final


def _check_pair(a: torch.Tensor, b: torch.Tensor, ndim: int, what: str) -> None:
    if a.dim() != ndim or b.dim() != ndim:
        raise ValueError(
            f"{what} expects two {ndim}-D stream features, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


class _FusionHead(nn.Module):
    """What both heads share: per-time-step fusion of the two streams, a recurrent core
    (``_head``, defined by the subclass), dropout and a linear classifier on its last output.

    ``forward(a, b)`` takes both streams' features; ``forward_fused(x)`` features already
    fused by this head's (parameter-free) fusion, e.g. a pre-fused cache.
    """

    sequence_dims = 5  # (B, T, C, H, W); the FC-LSTM's vectors are (B, T, C)

    def __init__(self, *, in_channels: int, num_classes: int, fusion: str) -> None:
        super().__init__()
        self.fusion_name = fusion
        self.fusion = build_fusion(fusion, channels=in_channels)
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)

    def _add_classifier(self, features: int, dropout: float) -> None:
        """Dropout + linear classifier after the core (built after it: same init order)."""
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, self.num_classes)

    def forward(self, a: torch.Tensor, b: torch.Tensor, state=None, return_state: bool = False,
                **kw):  # fmt: skip
        """``a``/``b``: spatial / temporal features -> logits (B, K) (and the final state)."""
        _check_pair(a, b, self.sequence_dims, type(self).__name__)
        x = self.fusion(a, b)  # (B, T, C', H, W) or (B, T, C')
        return self._head(x, state, return_state, **kw)

    def forward_fused(self, x: torch.Tensor, state=None, return_state: bool = False, **kw):
        if not is_parameter_free(self.fusion_name):
            raise TypeError(
                f"forward_fused needs a parameter-free fusion; {self.fusion_name!r} learns "
                "parameters, so pass both streams to forward(a, b)"
            )
        if x.dim() != self.sequence_dims:
            raise ValueError(
                f"{type(self).__name__}.forward_fused expects {self.sequence_dims}-D fused "
                f"features, got {tuple(x.shape)}"
            )
        return self._head(x, state, return_state, **kw)

    def _head(self, x, state, return_state, **kw):  # pragma: no cover - abstract
        raise NotImplementedError


class FusionConvLSTM(_FusionHead):
    """Fusion per time step -> ConvLSTM -> GAP of the last layer's H_T -> dropout -> linear."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        fusion: str = "sum",
        layers: int = 1,
        kernel: int = 3,
        hidden: int = 300,
        dropout: float = 0.5,
        peephole: bool = False,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, fusion=fusion)
        self.convlstm = ConvLSTM(
            self.fusion.out_channels, hidden, layers, kernel, peephole=peephole, grid=grid
        )
        self._add_classifier(self.convlstm.out_channels, dropout)

    def _head(self, x, state, return_state, *, input_mode: str = "precompute"):
        out, state = self.convlstm(x, state, input_mode=input_mode)  # (B, T, hidden, H, W)
        pooled = out[:, -1].mean(dim=(-2, -1))  # (B, hidden): GAP of H_T
        logits = self.classifier(self.dropout(pooled))  # (B, K)
        return (logits, state) if return_state else logits


class FCLSTM(_FusionHead):
    """Baseline: fusion of pooled FC-layer vectors (B, T, C) -> LSTM -> last h -> dropout -> linear.

    ``state`` is ``nn.LSTM``'s ``(h, c)``, each (layers, B, hidden).
    """

    sequence_dims = 3

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        fusion: str = "sum",
        layers: int = 1,
        hidden: int = 300,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, fusion=fusion)
        self.lstm = nn.LSTM(self.fusion.out_channels, hidden, num_layers=layers, batch_first=True)
        self._add_classifier(hidden, dropout)
        with torch.no_grad():  # forget-gate bias 1 (PyTorch gate order i, f, g, o)
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias_"):
                    p.zero_()
                    if name.startswith("bias_ih"):
                        p[hidden : 2 * hidden].fill_(1.0)

    def _head(self, x, state, return_state, **_):
        out, state = self.lstm(x, state)  # (B, T, hidden)
        logits = self.classifier(self.dropout(out[:, -1]))  # (B, K)
        return (logits, state) if return_state else logits


class PooledLSTM(FCLSTM):
    """FC-LSTM on maps: fusion of the (B, T, C, H, W) maps per step -> mean over H, W ->
    LSTM -> last h -> dropout -> linear (the FC-LSTM's weights, on the pooled fused maps)."""

    sequence_dims = 5

    def _head(self, x, state, return_state, **kw):
        return super()._head(x.mean(dim=(-2, -1)), state, return_state, **kw)  # (B, T, C')


class FusionTimeAverage(_FusionHead):
    """Fusion per step -> ``layers`` x (k x k conv -> ReLU) per step -> mean over T -> GAP
    -> dropout -> linear: a ConvLSTM head with the recurrence taken out (same fusion,
    kernel and width), so a gap to it is what the order of the steps adds."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        fusion: str = "sum",
        layers: int = 1,
        kernel: int = 3,
        hidden: int = 300,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, fusion=fusion)
        convs, c = [], self.fusion.out_channels
        for _ in range(layers):
            convs += [nn.Conv2d(c, hidden, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
            c = hidden
        self.convs = nn.Sequential(*convs)
        self._add_classifier(hidden, dropout)

    def _head(self, x, state, return_state, **_):
        if state is not None or return_state:
            raise ValueError("the time-average head has no recurrent state")
        b, t = x.shape[:2]
        y = self.convs(x.flatten(0, 1))  # (B*T, hidden, H, W)
        y = y.unflatten(0, (b, t)).mean(dim=1)  # (B, hidden, H, W): the order is gone
        return self.classifier(self.dropout(y.mean(dim=(-2, -1))))  # (B, K)


def build_head(
    *,
    kind: str,
    in_channels: int,
    num_classes: int,
    fusion: str = "sum",
    layers: int = 1,
    kernel: int = 3,
    hidden: int = 300,
    dropout: float = 0.5,
    peephole: bool = False,
    grid: tuple[int, int] | None = None,
) -> nn.Module:
    """``kind="convlstm"`` -> FusionConvLSTM; ``"fclstm"`` -> FCLSTM (``kernel`` ignored);
    ``"tavg"`` -> FusionTimeAverage; ``"pooled"`` -> PooledLSTM (``kernel`` ignored)."""
    if kind == "convlstm":
        return FusionConvLSTM(
            in_channels=in_channels,
            num_classes=num_classes,
            fusion=fusion,
            layers=layers,
            kernel=kernel,
            hidden=hidden,
            dropout=dropout,
            peephole=peephole,
            grid=grid,
        )
    if kind in ("fclstm", "pooled"):
        if peephole:
            raise ValueError("peephole=True is a ConvLSTM option; the FC-LSTM baseline has none")
        return (FCLSTM if kind == "fclstm" else PooledLSTM)(
            in_channels=in_channels,
            num_classes=num_classes,
            fusion=fusion,
            layers=layers,
            hidden=hidden,
            dropout=dropout,
        )
    if kind == "tavg":
        if peephole:
            raise ValueError("peephole=True is a ConvLSTM option; the time-average head has none")
        return FusionTimeAverage(in_channels=in_channels, num_classes=num_classes, fusion=fusion,
                                 layers=layers, kernel=kernel, hidden=hidden, dropout=dropout)  # fmt: skip
    raise ValueError(f"unknown head kind {kind!r}; known: {', '.join(HEADS)}")


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter values, Table 2's ``params`` column."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
