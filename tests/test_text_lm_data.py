import numpy as np
import pytest
import torch

from lessonlib.text.lm_loader import LMLoader


def make_docs(seed=0, n=30):
    rng = np.random.default_rng(seed)
    start, docs = 0, []
    for _ in range(n):  # distinct consecutive ids, so every token's position in its doc is recoverable
        k = int(rng.integers(5, 60))
        docs.append(np.arange(start, start + k, dtype=np.int32))
        start += k
    return docs


@pytest.mark.parametrize("shuffle,jitter", [(False, 0), (True, 3)])
def test_rows_are_read_in_order_without_skips_or_repeats(shuffle, jitter):
    dl = LMLoader(make_docs(), bs=4, bptt=10, shuffle=shuffle, jitter=jitter, seed=1)
    for _epoch in range(2):
        batches = list(dl)
        assert len(batches) == len(dl)
        xs = torch.cat([x for x, _ in batches], dim=1)
        ys = torch.cat([y for _, y in batches], dim=1)
        assert xs.shape == (4, dl.row_len)  # every column read exactly once, in order
        assert torch.equal(xs[:, 1:], ys[:, :-1])  # every target is the next input
        for r in range(1, 4):  # row r starts where row r-1's last target ended
            assert xs[r, 0] == ys[r - 1, -1]


def test_batch_k_plus_1_continues_batch_k():
    dl = LMLoader(make_docs(), bs=3, bptt=8, shuffle=True, jitter=2)
    batches = list(dl)
    for (x0, y0), (x1, _) in zip(batches[:-1], batches[1:], strict=True):
        assert torch.equal(y0[:, -1], x1[:, 0])
        assert x0.size(0) == 3


def test_each_epoch_is_a_new_order_of_whole_documents():
    docs = make_docs()
    dl = LMLoader(docs, bs=1, bptt=10, shuffle=True, seed=3)
    firsts = {int(d[0]) for d in docs}
    epochs = [torch.cat([x for x, _ in dl], dim=1)[0] for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])
    for stream in epochs:
        starts = [int(t) for t in stream if int(t) in firsts]
        assert len(starts) >= len(docs) - 1  # all documents, each whole (the last may be cut)
        assert len(set(starts)) == len(starts)


def test_lengths_jitter_around_bptt():
    dl = LMLoader(make_docs(n=200), bs=2, bptt=20, shuffle=True, jitter=4)
    lengths = [x.size(1) for x, _ in dl]
    assert len(set(lengths)) > 1 and min(lengths) >= 12 and max(lengths) <= 28


def test_shards_partition_the_global_rows():
    docs = make_docs()
    full = torch.cat([x for x, _ in LMLoader(docs, bs=4, bptt=10)], dim=1)
    parts = [torch.cat([x for x, _ in LMLoader(docs, bs=2, bptt=10, rank=r, world_size=2)], dim=1)
             for r in range(2)]
    assert torch.equal(torch.cat(parts), full)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no documents"):
        LMLoader([], bs=2, bptt=10)
    with pytest.raises(ValueError, match="too few"):
        LMLoader([np.arange(5)], bs=4, bptt=10)
    with pytest.raises(ValueError, match="jitter"):
        LMLoader(make_docs(), bs=2, bptt=10, jitter=5)
