"""How sure may the sentiment classifier be of a text of n tokens? Temperatures fitted by length.

Temperature scaling (`lessonlib.calibration`) fitted on whole validation reviews fixes the
probabilities of whole reviews. `predict` also meets a lone word, a few punctuation marks, half a
sentence: texts far shorter than anything the classifier was trained on, where it can still answer
0.99. So the temperature is fitted per length: each validation review is cut into random windows
of n tokens (`xxbos` plus n - 1 consecutive tokens, what a text of that length looks like to the
model), keeping the review's label, and a temperature is fitted on those windows for each n. Two
tokens of a review seldom decide its sentiment, so short windows get a high temperature and the
probability of a near-empty text stays near 0.5. Whole reviews get one temperature of their own,
fitted on the whole validation reviews, and every text longer than the longest window gets it: a
review shorter than most is still a whole review, not an excerpt, and given the longest window's
(higher) temperature instead it would come out less sure than it is right.
The winning class never changes, only how sure the model says it is.
"""

import numpy as np

from lessonlib.calibration import LengthTemperatures, fit_temperature
from lessonlib.text.classifier import predict_logits
from lessonlib.text.classifier_data import EVAL_BS, ClassificationDataset, classification_loader

WINDOW_LENGTHS = (2, 3, 5, 9, 17, 33, 65)  # tokens read, xxbos included
PER_REVIEW = 4  # windows of each length cut from every validation review


def windows(dataset: ClassificationDataset, length: int, per_review: int, seed: int) -> ClassificationDataset:
    """`per_review` random windows of each review: its first token (`xxbos`) plus `length - 1`
    consecutive tokens, with the review's label (a review no longer than `length`: itself)."""
    if length < 2:
        raise ValueError(f"a window needs xxbos and at least one token: length >= 2, got {length}")
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for review, label in zip(dataset.ids, dataset.labels, strict=True):
        if len(review) <= length:
            ids.append(review)
            labels.append(label)
            continue
        for _ in range(per_review):
            start = rng.integers(1, len(review) - length + 2)
            ids.append(np.concatenate([review[:1], review[start:start + length - 1]]))
            labels.append(label)
    return ClassificationDataset(ids, labels)


def window_logits(model, dataset: ClassificationDataset, length: int, pad_idx: int,
                  per_review: int = PER_REVIEW, seed: int = 0, bs: int = EVAL_BS):
    """(logits, targets) of the model on `windows(dataset, length, per_review, seed)`: what it answers,
    and how often rightly, when it reads only `length` tokens of each review."""
    part = windows(dataset, length, per_review, seed)
    logits, targets, _ = predict_logits(model, classification_loader(part, bs, pad_idx, train=False))
    return logits, targets


def fit_length_temperatures(model, dataset: ClassificationDataset, pad_idx: int,
                            lengths=WINDOW_LENGTHS, per_review: int = PER_REVIEW, seed: int = 0,
                            bs: int = EVAL_BS) -> LengthTemperatures:
    """A temperature for windows of each of `lengths` tokens of the (validation) reviews in `dataset`
    (`window_logits`), and one fitted on the whole reviews, which `LengthTemperatures.at` gives every
    text longer than the longest window (when the median review is longer than it). Only the
    validation reviews are read: the test reviews stay for measuring the result."""
    fitted = {}
    for k, n in enumerate(lengths):
        fitted[n] = fit_temperature(*window_logits(model, dataset, n, pad_idx, per_review, seed + k, bs))
    if np.median(dataset.lengths) > max(lengths):
        logits, targets, _ = predict_logits(model, classification_loader(dataset, bs, pad_idx, train=False))
        fitted[max(lengths) + 1] = fit_temperature(logits, targets)
    return LengthTemperatures(tuple(fitted), tuple(fitted.values()))
