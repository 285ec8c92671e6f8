import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lessonlib.engine.callbacks import Callback, GradientClip, GradNorm
from lessonlib.engine.learner import Learner


def test_clipping_bounds_the_global_grad_norm(make_learner):
    norms = []

    class Spy(torch.optim.AdamW):
        def step(self, closure=None):
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
            return super().step(closure)

    make_learner(opt_func=Spy).fit(1, 1e-2, show=False)
    unclipped = max(norms)
    norms.clear()
    clip = unclipped / 10
    make_learner(opt_func=Spy, callbacks=[GradientClip(clip)]).fit(1, 1e-2, show=False)
    assert max(norms) <= clip * (1 + 1e-5)


def test_grad_norm_records_the_norm_before_clipping_every_step(make_learner):
    norms = GradNorm()
    learn = make_learner(callbacks=[GradientClip(1e-3), norms])  # the clip listed first, run last
    learn.fit(1, 1e-3, show=False)
    assert len(norms.norms) == len(learn.train_dl) and min(norms.norms) > 1e-3  # before clipping

    class Check(GradNorm):  # the recorded value is the norm clip_grad_norm_ measures
        def after_backward(self, learn):
            super().after_backward(learn)
            measured = nn.utils.clip_grad_norm_(learn.model.parameters(), float("inf"))
            assert self.norms[-1] == pytest.approx(float(measured), rel=1e-5)

    make_learner(callbacks=[Check()]).fit(1, 1e-3, show=False)


def test_nan_loss_stops_with_epoch_batch_and_advice(make_data, two_groups):
    ds = make_data(64)
    ds.tensors[0][40] = float("nan")  # batch 5 of 8 (batch size 8, no shuffle)
    torch.manual_seed(0)
    learn = Learner(two_groups(), (DataLoader(ds, batch_size=8), None), F.cross_entropy)
    with pytest.raises(FloatingPointError, match=r"epoch 0, batch 5.*Lower the learning rate"):
        learn.fit(1, 1e-2, show=False)
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())  # stopped before the step


def test_the_readme_callback_example_scales_only_the_training_loss(make_data, two_groups):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"```python\n(class ScaleLoss.*?)```", readme, re.S).group(1)
    torch.manual_seed(0)
    model = two_groups(p=0.0)
    train_dl = DataLoader(make_data(64), batch_size=16)
    valid_dl = DataLoader(make_data(32, seed=1), batch_size=16)
    namespace = {"Callback": Callback, "Learner": Learner, "F": F, "model": model, "train_dl": train_dl,
                 "valid_dl": valid_dl}
    exec(example, namespace)
    learn, plain = namespace["learn"], Learner(model, (train_dl, valid_dl), F.cross_entropy)
    assert learn.evaluate()["loss"] == pytest.approx(plain.evaluate()["loss"])
    seen = []

    class Loss(Callback):
        order = 1  # after ScaleLoss

        def after_loss(self, learn):
            if learn.training:
                seen.append(learn.loss.item())

    learn.callbacks.append(Loss())
    with torch.no_grad():
        x, y = next(iter(train_dl))
        expected = 2 * F.cross_entropy(model(x), y).item()
    learn.fit(1, 0.0, schedule="constant", show=False)
    assert seen[0] == pytest.approx(expected, rel=1e-5)
