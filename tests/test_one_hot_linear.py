"""OneHotLinear: nn.Linear on one-hot codes and continuous inputs, without the one-hot vectors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lessonlib.layers.one_hot_linear import OneHotLinear


def explicit(codes, conts, cards):
    return torch.cat([*(F.one_hot(codes[:, i], c).float() for i, c in enumerate(cards)), conts], dim=1)


def test_outputs_and_gradients_are_those_of_linear_on_the_one_hot_vectors():
    torch.manual_seed(0)
    cards = [4, 1, 6]
    layer = OneHotLinear(cards, 3, 5)
    plain = nn.Linear(4 + 1 + 6 + 3, 5)
    plain.load_state_dict(layer.state_dict())
    codes = torch.stack([torch.randint(0, c, (32,)) for c in cards], dim=1)
    conts = torch.randn(32, 3)
    target = torch.randn(32, 5)
    F.mse_loss(layer(codes, conts), target).backward()
    F.mse_loss(plain(explicit(codes, conts, cards)), target).backward()
    torch.testing.assert_close(layer(codes, conts), plain(explicit(codes, conts, cards)))
    torch.testing.assert_close(layer.weight.grad, plain.weight.grad)
    torch.testing.assert_close(layer.bias.grad, plain.bias.grad)


def test_a_code_outside_its_column_is_an_error_not_its_neighbours_weight():
    layer = OneHotLinear([3, 2], 0, 4)
    with pytest.raises(IndexError, match="column 0 has a code outside range\\(3\\)"):
        layer(torch.tensor([[3, 0]]), torch.zeros(1, 0))
    with pytest.raises(ValueError, match="expected 2 categorical columns"):
        layer(torch.tensor([[0]]), torch.zeros(1, 0))
