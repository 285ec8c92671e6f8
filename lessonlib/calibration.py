"""Are a classifier's probabilities to be believed? Measure it, and fix it with temperature scaling.

A network trained with cross-entropy until its training loss is small learns to push its logits far
apart: it says 0.999 where it is right four times in five. *Calibrated* means that among the answers
given with probability p, a fraction p is right. `reliability` bins answers by their confidence (the
probability of the chosen class) and compares each bin's mean confidence with its accuracy; the
expected calibration error (ECE) is the gap averaged over the answers.

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides every logit
by one number T > 1 fitted on held-out data (minimising the log loss there), so softmax(logits / T) is
less extreme. Dividing all logits by the same positive T never changes which class is largest: the
accuracy stays the same, only the confidence moves. `LengthTemperatures` holds one temperature per
input length, for a model whose confidence should depend on how much input it got (see
`lessonlib.text.confidence`).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

T_RANGE = (0.05, 100.0)  # a constant input (no signal) drives T to infinity: stop there


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The T minimising the cross-entropy of softmax(logits / T) on `targets` (held-out data).

    One parameter, fitted as log T (so T stays positive) with L-BFGS, clamped to `T_RANGE`."""
    logits, targets = torch.as_tensor(logits).detach().float(), torch.as_tensor(targets).long()
    if len(logits) == 0:
        raise ValueError("no held-out predictions to fit a temperature on")
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(*T_RANGE))


def reliability(probs, targets, n_bins: int = 10) -> pd.DataFrame:
    """One row per non-empty confidence bin (equal widths over [1/n_classes, 1]): the answers in it
    (`count`), their mean `confidence` and their `accuracy`: the reliability diagram's points."""
    probs = np.asarray(probs, dtype=np.float64)
    conf, correct = probs.max(1), probs.argmax(1) == np.asarray(targets)  # the chosen class's probability
    lowest = 1 / probs.shape[1]
    edges = np.linspace(lowest, 1, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    table = pd.DataFrame({"bin": bins, "confidence": conf, "accuracy": correct.astype(float)})
    out = table.groupby("bin").agg(count=("confidence", "size"), confidence=("confidence", "mean"),
                                   accuracy=("accuracy", "mean"))
    out.insert(0, "from", edges[out.index])
    out.insert(1, "to", edges[out.index + 1])
    return out.reset_index(drop=True)


def expected_calibration_error(probs, targets, n_bins: int = 10) -> float:
    """|accuracy - mean confidence| of each bin of `reliability`, weighted by its share of the answers."""
    table = reliability(probs, targets, n_bins)
    gaps = (table["accuracy"] - table["confidence"]).abs()
    return float((table["count"] * gaps).sum() / table["count"].sum())


@dataclass(frozen=True)
class LengthTemperatures:
    """Temperatures fitted at increasing input lengths (for text: tokens read, `xxbos` included)."""

    lengths: tuple
    temperatures: tuple

    def __post_init__(self):
        if len(self.lengths) != len(self.temperatures) or not self.lengths:
            raise ValueError("give one temperature per length, at least one")
        if list(self.lengths) != sorted(set(self.lengths)):
            raise ValueError(f"lengths must increase, got {self.lengths}")

    def at(self, n_tokens: int) -> float:
        """The temperature fitted at the longest length not above `n_tokens` (the shortest's below it):
        an input between two fitted lengths gets the more cautious, shorter one."""
        k = max(int(np.searchsorted(self.lengths, n_tokens, side="right")) - 1, 0)
        return float(self.temperatures[k])

    def probs(self, logits: torch.Tensor, n_tokens) -> torch.Tensor:
        """Calibrated class probabilities: each row's logits divided by the temperature `at` its
        length (`n_tokens`, one per row), then softmax."""
        t = torch.tensor([self.at(int(n)) for n in n_tokens])
        if len(t) != len(logits):
            raise ValueError(f"{len(t)} lengths for {len(logits)} rows of logits")
        return torch.softmax(logits.float() / t[:, None], dim=-1)
