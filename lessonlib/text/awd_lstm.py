"""AWD-LSTM (Merity et al. 2017) as the lesson uses it: an encoder, a decoder head, and the language model.

- `AWDLSTM`: the encoder (embedding -> stacked LSTMs), reusable by a classifier. Dropouts: whole word
  vectors (`embed_p`), locked (variational) dropout on the input (`input_p`) and between layers
  (`hidden_p`), DropConnect on the hidden-to-hidden weights (`weight_p`); all scaled by `drop_mult`.
  It carries its hidden state across calls (detached), `reset()` clears it.
- `LinearDecoder`: output dropout (`output_p`) then a linear layer tied to the embedding.
- `AdaptiveDecoder`: the same with an adaptive softmax (Grave et al. 2017) instead of the full one.
- `LanguageModel(encoder, decoder)`, `awd_lstm_lm(...)`, `plain_lstm_lm(...)` (no AWD regularisation).
Training callbacks (AR/TAR, state reset) live in `lm_callbacks.py`; saving and loading in `saved.py`.
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from lessonlib.layers.dropout_mask import inverted_mask


class LockedDropout(nn.Module):
    """Variational dropout: one mask per sequence, the same at every time step. x: (bs, seq, features)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * inverted_mask(x, (x.size(0), 1, x.size(2)), self.p)


class EmbeddingDropout(nn.Module):
    """An embedding that, in training, drops whole word vectors (the same word is dropped everywhere in
    the batch)."""

    def __init__(self, vocab_size: int, emb_size: int, pad_id: int, p: float):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.emb.weight.data.uniform_(-0.1, 0.1)
        self.emb.weight.data[pad_id] = 0
        self.p, self.pad_id = p, pad_id

    @property
    def weight(self) -> nn.Parameter:
        return self.emb.weight

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        w = self.emb.weight
        if self.training and self.p > 0:
            w = w * inverted_mask(w, (w.size(0), 1), self.p)
        return F.embedding(words, w, self.pad_id)


class WeightDropLSTM(nn.Module):
    """One LSTM layer (batch first) with DropConnect on its hidden-to-hidden weights in training."""

    def __init__(self, n_in: int, n_hid: int, weight_p: float = 0.0):
        super().__init__()
        k = 1 / math.sqrt(n_hid)
        self.w_ih = nn.Parameter(torch.empty(4 * n_hid, n_in).uniform_(-k, k))
        self.w_hh = nn.Parameter(torch.empty(4 * n_hid, n_hid).uniform_(-k, k))
        self.b_ih = nn.Parameter(torch.empty(4 * n_hid).uniform_(-k, k))
        self.b_hh = nn.Parameter(torch.empty(4 * n_hid).uniform_(-k, k))
        self.n_in, self.n_hid, self.weight_p = n_in, n_hid, weight_p

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        w_hh = self.w_hh
        if self.training and self.weight_p > 0:
            w_hh = F.dropout(w_hh, self.weight_p)
        weights = [self.w_ih, w_hh, self.b_ih, self.b_hh]
        # the op behind nn.LSTM: (input, hx, weights, has_biases, layers, dropout, train, bidir, batch_first)
        out, h, c = torch.lstm(x, state, weights, True, 1, 0.0, self.training, False, True)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{self.n_in}, {self.n_hid}, weight_p={self.weight_p}"


@dataclass(frozen=True)
class AWDConfig:
    """An AWD-LSTM's shape and dropouts, each dropout multiplied by `drop_mult` (the defaults are the
    2018 lesson's: [0.25, 0.1, 0.2, 0.02, 0.15] * drop_mult). What `save_encoder` stores and
    `AWDLSTM(config)` rebuilds; `dataclasses.replace(cfg, drop_mult=0.5)` makes a variant."""

    vocab_size: int
    emb_size: int = 400
    n_hid: int = 1152
    n_layers: int = 3
    pad_id: int = 1
    input_p: float = 0.25                  # locked dropout on the embedding's output
    hidden_p: float = 0.15                 # locked dropout between LSTM layers
    embed_p: float = 0.02                  # whole word vectors
    weight_p: float = 0.2                  # DropConnect on the hidden-to-hidden weights
    output_p: float = 0.1                  # the language model's decoder input (not the encoder's)
    drop_mult: float = 1.0


class AWDLSTM(nn.Module):
    """The encoder: tokens (bs, seq) -> last layer's outputs (bs, seq, emb_size).

    Layer sizes: emb_size -> n_hid -> ... -> emb_size (the last layer returns to emb_size so the decoder
    can be tied to the embedding). The hidden state is kept between calls, detached, and cleared by
    `reset()`, when the batch size changes, or when switching between train and eval mode."""

    def __init__(self, config: AWDConfig):
        super().__init__()
        c, m = config, config.drop_mult
        if c.n_layers < 1:
            raise ValueError("n_layers must be at least 1")
        self.config = config
        self.embedding = EmbeddingDropout(c.vocab_size, c.emb_size, c.pad_id, c.embed_p * m)
        sizes = [c.emb_size] + [c.n_hid] * (c.n_layers - 1) + [c.emb_size]
        self.rnns = nn.ModuleList(WeightDropLSTM(n_in, n_out, c.weight_p * m)
                                  for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True))
        self.input_dp = LockedDropout(c.input_p * m)
        self.hidden_dps = nn.ModuleList(LockedDropout(c.hidden_p * m) for _ in range(c.n_layers - 1))
        self.hidden = None
        self.last_output = None  # the last layer's output of the latest call (for TAR)

    def reset(self) -> None:
        """Forget the hidden state (start of an epoch, a new text, ...)."""
        self.hidden = None

    def train(self, mode: bool = True):
        if mode != self.training:
            self.reset()
        return super().train(mode)

    def _init_hidden(self, bs: int, like: torch.Tensor):
        return [(like.new_zeros(1, bs, r.n_hid), like.new_zeros(1, bs, r.n_hid)) for r in self.rnns]

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        if words.dim() != 2:
            raise ValueError(f"expected token ids of shape (batch, seq), got {tuple(words.shape)}")
        x = self.input_dp(self.embedding(words))
        bs = words.size(0)
        if self.hidden is None or self.hidden[0][0].size(1) != bs or self.hidden[0][0].device != x.device:
            self.hidden = self._init_hidden(bs, x)
        new_hidden = []
        for i, rnn in enumerate(self.rnns):
            x, state = rnn(x, self.hidden[i])
            new_hidden.append(tuple(s.detach() for s in state))
            if i < len(self.hidden_dps):
                x = self.hidden_dps[i](x)
        self.hidden = new_hidden
        self.last_output = x
        return x

    def layer_groups(self) -> list[nn.Module]:
        """[embedding, rnn 1, ..., rnn n]: for discriminative learning rates and gradual unfreezing."""
        return [self.embedding, *self.rnns]


class LinearDecoder(nn.Module):
    """Output dropout, then logits over the vocabulary; `tie_to` shares the embedding's weight."""

    def __init__(self, emb_size: int, vocab_size: int, output_p: float, tie_to: nn.Parameter = None):
        super().__init__()
        self.output_dp = LockedDropout(output_p)
        self.linear = nn.Linear(emb_size, vocab_size)
        if tie_to is not None:
            self.linear.weight = tie_to
        nn.init.zeros_(self.linear.bias)
        self.last_input = None  # the dropped activations of the latest call (for AR)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.last_input = self.output_dp(h)
        return self.linear(self.last_input)

    def init_bias(self, counts) -> None:
        """Start the bias at the log unigram frequencies of `counts` (a count per token id), so the
        untrained model already predicts each token by its frequency (see `LanguageModel.init_bias`)."""
        with torch.no_grad():
            self.linear.bias.copy_(_log_freqs(counts))

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.forward(h).float(), dim=-1)


def _log_freqs(counts) -> torch.Tensor:
    """log of the add-one smoothed relative frequencies of `counts`, as float32."""
    counts = torch.as_tensor(counts, dtype=torch.float64) + 1
    return (counts / counts.sum()).log().float()


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy over all positions (logits (bs, seq, V), targets (bs, seq))."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))


class AdaptiveDecoder(nn.Module):
    """Output dropout, then an adaptive softmax: frequent tokens get the full `emb_size`, rarer clusters
    smaller projections (each `div_value` times smaller). The model's output is the dropped hidden
    state; `loss(h, y)` gives the exact mean negative log-likelihood. Token ids must be sorted by
    frequency (our Vocab is, after its special tokens)."""

    def __init__(self, emb_size: int, vocab_size: int, cutoffs, output_p: float, div_value: float = 4.0):
        super().__init__()
        cutoffs = [c for c in cutoffs if c < vocab_size - 1]
        if not cutoffs:
            raise ValueError(f"cutoffs must be below the vocabulary size {vocab_size}")
        self.output_dp = LockedDropout(output_p)
        self.asm = nn.AdaptiveLogSoftmaxWithLoss(emb_size, vocab_size, cutoffs, div_value=div_value,
                                                 head_bias=True)
        self.last_input = None

    def init_bias(self, counts) -> None:
        """Start the head's bias at the log frequencies of its frequent tokens and of each rarer
        cluster as a whole (see `LanguageModel.init_bias`)."""
        counts = torch.as_tensor(counts, dtype=torch.float64)
        first, edges = self.asm.shortlist_size, self.asm.cutoffs
        clusters = [counts[a:b].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)]
        head = torch.cat([counts[:first], torch.stack(clusters)])
        with torch.no_grad():
            self.asm.head.bias.copy_(_log_freqs(head))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.last_input = self.output_dp(h)
        return self.last_input

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.autocast(h.device.type, enabled=False):  # torch's adaptive softmax needs one dtype
            return self.asm(h.reshape(-1, h.size(-1)).float(), targets.reshape(-1)).loss

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        h = self.forward(h)
        with torch.autocast(h.device.type, enabled=False):
            return self.asm.log_prob(h.reshape(-1, h.size(-1)).float()).view(*h.shape[:-1], -1)


class LanguageModel(nn.Module):
    """encoder + decoder. `forward(x)` gives the decoder's output (logits for `LinearDecoder`)."""

    def __init__(self, encoder: AWDLSTM, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(words))

    def reset(self) -> None:
        self.encoder.reset()

    def log_probs(self, words: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the next token at every position: (bs, seq, V)."""
        return self.decoder.log_probs(self.encoder(words))

    def init_bias(self, counts) -> None:
        """Start the decoder's output bias at the log unigram frequencies of the training tokens.

        With a zero bias, the only way an untrained model can express that "the" is far likelier than
        "zebra" is through its last layer's outputs, so the first steps drive those into saturation,
        where the LSTM's gradients vanish and it stays a unigram model. Starting from the frequencies
        leaves the last layer free to learn what depends on context."""
        self.decoder.init_bias(counts)

    def layer_groups(self) -> list[nn.Module]:
        """[rnn 1, ..., rnn n, embedding + decoder] (the tied weight lives in the last group)."""
        return [*self.encoder.rnns, nn.ModuleList([self.encoder.embedding, self.decoder])]


def awd_lstm_lm(config: AWDConfig, adaptive_cutoffs=None) -> LanguageModel:
    """An AWD-LSTM language model of `config`; the decoder is tied to the embedding unless
    `adaptive_cutoffs` is given (then an adaptive softmax)."""
    enc = AWDLSTM(config)
    output_p = config.output_p * config.drop_mult
    if adaptive_cutoffs:
        dec = AdaptiveDecoder(config.emb_size, config.vocab_size, adaptive_cutoffs, output_p)
    else:
        dec = LinearDecoder(config.emb_size, config.vocab_size, output_p, tie_to=enc.embedding.weight)
    return LanguageModel(enc, dec)


def plain_lstm_lm(config: AWDConfig, adaptive_cutoffs=None) -> LanguageModel:
    """The same model with every dropout off (train it without AR/TAR): the comparison point."""
    return awd_lstm_lm(replace(config, drop_mult=0.0), adaptive_cutoffs)
