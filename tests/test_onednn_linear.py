"""OneDNNLinear: nn.Linear's results and gradients; plain nn.Linear wherever oneDNN does not apply."""

import pytest
import torch
from torch import nn

from lessonlib.layers import onednn_linear
from lessonlib.layers.onednn_linear import OneDNNLinear, onednn_applies

needs_onednn = pytest.mark.skipif(onednn_linear._OP is None or not torch.backends.mkldnn.is_available(),
                                  reason="this torch has no oneDNN linear op")


def pair(n_in=37, n_out=19, bias=True, seed=0, relu=False):
    torch.manual_seed(seed)
    linear = nn.Linear(n_in, n_out, bias=bias)
    ref = nn.Sequential(linear, nn.ReLU()) if relu else linear
    fast = OneDNNLinear(n_in, n_out, bias=bias, relu=relu)
    fast.load_state_dict(linear.state_dict())
    return ref, fast


@needs_onednn
@pytest.mark.parametrize("amd", [True, False])  # the backward products by oneDNN (AVX-512 AMD), or MKL
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(64, 37), (4, 9, 37)])
def test_forward_and_gradients_match_nn_linear(bias, shape, relu, amd, monkeypatch):
    monkeypatch.setattr(onednn_linear, "USE_ONEDNN", amd)
    ref, fast = pair(bias=bias, relu=relu)
    linear = ref[0] if relu else ref
    x = torch.randn(*shape)
    x_ref, x_fast = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_fast = ref(x_ref), fast(x_fast)
    assert y_fast.shape == y_ref.shape
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y_fast.backward(g)
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, linear.weight.grad, rtol=1e-4, atol=1e-4)
    if bias:
        torch.testing.assert_close(fast.bias.grad, linear.bias.grad, rtol=1e-4, atol=1e-5)
    if relu:
        assert (y_fast == 0).any() and (x_fast.grad != 0).any()  # some outputs cut, gradients flow


@needs_onednn
@pytest.mark.parametrize("amd, products", [(True, 3), (False, 1)])
def test_oneDNN_computes_the_forward_and_on_avx512_amd_the_backward(monkeypatch, amd, products):
    monkeypatch.setattr(onednn_linear, "USE_ONEDNN", amd)
    calls = []
    real = onednn_linear._OP
    monkeypatch.setattr(onednn_linear, "_OP", lambda *a: calls.append(1) or real(*a))
    _, fast = pair()
    fast(torch.randn(5, 37, requires_grad=True)).sum().backward()
    assert len(calls) == products  # forward (and on AVX-512 AMD the input's and the weight's gradients)


@pytest.mark.parametrize("relu", [False, True])
def test_falls_back_to_nn_linear_exactly_outside_fp32_cpu(relu):
    ref, fast = pair(relu=relu)
    x = torch.randn(8, 37)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn_applies(x)
        assert torch.equal(fast(x), ref(x))
    ref64, fast64 = ref.double(), fast.double()
    assert not onednn_applies(x.double())
    assert torch.equal(fast64(x.double()), ref64(x.double()))


def test_state_dict_interchangeable_with_nn_linear():
    ref, fast = pair()
    assert list(fast.state_dict()) == list(ref.state_dict())
    assert isinstance(fast, nn.Linear) and "relu" in repr(OneDNNLinear(2, 3, relu=True))
