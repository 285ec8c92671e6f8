import pytest

from lessonlib.engine.schedule import constant, get_schedule, one_cycle


class ScheduleLog:
    """Logs the first group's LR and beta1 at every training batch."""

    def __init__(self):
        self.lrs, self.moms = [], []

    def before_batch(self, learn):
        if learn.training:
            self.lrs.append(learn.opt.param_groups[0]["lr"])
            self.moms.append(learn.opt.param_groups[0]["betas"][0])


def test_one_cycle_lr_and_momentum_at_known_steps(make_learner):
    rec = ScheduleLog()
    learn = make_learner(callbacks=[rec])
    learn.fit(2, 0.1, show=False)  # 8 batches per epoch -> 16 steps, warm-up ends at step 4
    n = 16
    assert len(rec.lrs) == n
    assert rec.lrs[0] == pytest.approx(0.1 / 25) and rec.moms[0] == pytest.approx(0.95)
    assert rec.lrs[4] == pytest.approx(0.1) and rec.moms[4] == pytest.approx(0.85)
    assert max(rec.lrs) == pytest.approx(0.1)
    assert all(a < b for a, b in zip(rec.lrs[:4], rec.lrs[1:5], strict=True))
    assert all(a > b for a, b in zip(rec.lrs[4:-1], rec.lrs[5:], strict=True))
    assert rec.lrs[-1] == pytest.approx(0.1 * one_cycle(15 / 16)[0])
    assert one_cycle(1.0)[0] == pytest.approx(1 / 1e5)
    assert one_cycle(0.625)[0] == pytest.approx((1 + 1e-5) / 2)


def test_constant_schedule_and_bad_schedule_name(make_learner):
    rec = ScheduleLog()
    make_learner(callbacks=[rec]).fit(1, 0.03, schedule="constant", show=False)
    assert rec.lrs == [pytest.approx(0.03)] * 8 and constant(0.5) == (1.0, 0.9)
    with pytest.raises(ValueError, match="one_cycle"):
        get_schedule("cosine_restarts")
