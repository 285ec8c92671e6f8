import numpy as np
import pytest
import torch
from torch import nn

from lessonlib.text.classifier_data import ClassificationDataset
from lessonlib.text.confidence import WINDOW_LENGTHS, fit_length_temperatures, window_logits, windows

BOS, PAD, GOOD, BAD = 2, 1, 5, 6


def test_windows_are_xxbos_plus_consecutive_tokens_with_the_review_label():
    reviews = [np.array([BOS, *range(10, 30)]), np.array([BOS, 7, 8])]
    part = windows(ClassificationDataset(reviews, [1, 0]), length=4, per_review=3, seed=0)
    assert len(part) == 3 + 1 and part.labels.tolist() == [1, 1, 1, 0]  # the short review once, whole
    for ids in part.ids[:3]:
        assert ids[0] == BOS and len(ids) == 4 and np.all(np.diff(ids[1:]) == 1)
    assert part.ids[3].tolist() == [BOS, 7, 8]
    assert any(ids[-1] == 29 for ids in windows(ClassificationDataset(reviews[:1], [1]), 4, 200, 1).ids)
    with pytest.raises(ValueError, match="length >= 2"):
        windows(ClassificationDataset(reviews, [1, 0]), length=1, per_review=1, seed=0)


class WordCounter(nn.Module):
    """Votes GOOD against BAD tokens and answers with the same margin whatever the count: as sure of
    one sentiment word as of a dozen, like a network trained only on whole reviews."""

    def forward(self, tokens):
        score = 10.0 * torch.sign((tokens == GOOD).sum(1) - (tokens == BAD).sum(1)).float()
        return torch.stack([torch.zeros_like(score), score], 1)


def noisy_reviews(n=200, length=120, seed=0):
    """Reviews where 1 token in 10 carries sentiment, the label's word 4 times in 5."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    ids = []
    for label in labels:
        review = rng.integers(10, 50, size=length)
        marked = rng.random(length) < 0.1
        right = rng.random(length) < 0.8
        review[marked] = np.where(right[marked] == bool(label), GOOD, BAD)
        ids.append(np.concatenate([[BOS], review]))
    return ClassificationDataset(ids, labels)


def test_short_windows_get_a_higher_temperature_than_whole_reviews():
    temps = fit_length_temperatures(WordCounter(), noisy_reviews(n=1000), PAD, seed=0)
    whole = max(WINDOW_LENGTHS) + 1  # the whole reviews' temperature: for any text past the windows
    assert temps.lengths == (*WINDOW_LENGTHS, whole)
    # one sentiment word is right 4 times in 5: p = 0.8 means T = 10 / log(4)
    assert temps.at(2) == pytest.approx(10 / np.log(4), rel=0.25)
    assert temps.at(121) < temps.at(2) / 2 and temps.at(5000) == temps.at(121) == temps.at(whole)


def test_a_review_shorter_than_most_gets_the_whole_review_temperature():
    reviews = noisy_reviews(n=1000, length=120)
    short = noisy_reviews(n=100, length=80, seed=1)  # a tenth of the reviews: the median stays 121
    both = ClassificationDataset([*reviews.ids, *short.ids], [*reviews.labels, *short.labels])
    temps = fit_length_temperatures(WordCounter(), both, PAD, seed=0)
    assert temps.at(81) == temps.at(121) < temps.at(max(WINDOW_LENGTHS))


def test_window_logits_score_each_window_with_its_reviews_label():
    reviews = noisy_reviews(n=20, length=60)
    logits, targets = window_logits(WordCounter(), reviews, length=9, pad_idx=PAD, per_review=3, seed=0)
    assert logits.shape == (20 * 3, 2)
    assert targets.tolist() == np.repeat(reviews.labels, 3).tolist()
