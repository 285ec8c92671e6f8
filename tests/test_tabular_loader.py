import pytest
import torch

from lessonlib.tabular.loader import TensorLoader


def test_loader_covers_every_row_once_in_seeded_order(batch):
    cats, conts = batch(n=10)
    y = torch.arange(10.0)
    shuffled = dict(batch_size=4, shuffle=True)
    loader = TensorLoader(cats, conts, y, **shuffled, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 3
    seen = torch.cat([yb for _, yb in loader])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    (xc, xn), yb = next(iter(TensorLoader(cats, conts, y, batch_size=4)))
    torch.testing.assert_close(xc, cats[:4])
    torch.testing.assert_close(yb, y[:4])
    again = TensorLoader(cats, conts, y, **shuffled, generator=torch.Generator().manual_seed(0))
    assert torch.cat([yb for _, yb in again]).tolist() == seen.tolist()
    assert len(TensorLoader(cats, conts, y, batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="row counts"):
        TensorLoader(cats, conts, y[:5], batch_size=4)


def test_shards_split_every_batch_in_training_and_every_row_once_in_validation():
    n, bs, world = 70, 4, 3
    cats, conts, y = torch.zeros(n, 1).long(), torch.zeros(n, 0), torch.arange(n).float()

    def loader(batch_size):
        gen = torch.Generator().manual_seed(0)
        return TensorLoader(cats, conts, y, batch_size, shuffle=True, generator=gen)

    whole = [b[1] for b in loader(bs * world)]  # one process at bs * world
    parts = [[b[1] for b in loader(bs).shard(r, world)] for r in range(world)]  # world processes at bs
    assert [len(p) for p in parts] == [n // (bs * world)] * world  # equal step counts: whole batches only
    for k, rows in enumerate(whole[: n // (bs * world)]):
        assert torch.equal(torch.cat([p[k] for p in parts]), rows)
    valid = TensorLoader(cats, conts, y, bs)
    rows = torch.cat([b[1] for r in range(world) for b in valid.shard(r, world, even=False)])
    assert torch.equal(rows, y)


def test_a_training_shard_too_small_for_one_batch_per_process_is_an_error_that_names_the_fix():
    cats, conts, y = torch.zeros(10, 1).long(), torch.zeros(10, 0), torch.arange(10).float()
    loader = TensorLoader(cats, conts, y, batch_size=4)
    assert len(loader.shard(0, 2)) == 1  # 8 of the 10 rows: one batch of 4 each
    with pytest.raises(ValueError, match="10 rows cannot give each of 3 processes one batch of 4: lower"):
        loader.shard(0, 3)
