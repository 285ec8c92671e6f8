import numpy as np
import pytest
import torch

from lessonlib.text.classifier_data import (
    BucketSampler,
    ClassificationDataset,
    SortedSampler,
    classification_loader,
    imdb_classifier_data,
    pad_collate,
    padding_fraction,
)

PAD = 1




def test_bucket_sampler_yields_every_review_once_per_epoch_in_new_orders():
    lengths = np.random.default_rng(0).integers(1, 500, size=1003)
    sampler = BucketSampler(lengths, bs=16, bucket=10, seed=0)
    epochs = [list(sampler) for _ in range(2)]
    for batches in epochs:
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(1003))
        assert len(batches) == len(sampler) and all(len(b) <= 16 for b in batches)
    assert epochs[0] != epochs[1]


def test_bucketing_pads_far_less_than_random_batches():
    lengths = np.random.default_rng(1).lognormal(5, 0.7, size=2000).astype(int) + 1
    bucketed = padding_fraction(lengths, BucketSampler(lengths, bs=32, seed=0))
    perm = np.random.default_rng(2).permutation(len(lengths))
    random_batches = [perm[i : i + 32] for i in range(0, len(perm), 32)]
    shuffled = padding_fraction(lengths, random_batches)
    assert bucketed < shuffled / 3  # a few long reviews in the tail still pad their batch


def test_sorted_sampler_is_sorted_by_decreasing_length_and_complete():
    lengths = np.random.default_rng(3).integers(1, 100, size=101)
    batches = list(SortedSampler(lengths, bs=8))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(101))
    assert all(np.diff(lengths[flat]) <= 0)


def test_padding_fraction_counts_pads():
    assert padding_fraction([4, 2, 3, 3], [[0, 1], [2, 3]]) == pytest.approx(2 / 14)


def test_pad_collate_pads_at_the_end():
    tokens, labels = pad_collate([(np.array([5, 6, 7]), 1), (np.array([8]), 0)], pad_idx=PAD)
    assert tokens.tolist() == [[5, 6, 7], [8, PAD, PAD]]
    assert labels.tolist() == [1, 0]


def test_loader_batches_cover_the_dataset_and_validation_is_deterministic(random_reviews):
    ds = ClassificationDataset(random_reviews(50), np.arange(50) % 2)
    train = classification_loader(ds, bs=8, pad_idx=PAD, train=True, seed=0)
    seen = []
    for x, y in train:
        assert x.shape[0] == y.shape[0] <= 8
        seen += [int(v) for v in y]
    assert len(seen) == 50
    valid = classification_loader(ds, bs=8, pad_idx=PAD, train=False)
    first = [x for x, _ in valid]
    assert all(torch.equal(a, b) for a, b in zip(first, [x for x, _ in valid], strict=True))
    assert [x.shape[1] for x in first] == sorted([x.shape[1] for x in first], reverse=True)


def test_dataset_caps_length_and_rejects_bad_input():
    ds = ClassificationDataset([np.arange(10), np.arange(3)], [0, 1], max_tokens=4)
    assert ds.lengths.tolist() == [4, 3]
    assert ds[0][0].tolist() == [0, 7, 8, 9] and ds[1][0].tolist() == [0, 1, 2]  # xxbos + the end
    assert ClassificationDataset([np.arange(10)], [0], max_tokens=1)[0][0].tolist() == [0]
    with pytest.raises(ValueError, match="no tokens"):
        ClassificationDataset([np.arange(3), np.array([], dtype=int)], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        ClassificationDataset([np.arange(3)], [0, 1])


def test_dataset_cap_turns_a_huge_review_into_a_short_one():
    ds = ClassificationDataset([np.full(100_000, 5), np.full(7, 6)], [1, 0], max_tokens=300)
    tokens, _ = next(iter(classification_loader(ds, bs=2, pad_idx=PAD, train=False)))
    assert tokens.shape == (2, 300)


def test_bucket_sampler_never_leaves_a_batch_of_one():
    sampler = BucketSampler(np.arange(33), bs=16, bucket=1, seed=0)
    sizes = sorted(len(b) for b in sampler)
    assert sizes == [16, 17] and len(sampler) == 2


def test_subset_takes_equal_classes_seeded_and_keeps_valid_and_test(toy_data):
    data = toy_data(16)
    data.train_texts = [f"t{i}" for i in range(16)]
    sub = data.subset(6, seed=1)
    assert len(sub.train) == 6 and np.bincount(sub.train.labels).tolist() == [3, 3]
    assert sub.valid is data.valid and sub.test is data.test
    assert [int(t[1:]) % 2 for t in sub.train_texts] == sub.train.labels.tolist()  # texts follow the rows
    assert sub.train_texts == data.subset(6, seed=1).train_texts != data.subset(6, seed=2).train_texts
    with pytest.raises(ValueError, match="equal parts"):
        data.subset(7)
    with pytest.raises(ValueError, match="cannot take 18"):
        data.subset(18)


def test_imdb_classifier_data_carves_validation_from_train(monkeypatch, tmp_path, small_vocab):
    import pandas as pd

    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path))

    def fake_reviews(size, split):
        return pd.DataFrame({"text": [f"{split} movie {i}" for i in range(10)], "label": np.arange(10) % 2})

    monkeypatch.setattr("lessonlib.text.classifier_data.imdb_reviews", fake_reviews)
    data = imdb_classifier_data(small_vocab(), "sample", n_valid=4, n_workers=1)
    assert len(data.train) == 6 and len(data.valid) == 4 and len(data.test) == 10
    assert np.bincount(data.valid.labels).tolist() == [2, 2]  # as many of each class
    assert not set(data.train_texts) & set(data.valid_texts)
    assert set(data.train_texts) | set(data.valid_texts) == {f"train movie {i}" for i in range(10)}
    assert data.test_texts[0] == "test movie 0"
    assert imdb_classifier_data(small_vocab(), n_workers=1).valid is None
