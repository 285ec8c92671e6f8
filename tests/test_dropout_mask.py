import torch

from lessonlib.layers.dropout_mask import dropout_mask, inverted_mask


def test_mask_is_reproducible_from_a_generator():
    a = dropout_mask((5, 5), 0.5, torch.Generator().manual_seed(3))
    b = dropout_mask((5, 5), 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}


def test_inverted_mask_is_scaled_in_the_activations_dtype_and_broadcasts():
    x = torch.ones(8, 5, 6, dtype=torch.bfloat16)
    mask = inverted_mask(x, (8, 1, 6), 0.5)  # one mask per sequence, the same at every step
    assert mask.shape == (8, 1, 6) and mask.dtype == torch.bfloat16
    assert set(mask.unique().tolist()) <= {0.0, 2.0}
