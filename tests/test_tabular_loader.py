import pytest
import torch
from test_tabular_model import batch

from lessonlib.tabular.loader import TensorLoader


def test_loader_covers_every_row_once_in_seeded_order():
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
