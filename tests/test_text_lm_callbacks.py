import math

import numpy as np
import torch

from lessonlib.engine.callbacks import GradientClip
from lessonlib.engine.learner import Learner
from lessonlib.text.awd_lstm import (
    AWDConfig,
    awd_lstm_lm,
    lm_loss,
)
from lessonlib.text.lm_callbacks import ResetState, RNNRegularizer
from lessonlib.text.lm_loader import LMLoader

V = 30



def test_ar_tar_add_to_training_loss_only():
    lm = awd_lstm_lm(AWDConfig(V, 6, 10, 2))
    x = torch.randint(0, V, (2, 5))
    lm(x)

    class Fake:
        model, training, loss = lm, True, torch.tensor(1.0)

    h = lm.encoder.last_output
    expected = 1.0 + 2.0 * lm.decoder.last_input.pow(2).mean() + 0.5 * (h[:, 1:] - h[:, :-1]).pow(2).mean()
    RNNRegularizer(2.0, 0.5).after_loss(Fake)
    assert torch.allclose(Fake.loss, expected)
    Fake.training, Fake.loss = False, torch.tensor(1.0)
    RNNRegularizer(2.0, 0.5).after_loss(Fake)
    assert Fake.loss == 1.0  # validation losses stay comparable across models


def test_training_through_learner_lowers_loss_on_a_repeated_text():
    torch.manual_seed(0)
    docs = [torch.arange(10, 25).numpy()] * 40  # a deterministic pattern an LSTM can learn
    train = LMLoader(docs, bs=4, bptt=10, shuffle=True, jitter=2)
    valid = LMLoader(docs[:8], bs=4, bptt=10)
    lm = awd_lstm_lm(AWDConfig(V, 16, 32, 2, drop_mult=0.1))
    callbacks = [ResetState(), RNNRegularizer(), GradientClip(0.5)]
    learn = Learner(lm, (train, valid), lm_loss, callbacks=callbacks, device="cpu")
    assert learn.evaluate()["loss"] > math.log(15)
    learn.fit(4, 3e-2, show=False)
    # below log(15), the loss of the best guess that ignores context (15 equally frequent tokens)
    assert learn.history["valid_loss"].iloc[-1] < math.log(15) - 0.2


def test_an_evaluation_does_not_depend_on_what_was_read_before():
    torch.manual_seed(0)
    docs = [np.random.default_rng(i).integers(4, V, 30) for i in range(8)]
    lm = awd_lstm_lm(AWDConfig(V, 16, 32, 2)).eval()  # already in eval mode: no mode switch to reset it
    learn = Learner(lm, (LMLoader(docs, bs=4, bptt=10), LMLoader(docs[:4], bs=4, bptt=10)), lm_loss,
                    callbacks=[ResetState()], device="cpu")
    first = learn.evaluate()["loss"]
    learn.evaluate(learn.train_dl)  # leaves a hidden state behind
    assert learn.evaluate()["loss"] == first
