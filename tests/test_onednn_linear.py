"""OneDNNLinear: nn.Linear's results and gradients; plain nn.Linear wherever oneDNN does not apply."""

import pytest
import torch
from torch import nn

from lessonlib import onednn_linear
from lessonlib.onednn_linear import OneDNNLinear, onednn_applies

needs_onednn = pytest.mark.skipif(onednn_linear._OP is None or not torch.backends.mkldnn.is_available(),
                                  reason="this torch has no oneDNN linear op")


def pair(n_in=37, n_out=19, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = nn.Linear(n_in, n_out, bias=bias)
    fast = OneDNNLinear(n_in, n_out, bias=bias)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(64, 37), (4, 9, 37)])
def test_forward_and_gradients_match_nn_linear(bias, shape):
    ref, fast = pair(bias=bias)
    x = torch.randn(*shape)
    x_ref, x_fast = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_fast = ref(x_ref), fast(x_fast)
    assert y_fast.shape == y_ref.shape
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y_fast.backward(g)
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    if bias:
        torch.testing.assert_close(fast.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-5)


@needs_onednn
def test_oneDNN_path_is_taken_for_fp32_cpu(monkeypatch):
    calls = []
    real = onednn_linear._OP
    monkeypatch.setattr(onednn_linear, "_OP", lambda *a: calls.append(1) or real(*a))
    _, fast = pair()
    fast(torch.randn(5, 37, requires_grad=True)).sum().backward()
    assert len(calls) == 3  # forward, grad of the input, grad of the weight


def test_falls_back_to_nn_linear_exactly_outside_fp32_cpu():
    ref, fast = pair()
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
    assert isinstance(fast, nn.Linear)
