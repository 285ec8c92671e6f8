import numpy as np
import pytest
import torch
from torch import nn

from lessonlib.text.classifier import (
    BucketSampler,
    ChunkedEncoder,
    ClassificationDataset,
    PoolingHead,
    SortedSampler,
    TextClassifier,
    classification_loader,
    concat_pool,
    pad_collate,
    padding_fraction,
)

PAD = 1


class TinyEncoder(nn.Module):
    """Stands in for the LM encoder: (tokens, hidden) -> (outputs, hidden), batch first."""

    def __init__(self, vocab=30, d=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.rnn = nn.LSTM(d, d, batch_first=True)
        self.calls = []

    def forward(self, tokens, hidden=None):
        self.calls.append(tokens.shape[1])
        return self.rnn(self.emb(tokens), hidden)


def random_reviews(n, seed=0, low=2, high=200):
    rng = np.random.default_rng(seed)
    return [rng.integers(2, 30, size=rng.integers(low, high)) for _ in range(n)]


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


def test_loader_batches_cover_the_dataset_and_validation_is_deterministic():
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
    with pytest.raises(ValueError, match="no tokens"):
        ClassificationDataset([np.arange(3), np.array([], dtype=int)], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        ClassificationDataset([np.arange(3)], [0, 1])


def test_concat_pool_ignores_padding_positions():
    torch.manual_seed(0)
    outputs = torch.randn(3, 6, 4)
    mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    last = torch.randn(3, 4)
    pooled = concat_pool(outputs, mask, last)
    garbage = outputs.clone()
    garbage[~mask] = 1e6 * torch.randn(int((~mask).sum()), 4)  # huge values where padding is
    assert torch.allclose(concat_pool(garbage, mask, last), pooled)
    for row in range(3):
        real = outputs[row][mask[row]]
        assert torch.allclose(pooled[row, 4:8], real.max(0).values)
        assert torch.allclose(pooled[row, 8:], real.mean(0))


def test_padding_never_changes_the_classifier_output():
    torch.manual_seed(0)
    model = TextClassifier(TinyEncoder(), d=8, pad_idx=PAD, bptt=5, max_len=12).eval()
    review = torch.randint(2, 30, (1, 17))
    alone = model(review)
    padded = torch.cat([review, torch.full((1, 23), PAD)], dim=1)
    other = torch.randint(2, 30, (1, 40))
    together = model(torch.cat([padded, other]))
    assert torch.allclose(together[0], alone[0], atol=1e-6)


def test_chunked_encoder_keeps_only_the_last_max_len_tokens_and_runs_every_chunk():
    torch.manual_seed(0)
    enc = TinyEncoder()
    chunked = ChunkedEncoder(enc, pad_idx=PAD, bptt=10, max_len=25)
    tokens = torch.randint(2, 30, (2, 103))
    tokens[1, 60:] = PAD
    outputs, mask, last = chunked(tokens)
    assert sum(enc.calls) == 103 and max(enc.calls) == 10  # all of it, 10 at a time
    assert mask.sum(1).tolist() == [25, 25]
    full, _ = enc.rnn(enc.emb(tokens))  # one pass over everything gives the same numbers
    assert torch.allclose(last[0], full[0, 102], atol=1e-5)
    assert torch.allclose(last[1], full[1, 59], atol=1e-5)
    kept = outputs.shape[1]
    assert torch.allclose(outputs[0][mask[0]], full[0, 78:103], atol=1e-5)
    assert kept <= 103 - 60 + 25 + 10


def test_early_chunks_carry_no_gradient():
    torch.manual_seed(0)
    model = TextClassifier(TinyEncoder(), d=8, pad_idx=PAD, bptt=10, max_len=10)
    tokens = torch.randint(2, 30, (2, 50))
    model(tokens).sum().backward()
    grad = model.encoder.emb.weight.grad
    early_only = set(tokens[:, :40].flatten().tolist()) - set(tokens[:, 40:].flatten().tolist())
    assert all(grad[t].abs().sum() == 0 for t in early_only)
    assert grad[tokens[0, -1]].abs().sum() > 0


def test_a_100_000_token_review_works_with_bounded_memory():
    torch.manual_seed(0)
    model = TextClassifier(TinyEncoder(), d=8, pad_idx=PAD, bptt=200, max_len=100).train()
    tokens = torch.randint(2, 30, (2, 100_000))
    scores = model(tokens)
    assert scores.shape == (2, 2) and torch.isfinite(scores).all()
    scores.sum().backward()  # the graph only spans the kept window


def test_all_padding_row_fails_clearly():
    model = TextClassifier(TinyEncoder(), d=8, pad_idx=PAD)
    with pytest.raises(ValueError, match="all padding"):
        model(torch.tensor([[5, 6], [PAD, PAD]]))


def test_pooling_head_shapes_and_layers():
    head = PoolingHead(d=8, n_classes=3, hidden=5)
    kinds = [type(m).__name__ for m in head.layers]
    assert kinds == ["BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]
    out = head(torch.randn(4, 7, 8), torch.ones(4, 7, dtype=torch.bool), torch.randn(4, 8))
    assert out.shape == (4, 3)


def test_layer_groups_end_with_the_head():
    model = TextClassifier(TinyEncoder(), d=8, pad_idx=PAD)
    groups = model.layer_groups()
    assert groups[-1] is model.head
    n_params = sum(p.numel() for g in groups for p in g.parameters())
    assert n_params == sum(p.numel() for p in model.parameters())
