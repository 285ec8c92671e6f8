"""The Learner's CUDA paths that CPU runs never take: fp16 autocast with the gradient scaler, exact
resume with the CUDA generators' state, pinned memory with non-blocking copies. Skipped without CUDA;
on a GPU machine run them first, in a minute: `pytest -m cuda tests`."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lessonlib.engine.learner import Learner, accuracy

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_fp16_with_the_gradient_scaler_learns_and_keeps_the_weights_finite(make_learner):
    learn = make_learner(amp="fp16")
    assert learn.device.type == "cuda" and learn.scaler.is_enabled()
    start = learn.evaluate()["loss"]
    learn.fit(3, 5e-2, show=False)
    assert learn.history["valid_loss"].iloc[-1] < 0.7 * start
    assert all(torch.isfinite(p).all() for p in learn.model.parameters()) and learn.scaler.get_scale() > 0


def test_resume_on_cuda_is_exact(tmp_path, make_learner, params, crash_then_load):
    straight = make_learner(seed=0, amp="fp16")
    straight.fit(2, 1e-2, show=False)
    resumed = crash_then_load(tmp_path / "ckpt.pt", amp="fp16")  # dropout's CUDA RNG comes from the file
    resumed.fit(2, 1e-2, show=False, start_epoch=resumed.epoch)
    assert all(torch.equal(a, b) for a, b in zip(params(straight.model), params(resumed.model), strict=True))


def test_pinned_batches_are_copied_to_the_gpu(make_data, two_groups):
    train = DataLoader(make_data(), batch_size=32, shuffle=True, pin_memory=True)
    valid = DataLoader(make_data(128, seed=1), batch_size=64, pin_memory=True)
    learn = Learner(two_groups(), (train, valid), F.cross_entropy, metrics={"acc": accuracy})
    learn.fit(2, 1e-2, show=False)
    assert next(learn.model.parameters()).is_cuda and learn.history["acc"].iloc[-1] > 0.6
