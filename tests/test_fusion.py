"""twostream.models.fusion: hand-computed outputs of every method (eqs. 1-5), shapes, registry."""

from __future__ import annotations

import pytest
import torch

from twostream.core.errors import UserError
from twostream.models.fusion import (
    FUSIONS,
    Fusion,
    build_fusion,
    fusion_out_channels,
    is_parameter_free,
    register_fusion,
)

BUILTINS = ["sum", "max", "concat", "concat_interleaved", "conv"]

# One sample, C=2 channels, 2x2 grid. a = spatial stream, b = temporal stream.
A = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]])  # (1, 2, 2, 2)
B = torch.tensor([[[[8.0, 1.0], [0.0, -4.0]], [[-5.0, 9.0], [2.0, 3.0]]]])  # (1, 2, 2, 2)


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_registry_holds_the_paper_methods():
    assert set(BUILTINS) <= set(FUSIONS)


def test_sum_by_hand():
    y = build_fusion("sum", channels=2)(A, B)
    assert torch.equal(y, t([[[[9, 3], [3, 0]], [[0, 15], [9, 11]]]]))


def test_single_stream_fusions_pass_one_stream_through():
    assert torch.equal(build_fusion("spatial", channels=2)(A, B), A)
    assert torch.equal(build_fusion("temporal", channels=2)(A, B), B)
    a = torch.randn(2, 3, 4, 3, 3, requires_grad=True)
    b = torch.randn(2, 3, 4, 3, 3, requires_grad=True)
    build_fusion("temporal", channels=4)(a, b).sum().backward()
    assert a.grad is None and torch.equal(b.grad, torch.ones_like(b))
    assert is_parameter_free("spatial") and is_parameter_free("temporal")
    assert fusion_out_channels("spatial", channels=7) == 7


def test_max_by_hand():
    y = build_fusion("max", channels=2)(A, B)
    assert torch.equal(y, t([[[[8, 2], [3, 4]], [[5, 9], [7, 8]]]]))


def test_concat_blocks_eq4_by_hand():
    y = build_fusion("concat", channels=2)(A, B)
    expected = t(
        [
            [
                [[1, 2], [3, 4]],
                [[5, 6], [7, 8]],  # a_1, a_2
                [[8, 1], [0, -4]],
                [[-5, 9], [2, 3]],
            ]
        ]
    )  # b_1, b_2
    assert torch.equal(y, expected)


def test_concat_interleaved_eq3_b_first_by_hand():
    # Eq. 3 (1-based): y_{2c} = a_c, y_{2c-1} = b_c  ->  order b_1, a_1, b_2, a_2.
    y = build_fusion("concat_interleaved", channels=2)(A, B)
    expected = t(
        [
            [
                [[8, 1], [0, -4]],
                [[1, 2], [3, 4]],  # b_1, a_1
                [[-5, 9], [2, 3]],
                [[5, 6], [7, 8]],
            ]
        ]
    )  # b_2, a_2
    assert torch.equal(y, expected)


def test_conv_by_hand():
    fusion = build_fusion("conv", channels=2)
    with torch.no_grad():
        # rows: output channels; columns: [a_1, a_2, b_1, b_2] (eq. 4 order)
        fusion.weight.copy_(t([[1, 0, 2, 0], [0, -1, 0, 1]]))
        fusion.bias.copy_(t([0.5, -1]))
    y = fusion(A, B)
    expected = t(
        [
            [
                [[17.5, 4.5], [3.5, -3.5]],  # a_1 + 2 b_1 + 0.5
                [[-11, 2], [-6, -6]],
            ]
        ]
    )  # -a_2 + b_2 - 1
    assert torch.allclose(y, expected)


def test_conv_starts_as_sum_and_default_init_differs():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.allclose(build_fusion("conv", channels=3)(a, b), a + b, atol=1e-6)
    assert not torch.allclose(build_fusion("conv", channels=3, init="default")(a, b), a + b)
    with pytest.raises(ValueError, match="init"):
        build_fusion("conv", channels=3, init="nope")


def test_vectors_by_hand():
    a, b = t([[1, -2]]), t([[3, 4]])  # (N=1, C=2): FC-layer features
    assert torch.equal(build_fusion("sum", channels=2)(a, b), t([[4, 2]]))
    assert torch.equal(build_fusion("max", channels=2)(a, b), t([[3, 4]]))
    assert torch.equal(build_fusion("concat", channels=2)(a, b), t([[1, -2, 3, 4]]))
    assert torch.equal(build_fusion("concat_interleaved", channels=2)(a, b), t([[3, 1, 4, -2]]))
    conv = build_fusion("conv", channels=2)
    with torch.no_grad():
        conv.weight.copy_(t([[1, 0, 2, 0], [0, -1, 0, 1]]))
        conv.bias.copy_(t([0.5, -1]))
    assert torch.allclose(conv(a, b), t([[7.5, 5]]))


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("shape", [(2, 8, 4, 4), (2, 8), (2, 3, 8, 4, 4), (2, 3, 8)])
def test_shapes_and_channels(name, shape):
    fusion = build_fusion(name, channels=8)
    expected_c = {"concat": 16, "concat_interleaved": 16}.get(name, 8)
    assert fusion.out_channels == expected_c == fusion_out_channels(name, channels=8)
    a, b = torch.randn(shape), torch.randn(shape)
    y = fusion(a, b)
    cdim = 2 if len(shape) in (3, 5) else 1
    expected = list(shape)
    expected[cdim] = expected_c
    assert list(y.shape) == expected
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", BUILTINS)
def test_time_axis_is_folded_per_step(name):
    torch.manual_seed(0)
    fusion = build_fusion(name, channels=4)
    a, b = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)  # (B, T, C, H, W)
    y = fusion(a, b)
    for step in range(3):
        assert torch.allclose(y[:, step], fusion(a[:, step], b[:, step]), atol=1e-6)


@pytest.mark.parametrize("name", BUILTINS)
def test_gradients_reach_inputs_and_parameters(name):
    fusion = build_fusion(name, channels=4)
    a = torch.randn(2, 3, 4, 3, 3, requires_grad=True)
    b = torch.randn(2, 3, 4, 3, 3, requires_grad=True)
    (fusion(a, b) ** 2).sum().backward()
    for g in [a.grad, b.grad, *(p.grad for p in fusion.parameters())]:
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert is_parameter_free(name) == (len(list(fusion.parameters())) == 0)


def test_parameter_free_flags():
    assert [n for n in BUILTINS if is_parameter_free(n)] == [
        "sum",
        "max",
        "concat",
        "concat_interleaved",
    ]


def test_unknown_name_lists_known():
    known = "concat, concat_interleaved, conv, max, spatial, sum, temporal"
    with pytest.raises(UserError, match=f"unknown fusion method 'avg'.*{known}"):
        build_fusion("avg", channels=4)
    with pytest.raises(UserError, match="known methods"):
        is_parameter_free("avg")


def test_bad_inputs_fail_clearly():
    fusion = build_fusion("sum", channels=2)
    with pytest.raises(ValueError, match="differ in shape"):
        fusion(A, B[:, :, :1])
    with pytest.raises(ValueError, match="built for 2 channels"):
        fusion(torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="expected"):
        fusion(torch.randn(2), torch.randn(2))


def test_register_user_fusion():
    @register_fusion("test_mean")
    class MeanFusion(Fusion):
        def fuse(self, a, b):
            return (a + b) / 2

    try:
        fusion = build_fusion("test_mean", channels=2)
        assert torch.equal(fusion(A, B), (A + B) / 2)
        assert is_parameter_free("test_mean") and fusion.out_channels == 2
        with pytest.raises(ValueError, match="already registered"):
            register_fusion("sum")(MeanFusion)
    finally:
        FUSIONS.pop("test_mean", None)
