import random

import numpy as np
import pytest
import torch

from lessonlib import core


def draw():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_seed_everything_repeats_python_numpy_and_torch_draws():
    core.seed_everything(123)
    first = draw()
    core.seed_everything(123)
    assert draw() == first
    core.seed_everything(124)
    assert draw() != first


def test_default_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert core.default_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert core.default_device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert core.default_device().type == "cpu"


def test_banner_is_one_line_with_versions_and_seed():
    line = core.banner(seed=7)
    assert "\n" not in line
    assert f"torch {torch.__version__}" in line and "seed 7" in line and "pandas" in line


def test_progress_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("LESSONLIB_PROGRESS", "0")
    assert core.progress(range(3)).disable
    monkeypatch.setenv("LESSONLIB_PROGRESS", "1")
    assert core.progress_enabled() and not core.progress(range(3)).disable


class CountingIterable:
    def __init__(self):
        self.starts = 0

    def __len__(self):
        return 3

    def __iter__(self):
        self.starts += 1
        return iter(range(3))


def test_progress_starts_its_iterable_once_and_keeps_the_length(monkeypatch):
    for flag in ("0", "1"):
        monkeypatch.setenv("LESSONLIB_PROGRESS", flag)
        data = CountingIterable()
        bar = core.progress(data)
        assert list(bar) == [0, 1, 2] and data.starts == 1 and bar.total == 3


def test_progress_off_wins_over_an_explicit_disable_false(monkeypatch):
    monkeypatch.setenv("LESSONLIB_PROGRESS", "0")
    assert core.progress(range(3), disable=False).disable
    monkeypatch.setenv("LESSONLIB_PROGRESS", "1")
    assert core.progress(range(3), disable=True).disable


def test_atomic_write_replaces_only_on_success_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    with core.atomic_write(target) as f:
        f.write(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError), core.atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"first"  # the complete old file survives a failed write
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def _dropout_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.9))


def test_eval_outputs_runs_in_eval_mode_without_gradients_in_batch_order():
    net = _dropout_net().train()
    batches = [(torch.ones(2, 4) * i, torch.tensor([i, i])) for i in range(3)]
    outs = list(core.eval_outputs(net, batches))
    with torch.no_grad():
        expected = [net[0](x) for x, _ in batches]  # Linear alone: what eval-mode dropout passes on
    assert all(torch.equal(out, e) and not out.requires_grad
               for (out, _), e in zip(outs, expected, strict=True))
    assert [y.tolist() for _, y in outs] == [[0, 0], [1, 1], [2, 2]]
    assert net.training and net[1].training  # its previous mode back


def test_eval_outputs_keeps_the_active_modules_training():
    net = _dropout_net().eval()
    (out, _), = core.eval_outputs(net, [(torch.ones(64, 4), None)], active=[net[1]])
    assert (out == 0).float().mean() > 0.5  # the dropout still drops
    assert not net.training and not net[1].training


def test_eval_outputs_restores_the_mode_after_an_error():
    net = _dropout_net().train()
    with pytest.raises(RuntimeError):
        list(core.eval_outputs(net, [(torch.ones(2, 5), None)]))  # wrong width
    assert net.training


def test_eval_outputs_gives_each_submodule_its_own_mode_back():
    inner = _dropout_net().eval()
    wrapper = torch.nn.Sequential(inner)  # fresh, so in training mode
    list(core.eval_outputs(wrapper, [(torch.ones(2, 4), None)]))
    assert wrapper.training and not inner.training and not inner[1].training
