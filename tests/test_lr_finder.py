import pytest
import torch
import torch.nn.functional as F

from lessonlib.engine.callbacks import Callback, GradientClip
from lessonlib.engine.learner import Learner


def test_lr_find_leaves_model_optimizer_and_rng_unchanged(make_learner, params):
    learn = make_learner()
    learn.fit(1, 1e-2, show=False)
    before, opt_state = params(learn.model), learn.opt.state_dict()["state"][0]["exp_avg"].clone()
    rng = torch.get_rng_state()
    lr = learn.lr_find(num_it=30, show=True)
    assert all(torch.equal(a, b) for a, b in zip(before, params(learn.model), strict=True))
    assert torch.equal(opt_state, learn.opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(rng, torch.get_rng_state())
    res = learn.lr_find_results
    assert 1e-7 <= lr <= 10 and lr == float(f'{res["lr"][res["loss"].idxmin()] / 10:.2g}')
    assert res["lr"].is_monotonic_increasing and len(res) <= 30


def test_lr_find_runs_through_fit_so_every_callback_sees_its_events(make_learner):
    events = []

    class Spy(Callback):
        def before_fit(self, learn):
            events.append("before_fit")

        def before_epoch(self, learn):
            events.append("before_epoch")

        def after_batch(self, learn):
            events.append("batch")

        def cleanup_fit(self, learn):
            events.append("cleanup_fit")

    learn = make_learner(callbacks=[Spy()])
    learn.lr_find(num_it=12, show=False)  # 8 batches an epoch: two epochs' starts
    assert events[:2] == ["before_fit", "before_epoch"] and events.count("batch") <= 12
    assert events.count("before_epoch") == 2 and events[-1] == "cleanup_fit"


def test_lr_find_puts_back_the_mode_the_hidden_state_the_history_and_the_loader(loaders, two_groups):
    class Stateful(two_groups):
        """Carries a plain tensor from one batch to the next, as an LSTM's hidden state."""

        def __init__(self):
            super().__init__()
            self.state = None

        def forward(self, x):
            self.state = x.mean(0).detach() if self.state is None else 0.5 * self.state + x.mean(0).detach()
            return super().forward(x + self.state)

        def reset(self):
            self.state = None

    torch.manual_seed(0)
    learn = Learner(Stateful(), loaders(), F.cross_entropy, callbacks=[GradientClip(1.0)])
    learn.fit(1, 1e-2, show=False)
    learn.model.eval()
    state, history, epoch = learn.model.state.clone(), learn.history.copy(), learn.epoch
    gen_state = learn.train_dl.generator.get_state()
    loop = {k: getattr(learn, k) for k in ("show", "n_iter", "iter", "batch", "y", "pred", "loss")}
    learn.lr_find(num_it=20, show=False)
    assert not learn.model.training and torch.equal(state, learn.model.state)
    for name, before in loop.items():  # the last batch, its loss, the loop's position
        after = getattr(learn, name)
        same = all(map(torch.equal, before, after)) if name == "batch" else (
            torch.equal(before, after) if isinstance(before, torch.Tensor) else before == after)
        assert same, f"lr_find changed learn.{name}"
    assert learn.history.equals(history) and learn.epoch == epoch and not learn.training
    assert torch.equal(gen_state, learn.train_dl.generator.get_state())  # the next epoch's shuffle
    learn.model.train()
    out = learn.model.last = learn.model(torch.randn(4, 8))  # a training forward's output: not a graph leaf
    learn.lr_find(num_it=5, show=False)  # (deepcopy refuses such a tensor; the snapshot copies it detached)
    assert torch.equal(learn.model.last, out.detach())


def test_lr_find_stops_at_a_diverging_loss_but_lets_other_errors_through(make_learner, params):
    learn = make_learner()
    learn.lr_find(start_lr=1e-3, end_lr=1e6, num_it=100, show=False)  # diverges long before 1e6
    assert learn.lr_find_results["lr"].max() < 1e6

    class Broken(Callback):
        def after_batch(self, learn):
            if learn.iter == 3:
                raise FloatingPointError("a NaN from somewhere else")

    learn = make_learner(callbacks=[Broken()])
    before = params(learn.model)
    with pytest.raises(FloatingPointError, match="somewhere else"):
        learn.lr_find(num_it=20, show=False)
    assert all(torch.equal(a, b) for a, b in zip(before, params(learn.model), strict=True))


def test_lr_find_records_the_loss_after_the_callbacks_that_change_it(make_learner):
    class Penalty(Callback):  # as AR/TAR add to the LM's loss
        def after_loss(self, learn):
            if learn.training:
                learn.loss = learn.loss + 100.0

    learn = make_learner(callbacks=[Penalty()])
    learn.lr_find(num_it=10, show=False)
    assert (learn.lr_find_results["loss"] > 100).all()
