import numpy as np
import pytest
import torch

from lessonlib.calibration import LengthTemperatures, expected_calibration_error, fit_temperature, reliability


def calibrated_logits(n=4000, seed=0):
    """Two-class logits whose softmax is the true probability of the labels drawn from it."""
    g = torch.Generator().manual_seed(seed)
    margin = torch.randn(n, generator=g) * 2
    logits = torch.stack([torch.zeros(n), margin], 1)
    targets = (torch.rand(n, generator=g) < torch.sigmoid(margin)).long()
    return logits, targets


def test_fit_temperature_undoes_overconfidence():
    logits, targets = calibrated_logits()
    assert fit_temperature(logits, targets) == pytest.approx(1.0, abs=0.1)
    assert fit_temperature(3 * logits, targets) == pytest.approx(3.0, rel=0.1)


def test_fit_temperature_stops_at_its_bound_when_the_logits_carry_nothing():
    logits = torch.tensor([[0.0, 2.0]]).repeat(100, 1)  # the same answer whatever the label
    targets = torch.arange(100) % 2
    assert fit_temperature(logits, targets) == 100.0
    with pytest.raises(ValueError, match="no held-out"):
        fit_temperature(torch.zeros(0, 2), torch.zeros(0))


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    logits, targets = calibrated_logits()
    assert expected_calibration_error(logits.softmax(1), targets) < 0.03
    over = (5 * logits).softmax(1)
    assert expected_calibration_error(over, targets) > 0.1
    accuracy = (over.argmax(1) == targets).float().mean()
    assert accuracy == (logits.softmax(1).argmax(1) == targets).float().mean()  # scaling keeps every label


def test_reliability_bins_hold_every_answer_with_its_accuracy():
    probs = np.array([[0.45, 0.55], [0.05, 0.95], [0.9, 0.1], [0.02, 0.98]])
    table = reliability(probs, np.array([1, 1, 1, 1]), n_bins=5)
    assert table["count"].sum() == 4 and table["from"].iloc[0] == pytest.approx(0.5)
    assert table["accuracy"].tolist() == [1.0, 0.0, 1.0]  # bins 0.5-0.6, 0.8-0.9, 0.9-1.0
    assert table["confidence"].iloc[-1] == pytest.approx(0.965)
    assert expected_calibration_error(probs, [1, 1, 1, 1], n_bins=5) == pytest.approx(
        (0.45 + 0.9 + 2 * 0.035) / 4)


def test_length_temperatures_take_the_longest_fitted_length_not_above():
    temps = LengthTemperatures((2, 5, 100), (8.0, 3.0, 1.5))
    assert [temps.at(n) for n in (1, 2, 4, 5, 99, 100, 10_000)] == [8.0, 8.0, 8.0, 3.0, 3.0, 1.5, 1.5]
    with pytest.raises(ValueError, match="increase"):
        LengthTemperatures((5, 2), (1.0, 1.0))
    with pytest.raises(ValueError, match="one temperature per length"):
        LengthTemperatures((2,), ())


def test_length_temperatures_divide_each_row_by_its_lengths_temperature():
    temps = LengthTemperatures((2, 5), (4.0, 2.0))
    logits = torch.tensor([[0.0, 8.0], [0.0, 8.0]])
    probs = temps.probs(logits, [3, 50])  # T = 4 for 3 tokens, T = 2 for 50
    torch.testing.assert_close(probs, torch.softmax(torch.tensor([[0.0, 2.0], [0.0, 4.0]]), -1))
    with pytest.raises(ValueError, match="lengths for"):
        temps.probs(logits, [3])
