"""Entity-embedding network for tables, embedding-size rules and the exp-RMSPE metric."""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lessonlib.layers.one_hot_linear import OneHotLinear
from lessonlib.layers.onednn_linear import OneDNNLinear
from lessonlib.layers.small_p_dropout import SmallPDropout


def emb_size_lesson(n_codes: int) -> int:
    """The 2018 lesson's rule: min(50, (c + 1) // 2), c = number of codes incl. the unknown code 0."""
    return min(50, (n_codes + 1) // 2)


def emb_size_fastai2(n_codes: int) -> int:
    """fast.ai v2's rule of thumb: min(600, round(1.6 * c ** 0.56))."""
    return min(600, round(1.6 * n_codes ** 0.56))


EMB_RULES = {"lesson": emb_size_lesson, "fastai2": emb_size_fastai2}


def emb_sizes(cardinalities, rule="lesson") -> list:
    """Embedding width per categorical input under a named rule (or a callable)."""
    fn = EMB_RULES[rule] if isinstance(rule, str) else rule
    return [fn(c) for c in cardinalities]


@dataclass(frozen=True)
class TabularConfig:
    """A `TabularModel`'s shape (the defaults are the 2018 lesson's network).
    `dataclasses.replace(cfg, one_hot=True)` makes a variant."""

    layers: tuple = (1000, 500)            # hidden layer widths
    ps: tuple = (0.001, 0.01)              # dropout after each hidden layer
    emb_drop: float = 0.04                 # dropout on the concatenated embeddings
    size_rule: str = "lesson"              # embedding widths: "lesson" or "fastai2" (see emb_sizes)
    one_hot: bool = False                  # one-hot inputs instead of learned embeddings
    fast_layers: bool = False              # OneDNNLinear + SmallPDropout instead of nn.Linear + nn.Dropout


class TabularModel(nn.Module):
    """Embeddings for the categories + batch-normed continuous inputs -> Linear-ReLU-BN-Dropout blocks ->
    Linear, squashed by a sigmoid into `y_range` when given. Embedding widths follow
    `config.size_rule` unless `sizes` gives one per categorical input.

    With `config.fast_layers` the Linear layers are `OneDNNLinear` (nn.Linear with its bias and ReLU
    written by the product itself on fp32 CPUs) and the dropouts `SmallPDropout` (nn.Dropout's
    distribution, drawing only the positions it drops): the same network, computed faster on a CPU
    (benchmarks/rossmann.py times both), with other random draws for its dropouts.

    Under autocast (e.g. bf16) the hidden layers run in low precision but the head and the sigmoid
    stay in fp32: bf16 keeps 8 significant bits, so a log-Sales output near 9 could only move in
    steps of 1/16, a rounding error of up to 3% in Sales where the whole RMSPE is about 10%.

    `y_init` (e.g. the mean training target) starts the output there: the head's bias is set to give
    it and its weights start small, so the first epoch is not spent undoing a random offset.

    With `config.one_hot` each category is fed as a one-hot vector instead, so the same network can
    be compared without learned embeddings: the first layer is then `OneHotLinear`, nn.Linear over the
    [one-hot codes, continuous inputs] vector computed as a sum of one weight column per category
    (no embeddings, no embedding dropout; its ReLU follows it unfused).
    """

    def __init__(self, cardinalities, n_cont: int, config: TabularConfig = TabularConfig(), sizes=None,
                 y_range=None, y_init: float | None = None):
        super().__init__()
        cfg, cardinalities = config, list(cardinalities)
        if len(cfg.ps) != len(cfg.layers):
            raise ValueError(f"need one dropout probability per hidden layer: {len(cfg.layers)} layers, "
                             f"ps={cfg.ps}")
        if cfg.one_hot and not cfg.layers:
            raise ValueError("one-hot inputs need a hidden layer (config.layers is empty)")
        if sizes is None:
            sizes = emb_sizes(cardinalities, cfg.size_rule)
        if len(sizes) != len(cardinalities):
            raise ValueError(f"{len(sizes)} embedding sizes for {len(cardinalities)} categorical inputs")
        self.n_cats = len(cardinalities)
        self.embeds = nn.ModuleList() if cfg.one_hot else nn.ModuleList(
            nn.Embedding(c, s) for c, s in zip(cardinalities, sizes, strict=True))
        dropout = SmallPDropout if cfg.fast_layers else nn.Dropout
        self.emb_drop = None if cfg.one_hot else dropout(cfg.emb_drop)
        self.bn_cont = nn.BatchNorm1d(n_cont) if n_cont else None
        self.n_cont = n_cont
        self.one_hot_input = OneHotLinear(cardinalities, n_cont, cfg.layers[0]) if cfg.one_hot else None
        blocks, width = [], self.n_inputs
        for i, (out, p) in enumerate(zip(cfg.layers, cfg.ps, strict=True)):
            if i == 0 and cfg.one_hot:  # the product is one_hot_input's
                blocks += [nn.ReLU(), nn.BatchNorm1d(out), dropout(p)]
            elif cfg.fast_layers:
                blocks += [OneDNNLinear(width, out, relu=True), nn.BatchNorm1d(out), SmallPDropout(p)]
            else:
                blocks += [nn.Linear(width, out), nn.ReLU(), nn.BatchNorm1d(out), nn.Dropout(p)]
            width = out
        self.layers = nn.Sequential(*blocks)
        self.head = OneDNNLinear(width, 1) if cfg.fast_layers else nn.Linear(width, 1)
        self.y_range = None if y_range is None else tuple(float(v) for v in y_range)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if y_init is not None:
            nn.init.normal_(self.head.weight, std=0.01)
            start = float(y_init)
            if self.y_range is not None:
                lo, hi = self.y_range
                if not lo < start < hi:
                    raise ValueError(f"y_init={start} must lie inside y_range={self.y_range}")
                start = torch.logit(torch.tensor((start - lo) / (hi - lo))).item()
            nn.init.constant_(self.head.bias, start)

    @property
    def n_inputs(self) -> int:
        """Width of the input to the first Linear layer (with one-hot codes: the number of codes)."""
        if self.one_hot_input is not None:
            return self.one_hot_input.in_features
        return sum(e.embedding_dim for e in self.embeds) + self.n_cont

    def forward(self, x):
        cats, conts = x
        if cats.shape[1] != self.n_cats:
            raise ValueError(f"expected {self.n_cats} categorical columns, got {cats.shape[1]}")
        if self.bn_cont is not None:
            conts = self.bn_cont(conts)
        if self.one_hot_input is not None:
            h = self.one_hot_input(cats, conts if self.n_cont else conts.new_zeros(len(cats), 0))
        else:
            h = self.emb_drop(self.embed(cats)) if self.embeds else conts.new_zeros(len(conts), 0)
            if self.bn_cont is not None:
                h = torch.cat([h, conts], dim=1)
        h = self.layers(h)
        with torch.autocast(h.device.type, enabled=False):  # the output in fp32 (see the class docstring)
            out = self.head(h.float()).squeeze(1)
            if self.y_range is not None:
                lo, hi = self.y_range
                out = lo + (hi - lo) * torch.sigmoid(out)
        return out

    def embed(self, cats: torch.Tensor) -> torch.Tensor:
        """Each row's categorical codes replaced by their embedding rows, concatenated: (rows, sum of
        the widths). `index_select` is the same lookup as `emb(codes)`, with a cheaper backward on the
        CPU than nn.Embedding's (a sum of rows into a zero gradient, per table)."""
        return torch.cat([emb.weight.index_select(0, cats[:, i]) for i, emb in enumerate(self.embeds)], dim=1)


class ScaledCapped(nn.Module):
    """A trained network's log-Sales outputs, adjusted after training (training never sees these):

    - shifted by `log_scale`, `rmspe_log_scale` of the training rows, which multiplies the predicted
      Sales by the factor that minimises their RMSPE;
    - bounded by `log_cap[code]`, a ceiling per code of the categorical input `cap_input` (e.g. the
      most each store sold in training, `log_ceilings`), so a rare input that drove the sigmoid towards
      its top cannot predict ten times a store's best day. None: no ceiling.

    Both are buffers, saved with the state_dict."""

    def __init__(self, net: nn.Module, log_scale: float = 0.0, cap_input: int | None = None, log_cap=None):
        super().__init__()
        if (cap_input is None) != (log_cap is None):
            raise ValueError("give both cap_input and log_cap, or neither")
        self.net, self.cap_input = net, cap_input
        self.register_buffer("log_scale", torch.tensor(float(log_scale)))
        cap = None if log_cap is None else torch.as_tensor(log_cap, dtype=torch.float32)
        self.register_buffer("log_cap", cap)

    def forward(self, x):
        out = self.net(x) + self.log_scale
        if self.cap_input is not None:
            out = torch.minimum(out, self.log_cap[x[0][:, self.cap_input]])
        return out


def y_range_for(log_y, margin: float = 0.2) -> tuple[float, float]:
    """A sigmoid output range a little wider than the log target's: (0, max * (1 + margin)), as in the
    lesson, when the targets are positive; else min/max widened by `margin` of the span."""
    lo, hi = float(np.min(log_y)), float(np.max(log_y))
    if lo >= 0:
        return 0.0, hi * (1 + margin)
    span = hi - lo
    return lo - margin * span, hi + margin * span


def log_ceilings(codes, log_y, n_codes: int, margin: float = 0.2) -> torch.Tensor:
    """Per code (0..n_codes-1), the largest log target among the rows with that code plus `margin`
    (0.2: 22% above the best seen); codes without rows get the overall largest plus `margin`."""
    codes = torch.as_tensor(codes, dtype=torch.int64)
    log_y = torch.as_tensor(np.asarray(log_y, dtype=np.float32))
    if codes.shape != log_y.shape:
        raise ValueError(f"{codes.numel()} codes for {log_y.numel()} targets")
    per_code = torch.full((n_codes,), -math.inf).scatter_reduce(0, codes, log_y, reduce="amax")
    return torch.where(per_code > -math.inf, per_code, log_y.max()) + margin


def exp_rmspe(pred_log: torch.Tensor, targ_log: torch.Tensor) -> torch.Tensor:
    """Root mean squared percentage error on Sales, from predictions and targets of log(Sales):
    sqrt(mean(((y - y_hat) / y) ** 2)) with y = exp(targ_log), y_hat = exp(pred_log)."""
    pred_log, targ_log = torch.as_tensor(pred_log).double(), torch.as_tensor(targ_log).double()
    if pred_log.shape != targ_log.shape:
        raise ValueError(f"prediction shape {tuple(pred_log.shape)} != target shape {tuple(targ_log.shape)}")
    y, y_hat = torch.exp(targ_log), torch.exp(pred_log)
    return torch.sqrt(torch.mean(((y - y_hat) / y) ** 2))


def rmspe_log_scale(pred_log, targ_log) -> float:
    """log(c) for the factor c that gives the lowest RMSPE when the predicted Sales are multiplied by it:
    with r = y_hat / y, mean((1 - c r) ** 2) is least at c = sum(r) / sum(r ** 2). MSE on logs aims at
    the typical value, but RMSPE punishes a prediction twice too high (error 1.0) more than one half too
    low (0.5), so for a model that is not exact c comes out a little below 1."""
    pred_log, targ_log = (v.detach().double().cpu() if isinstance(v, torch.Tensor)
                          else torch.tensor(np.asarray(v, dtype=np.float64)) for v in (pred_log, targ_log))
    r = torch.exp(pred_log - targ_log)
    return math.log((r.sum() / (r ** 2).sum()).item())


LESSON_VALID_BS = 256  # the lesson's validation batches: 2 x its training batch size of 128


def batch_exp_rmspe(pred_log, targ_log, batch_size: int = LESSON_VALID_BS) -> float:
    """exp-RMSPE as fast.ai 0.7 printed it during training, which is how the lesson got its 0.0985: the
    RMSPE of each consecutive batch of `batch_size` rows (the lesson's validation loader: 2 x its batch
    size of 128, rows in file order), averaged with the batch sizes as weights. A mean of square roots is
    at most the square root of the mean, so this is lower than `exp_rmspe` of the same predictions,
    the more so when a few rows carry much of the error."""
    pred_log, targ_log = torch.as_tensor(pred_log).double(), torch.as_tensor(targ_log).double()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    sizes = [len(t) for t in targ_log.split(batch_size)]
    values = [exp_rmspe(p, t).item() for p, t in zip(pred_log.split(batch_size), targ_log.split(batch_size),
                                                      strict=True)]
    return float(sum(v * n for v, n in zip(values, sizes, strict=True)) / sum(sizes))


def embedding_weights(model: TabularModel, cat_names: list, name: str) -> np.ndarray:
    """The learned embedding of categorical column `name`, one row per known level (the unknown
    code 0 left out), as float64 numpy."""
    return model.embeds[cat_names.index(name)].weight.detach().double().cpu().numpy()[1:]


def embedded(model: TabularModel, cats) -> np.ndarray:
    """Each categorical code of `cats` (rows x categorical columns, the processor's codes) replaced by
    its row of the trained network's embedding: (rows, sum of the embedding widths), float64. Guo &
    Berkhahn's entity embeddings as input features for models that cannot learn such vectors."""
    device = next(model.parameters()).device
    cats = torch.as_tensor(np.asarray(cats), dtype=torch.int64, device=device)
    with torch.no_grad():
        return model.embed(cats).double().cpu().numpy()
