"""The language model's training callbacks: AR/TAR (Merity et al. 2017), a penalty on the last layer's
activations and on how fast they change from one token to the next, added to the loss; and the
hidden-state reset at the start of every epoch and evaluation (the state carries over between batches
otherwise)."""

import torch
from torch import nn

from lessonlib.engine.callbacks import Callback


def ar_tar_penalty(model: nn.Module, alpha: float, beta: float) -> torch.Tensor:
    """Activation regularisation `alpha * mean(dropped_out^2)` plus temporal activation regularisation
    `beta * mean((h_t - h_{t-1})^2)` on the last layer of the LM's last forward pass (`model.decoder`'s
    dropped-out input, `model.encoder`'s raw output), in fp32."""
    penalty = torch.zeros(())
    if alpha:
        penalty = penalty + alpha * model.decoder.last_input.float().pow(2).mean()
    if beta:
        h = model.encoder.last_output.float()
        penalty = penalty + beta * (h[:, 1:] - h[:, :-1]).pow(2).mean()
    return penalty


class RNNRegularizer(Callback):
    """Adds `ar_tar_penalty` to the training loss (`after_loss`)."""

    def __init__(self, alpha: float = 2.0, beta: float = 1.0):
        self.alpha, self.beta = alpha, beta

    def after_loss(self, learn):
        if learn.training and (self.alpha or self.beta):
            learn.loss = learn.loss + ar_tar_penalty(learn.model, self.alpha, self.beta)


class ResetState(Callback):
    """Clear the hidden state at the start of every epoch and of every evaluation, so a score never
    depends on which text the model read before it."""

    def before_epoch(self, learn):
        learn.model.reset()

    before_validate = before_epoch
