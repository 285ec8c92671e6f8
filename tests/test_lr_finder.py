import torch
from test_learner import make_learner, params


def test_lr_find_leaves_model_optimizer_and_rng_unchanged():
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
