"""twostream.models.convlstm: eq. 6 against a plain loop transcription, input-conv paths, state, heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from twostream.core.errors import UserError
from twostream.models.convlstm import (
    FCLSTM,
    ConvLSTM,
    ConvLSTMCell,
    FusionConvLSTM,
    build_head,
    count_parameters,
)
from twostream.models.fusion import FUSIONS

FUSION_NAMES = ["sum", "max", "concat", "concat_interleaved", "conv"]
Bn, T, C, H, W, HID, K = 2, 3, 8, 4, 4, 6, 5  # tiny sizes


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (biases and peepholes start at 0/1 otherwise)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def eq6_reference(x, layers, kernel, state=None):
    """Eq. 6 written out step by step, time-major, from weight tensors only.

    ``layers``: per layer a dict of W_x{i,f,o,c}, W_h{i,f,o,c}, b_{i,f,o,c} and optional
    peepholes w_c{i,f,o}. Returns the last layer's H_t for every t and the final (H, C).
    """
    pad = kernel // 2
    Bsz, steps = x.shape[:2]
    hs, cs = [], []
    for layer_index, p in enumerate(layers):
        if state is None:
            hid = p["Whi"].shape[0]
            hs.append(torch.zeros(Bsz, hid, x.shape[-2], x.shape[-1]))
            cs.append(torch.zeros(Bsz, hid, x.shape[-2], x.shape[-1]))
        else:
            hs.append(state[layer_index][0])
            cs.append(state[layer_index][1])
    outputs = []
    for step in range(steps):
        inp = x[:, step]
        for n, p in enumerate(layers):
            h_prev, c_prev = hs[n], cs[n]

            def conv(w, v, b=None):
                return F.conv2d(v, w, b, padding=pad)

            pre_i = conv(p["Wxi"], inp, p["bi"]) + conv(p["Whi"], h_prev)
            pre_f = conv(p["Wxf"], inp, p["bf"]) + conv(p["Whf"], h_prev)
            pre_o = conv(p["Wxo"], inp, p["bo"]) + conv(p["Who"], h_prev)
            if "wci" in p:  # Shi et al.'s peepholes
                pre_i = pre_i + p["wci"] * c_prev
                pre_f = pre_f + p["wcf"] * c_prev
            i = 1 / (1 + torch.exp(-pre_i))
            f = 1 / (1 + torch.exp(-pre_f))
            cand = torch.tanh(conv(p["Wxc"], inp, p["bc"]) + conv(p["Whc"], h_prev))
            c_new = f * c_prev + i * cand
            if "wco" in p:
                pre_o = pre_o + p["wco"] * c_new
            o = 1 / (1 + torch.exp(-pre_o))
            h_new = o * torch.tanh(c_new)
            hs[n], cs[n] = h_new, c_new
            inp = h_new
        outputs.append(inp)
    return torch.stack(outputs, 1), list(zip(hs, cs))


def weights_of(convlstm: ConvLSTM):
    """Copy the module's weights into eq. 6's named tensors (gate order i, f, o, c)."""
    out = []
    for cell in convlstm.cells:
        wx = cell.input_conv.weight.detach().chunk(4, 0)
        bx = cell.input_conv.bias.detach().chunk(4, 0)
        wh = cell.hidden_conv.weight.detach().chunk(4, 0)
        assert cell.hidden_conv.bias is None  # eq. 6: one bias per gate
        p = {}
        for k, gate in enumerate("ifoc"):
            p[f"Wx{gate}"], p[f"Wh{gate}"], p[f"b{gate}"] = (
                wx[k].clone(),
                wh[k].clone(),
                bx[k].clone(),
            )
        if cell.peephole:
            p["wci"], p["wcf"], p["wco"] = (
                w.detach().clone() for w in (cell.w_ci, cell.w_cf, cell.w_co)
            )
        out.append(p)
    return out


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("peephole", [False, True])
def test_matches_eq6_transcription(layers, kernel, peephole):
    torch.manual_seed(1)
    grid = (H, W) if peephole and layers == 2 else None  # full Hadamard peepholes too
    model = FusionConvLSTM(
        in_channels=C,
        num_classes=K,
        fusion="sum",
        layers=layers,
        kernel=kernel,
        hidden=HID,
        peephole=peephole,
        grid=grid,
    ).eval()
    _randomise(model)
    a, b = torch.randn(Bn, T, C, H, W), torch.randn(Bn, T, C, H, W)
    outs, state = model.convlstm(a + b)
    ref_outs, ref_state = eq6_reference(a + b, weights_of(model.convlstm), kernel)
    assert outs.shape == (Bn, T, HID, H, W)
    torch.testing.assert_close(outs, ref_outs, atol=1e-5, rtol=1e-5)
    for (h, c), (rh, rc) in zip(state, ref_state):
        torch.testing.assert_close(h, rh, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, rc, atol=1e-5, rtol=1e-5)
    # the head: GAP of the last layer's H_T, then the linear classifier (dropout off in eval)
    ref_logits = (
        ref_outs[:, -1].mean(dim=(2, 3)) @ model.classifier.weight.T + model.classifier.bias
    )
    torch.testing.assert_close(model(a, b), ref_logits, atol=1e-5, rtol=1e-5)


def test_peephole_changes_output_and_is_off_by_default():
    torch.manual_seed(0)
    assert ConvLSTMCell(C, HID, 3).w_ci is None
    x = torch.randn(Bn, T, C, H, W)
    plain = ConvLSTM(C, HID, 1, 3)
    peep = ConvLSTM(C, HID, 1, 3, peephole=True)
    peep.load_state_dict(plain.state_dict(), strict=False)
    torch.testing.assert_close(peep(x)[0], plain(x)[0])  # peepholes start at 0
    with torch.no_grad():
        peep.cells[0].w_cf.fill_(0.7)
    assert not torch.allclose(peep(x)[0], plain(x)[0])


def test_single_step_cell_by_hand():
    # 1 input channel, 1 hidden channel, kernel 3, H=W=1: convolutions reduce to the centre tap.
    cell = ConvLSTMCell(1, 1, 3)
    with torch.no_grad():
        cell.input_conv.weight.zero_()
        cell.hidden_conv.weight.zero_()
        cell.input_conv.weight[:, 0, 1, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # i, f, o, c
        cell.input_conv.bias.copy_(torch.tensor([0.0, 1.0, 0.0, 0.0]))
    x = torch.full((1, 1, 1, 1), 0.5)
    h, c = cell(x)
    sig = lambda v: 1 / (1 + torch.exp(torch.tensor(-v)))
    c_expected = sig(0.5) * torch.tanh(torch.tensor(2.0))  # f * 0 + i * tanh(4 * 0.5)
    h_expected = sig(1.5) * torch.tanh(c_expected)
    assert torch.allclose(c.squeeze(), c_expected) and torch.allclose(h.squeeze(), h_expected)


def test_zero_padding_keeps_grid_and_sees_borders():
    cell = ConvLSTMCell(1, 1, 5)
    h, c = cell(torch.randn(2, 1, 3, 7))
    assert h.shape == c.shape == (2, 1, 3, 7)


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("kernel", [3, 5])
def test_input_modes_are_identical(layers, kernel):
    torch.manual_seed(2)
    net = ConvLSTM(C, HID, layers, kernel, peephole=True)
    _randomise(net)
    x = torch.randn(Bn, T, C, H, W, requires_grad=True)
    results = {}
    for mode in ("precompute", "per_step", "concat"):
        net.zero_grad()
        x.grad = None
        out, state = net(x, input_mode=mode)
        (out.square().sum() + state[-1][1].sum()).backward()
        results[mode] = (out.detach(), x.grad.clone(), [p.grad.clone() for p in net.parameters()])
    ref = results["precompute"]
    for mode in ("per_step", "concat"):
        torch.testing.assert_close(results[mode][0], ref[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(results[mode][1], ref[1], atol=1e-5, rtol=1e-5)
        for g, rg in zip(results[mode][2], ref[2]):
            torch.testing.assert_close(g, rg, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="input_mode"):
        net(x, input_mode="fast")


@pytest.mark.parametrize("kind", ["convlstm", "fclstm"])
def test_state_resets_between_videos(kind):
    torch.manual_seed(3)
    model = build_head(kind=kind, in_channels=C, num_classes=K, layers=2, hidden=HID).eval()
    _randomise(model)
    shape = (1, T, C, H, W) if kind == "convlstm" else (1, T, C)
    a1, b1, a2, b2 = (torch.randn(shape) for _ in range(4))
    alone = model(a2, b2)
    _, state_1 = model(a1, b1, return_state=True)  # video 1 first ...
    after = model(a2, b2)  # ... then video 2 from the zero state
    torch.testing.assert_close(after, alone, atol=0, rtol=0)
    # a batch of both videos: no leakage across the batch either
    both = model(torch.cat([a1, a2]), torch.cat([b1, b2]))
    torch.testing.assert_close(both[1:], alone, atol=1e-6, rtol=1e-6)
    # carrying video 1's final state into video 2 changes its prediction ...
    carried = model(a2, b2, state=state_1)
    assert not torch.allclose(carried, alone, atol=1e-4)
    # ... and equals running one long video (1 then 2) from zero
    joined = model(torch.cat([a1, a2], 1), torch.cat([b1, b2], 1))
    torch.testing.assert_close(carried, joined, atol=1e-5, rtol=1e-5)


CASES = [("convlstm", f, n, k) for f in FUSION_NAMES for n in (1, 2, 3) for k in (3, 5)]
CASES += [("fclstm", f, n, 3) for f in FUSION_NAMES for n in (1, 2, 3)]
CASES += [("tavg", f, n, k) for f in FUSION_NAMES for n in (1, 2) for k in (3, 5)]


@pytest.mark.parametrize("kind,fusion,layers,kernel", CASES)
def test_heads_shapes_gradients(kind, fusion, layers, kernel):
    torch.manual_seed(4)
    model = build_head(
        kind=kind,
        in_channels=C,
        num_classes=K,
        fusion=fusion,
        layers=layers,
        kernel=kernel,
        hidden=HID,
        dropout=0.0,
    )
    shape = (Bn, T, C) if kind == "fclstm" else (Bn, T, C, H, W)
    a, b = torch.randn(shape), torch.randn(shape)
    logits = model(a, b)
    assert logits.shape == (Bn, K) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["convlstm", "fclstm"])
@pytest.mark.parametrize("fusion", ["sum", "concat_interleaved"])
def test_forward_fused_equals_forward(kind, fusion):
    torch.manual_seed(5)
    model = build_head(kind=kind, in_channels=C, num_classes=K, fusion=fusion, hidden=HID).eval()
    shape = (Bn, T, C, H, W) if kind == "convlstm" else (Bn, T, C)
    a, b = torch.randn(shape), torch.randn(shape)
    fused = model.fusion(a, b)  # what a cache of fused maps stores
    torch.testing.assert_close(model.forward_fused(fused), model(a, b))
    logits, state = model.forward_fused(fused, return_state=True)
    assert logits.shape == (Bn, K) and state is not None


def test_forward_fused_refuses_learned_fusion():
    model = build_head(kind="convlstm", in_channels=C, num_classes=K, fusion="conv", hidden=HID)
    with pytest.raises(TypeError, match="parameter-free"):
        model.forward_fused(torch.randn(Bn, T, C, H, W))


def test_eval_is_deterministic_and_dropout_acts_in_training():
    torch.manual_seed(6)
    model = build_head(kind="convlstm", in_channels=C, num_classes=K, hidden=HID, dropout=0.5)
    a, b = torch.randn(Bn, T, C, H, W), torch.randn(Bn, T, C, H, W)
    model.eval()
    torch.testing.assert_close(model(a, b), model(a, b), atol=0, rtol=0)
    model.train()
    assert not torch.allclose(model(a, b), model(a, b))


def test_initialisation_forget_bias_one():
    cell = ConvLSTMCell(C, HID, 3)
    bias = cell.input_conv.bias.detach()
    assert torch.equal(bias[HID : 2 * HID], torch.ones(HID))
    assert torch.equal(bias[:HID], torch.zeros(HID)) and torch.equal(
        bias[2 * HID :], torch.zeros(2 * HID)
    )
    lstm = FCLSTM(in_channels=C, num_classes=K, hidden=HID).lstm
    assert torch.equal(lstm.bias_ih_l0.detach()[HID : 2 * HID], torch.ones(HID))
    assert lstm.bias_hh_l0.detach().abs().sum() == 0


def test_count_parameters_by_hand():
    model = build_head(kind="convlstm", in_channels=C, num_classes=K, hidden=HID, kernel=3)
    # input conv 8->24 (3x3, bias) + hidden conv 6->24 (3x3, no bias) + linear 6->5
    assert count_parameters(model) == 8 * 24 * 9 + 24 + 6 * 24 * 9 + 6 * 5 + 5
    conv = build_head(kind="convlstm", in_channels=C, num_classes=K, hidden=HID, fusion="conv")
    assert count_parameters(conv) == count_parameters(model) + 8 * 16 + 8  # 1x1 conv 2C->C
    fc = build_head(kind="fclstm", in_channels=C, num_classes=K, hidden=HID, fusion="concat")
    assert count_parameters(fc) == 4 * HID * (16 + HID) + 2 * 4 * HID + HID * K + K
    model.classifier.weight.requires_grad_(False)
    assert count_parameters(model) == 8 * 24 * 9 + 24 + 6 * 24 * 9 + 5
    assert count_parameters(model, trainable_only=False) == 8 * 24 * 9 + 24 + 6 * 24 * 9 + 35


def test_time_average_head_cannot_see_the_order_and_the_convlstm_can():
    """The control of the order mechanism: permuting the T steps leaves the time-average
    head's output unchanged (to rounding) and changes the ConvLSTM's."""
    torch.manual_seed(8)
    a, b = torch.randn(Bn, T, C, H, W), torch.randn(Bn, T, C, H, W)
    order = torch.tensor([2, 0, 1])  # T = 3
    for kind in ("tavg", "convlstm"):
        model = build_head(kind=kind, in_channels=C, num_classes=K, hidden=HID).eval()
        _randomise(model)
        same = torch.allclose(model(a, b), model(a[:, order], b[:, order]), atol=1e-5)
        assert same == (kind == "tavg"), kind
    tavg = build_head(kind="tavg", in_channels=C, num_classes=K, hidden=HID)
    with pytest.raises(ValueError, match="no recurrent state"):
        tavg(a, b, return_state=True)


def test_pooled_lstm_is_the_fc_lstm_on_the_maps_pooled_after_fusion():
    """M3's baseline: with the same weights, the pooled-maps LSTM on (B, T, C, H, W) maps
    equals the FC-LSTM on the fused maps averaged over the grid; for a linear fusion
    (concat) that is the FC-LSTM on each stream's pooled vectors. A grid-dependent input
    (the same values moved about) leaves it unchanged, and changes a ConvLSTM's output."""
    torch.manual_seed(9)
    a, b = torch.randn(Bn, T, C, H, W), torch.randn(Bn, T, C, H, W)
    pooled = build_head(kind="pooled", in_channels=C, num_classes=K, fusion="concat",
                        hidden=HID).eval()  # fmt: skip
    fc = build_head(kind="fclstm", in_channels=C, num_classes=K, fusion="concat",
                    hidden=HID).eval()  # fmt: skip
    _randomise(pooled)
    fc.load_state_dict(pooled.state_dict())
    out = pooled(a, b)
    torch.testing.assert_close(out, fc(a.mean(dim=(-2, -1)), b.mean(dim=(-2, -1))))
    flip = lambda x: x.flip(-1)  # noqa: E731
    torch.testing.assert_close(pooled(flip(a), b), out)  # where a value sits: not seen
    conv = build_head(kind="convlstm", in_channels=C, num_classes=K, fusion="concat",
                      hidden=HID).eval()  # fmt: skip
    _randomise(conv)
    assert not torch.allclose(conv(flip(a), b), conv(a, b), atol=1e-5)


def test_bad_configurations_fail_clearly():
    with pytest.raises(ValueError, match="layers must be 1, 2 or 3"):
        ConvLSTM(C, HID, 4, 3)
    with pytest.raises(ValueError, match="kernel must be one of"):
        ConvLSTM(C, HID, 1, 7)
    with pytest.raises(ValueError, match="unknown head kind 'gru'.*convlstm, fclstm, tavg"):
        build_head(kind="gru", in_channels=C, num_classes=K)
    with pytest.raises(UserError, match="unknown fusion method"):
        build_head(kind="convlstm", in_channels=C, num_classes=K, fusion="mean")
    with pytest.raises(ValueError, match="peephole"):
        build_head(kind="fclstm", in_channels=C, num_classes=K, peephole=True)
    model = build_head(kind="convlstm", in_channels=C, num_classes=K, hidden=HID)
    with pytest.raises(ValueError, match="5-D"):
        model(torch.randn(Bn, C, H, W), torch.randn(Bn, C, H, W))
    with pytest.raises(ValueError, match="state has 2 layers"):
        model(
            torch.randn(1, T, C, H, W),
            torch.randn(1, T, C, H, W),
            state=[(torch.zeros(1, HID, H, W),) * 2] * 2,
        )
    assert set(FUSION_NAMES) <= set(FUSIONS)
