"""Sentiment classifier on top of a language-model encoder (ULMFiT, notebook 05).

The encoder runs over each review `bptt` tokens at a time, carrying its state (`ChunkedEncoder`); a
concat-pooling head (`PoolingHead`) turns its outputs into class scores; `TextClassifier` joins the
two, exposes `layer_groups()` for gradual unfreezing and discriminative learning rates, and
`predict`s raw text. Saving and loading keep a classifier beside the LM it came from; `predict_logits`
scores a loader's reviews in eval mode, keeping each row's review index.
"""

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lessonlib.calibration import LengthTemperatures
from lessonlib.core import atomic_write, eval_mode, eval_outputs
from lessonlib.text.awd_lstm import AWDLSTM
from lessonlib.text.classifier_data import EVAL_BS, ClassificationDataset, pad_collate
from lessonlib.text.saved import load_encoder, read_saved
from lessonlib.text.tokenize import SPECIAL_TOKENS, tokenize


@dataclass(frozen=True)
class ClassifierConfig:
    """How a `TextClassifier` reads a review and which dropouts its encoder trains with."""

    drop_mult: float = 1.0                 # replaces the saved LM's drop_mult (1.0: AWDConfig's base rates)
    bptt: int = 70                         # tokens per encoder call
    max_len: int = 1400                    # the last this many tokens of a review are pooled


class ChunkedEncoder(nn.Module):
    """Runs a language-model encoder over whole reviews, `bptt` tokens at a time, carrying its state.

    The encoder is stateful like `AWDLSTM`: `reset()` forgets the state, `encoder(tokens)` returns the
    outputs `(bs, T, d)` and keeps the (detached) final state for the next call. Only the last
    `max_len` tokens of each review are kept for pooling; chunks before every review's window only
    warm up the state, without gradient, so memory stays bounded however long a review is.
    Returns the kept outputs, a mask of their real (non-padding, in-window) positions and the output
    at each review's last token.
    """

    def __init__(self, encoder: nn.Module, pad_idx: int, bptt: int, max_len: int):
        super().__init__()
        if bptt < 1 or max_len < 1:
            raise ValueError(f"bptt and max_len must be at least 1, got bptt={bptt}, max_len={max_len}")
        self.encoder, self.pad_idx, self.bptt, self.max_len = encoder, pad_idx, bptt, max_len

    def forward(self, tokens: torch.Tensor):
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (batch, length), got shape {tuple(tokens.shape)}")
        bs, seq_len = tokens.shape
        lengths = (tokens != self.pad_idx).sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("a review in the batch is all padding; every review needs at least one token")
        starts = (lengths - self.max_len).clamp(min=0)  # first kept position of each review
        first_kept = int(starts.min()) // self.bptt * self.bptt
        self.encoder.reset()
        outputs = []
        for i in range(0, seq_len, self.bptt):
            chunk = tokens[:, i : i + self.bptt]
            if i < first_kept:  # before every review's window: it only moves the state on
                with torch.no_grad():
                    self.encoder(chunk)
            else:
                outputs.append(self.encoder(chunk))
        self.encoder.reset()
        outputs = torch.cat(outputs, dim=1)
        positions = torch.arange(first_kept, seq_len, device=tokens.device)
        mask = (positions[None] < lengths[:, None]) & (positions[None] >= starts[:, None])
        last = outputs[torch.arange(bs, device=tokens.device), lengths - 1 - first_kept]
        return outputs, mask, last


def concat_pool(outputs: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """[last hidden state, max-pool, mean-pool] over the positions where `mask` is True -> (bs, 3d)."""
    m = mask.unsqueeze(-1)
    max_pool = outputs.masked_fill(~m, float("-inf")).max(dim=1).values
    mean_pool = (outputs * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
    return torch.cat([last, max_pool, mean_pool], dim=1)


class PoolingHead(nn.Module):
    """Concat pooling, then BatchNorm-Dropout-Linear-ReLU-BatchNorm-Dropout-Linear (class scores)."""

    def __init__(self, d: int, n_classes: int, hidden: int = 50, drops: tuple = (0.2, 0.1)):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm1d(3 * d),
            nn.Dropout(drops[0]),
            nn.Linear(3 * d, hidden),
            nn.ReLU(),
            nn.BatchNorm1d(hidden),
            nn.Dropout(drops[1]),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, outputs, mask, last):
        return self.layers(concat_pool(outputs, mask, last))


class TextClassifier(nn.Module):
    """Encoder run in chunks + pooling head: `model(tokens) -> class scores (bs, n_classes)`.

    `tokens` is `(bs, length)` padded at the end with `pad_idx` (what `classification_loader` gives),
    read `config.bptt` tokens at a time, the last `config.max_len` pooled.
    `layer_groups()` lists the encoder's groups (embedding, then each layer) and the head, for
    gradual unfreezing and discriminative learning rates. With a `vocab`, `predict(text)` classifies
    raw review text, its probability tempered by `temperatures` (a `LengthTemperatures`, see
    `lessonlib.text.confidence`) once they are set.
    """

    def __init__(self, encoder: nn.Module, d: int, pad_idx: int,
                 config: ClassifierConfig = ClassifierConfig(), vocab=None,
                 classes: Sequence[str] = ("neg", "pos")):
        super().__init__()
        if not isinstance(config, ClassifierConfig):  # what save_classifier stores and load rebuilds
            raise TypeError(f"config must be a ClassifierConfig, got {type(config).__name__} "
                            "(a FineTuneConfig holds one as .model)")
        self.config = config
        self.chunked = ChunkedEncoder(encoder, pad_idx, config.bptt, config.max_len)
        self.head = PoolingHead(d, len(classes))
        self.vocab, self.classes = vocab, list(classes)
        self.temperatures: LengthTemperatures | None = None  # None: raw softmax probabilities

    @property
    def encoder(self) -> nn.Module:
        return self.chunked.encoder

    def forward(self, tokens):
        return self.head(*self.chunked(tokens))

    def layer_groups(self) -> list:
        groups = self.encoder.layer_groups() if hasattr(self.encoder, "layer_groups") else [self.encoder]
        return [*groups, self.head]

    def predict(self, text: str) -> tuple[str, float]:
        """(label, probability of that label) for one review's raw text. With `temperatures` set, the
        scores are divided by the temperature fitted for texts of this many tokens (calibrated: short
        texts with little to go on get probabilities nearer 0.5); the label is the same either way.

        A text with no word the vocabulary knows (empty, or only unknown words) raises ValueError: the
        model would answer from its biases alone, a confident label that means nothing."""
        if self.vocab is None:
            raise ValueError("this classifier has no vocabulary: build it with classifier_from_lm(...) "
                             "or pass vocab= so predict can numericalize text")
        ids = self.vocab.numericalize(tokenize(text))
        special = [self.vocab.stoi[t] for t in SPECIAL_TOKENS]
        if np.isin(ids, special).all():
            raise ValueError(f"no word of {text[:60]!r} is in the model's vocabulary (the text is empty or "
                             "every word is unknown): nothing to classify; give it a review in English")
        ids = torch.as_tensor(ids, dtype=torch.long)
        device = next(self.parameters()).device
        with eval_mode(self):
            logits = self(ids[None].to(device)).float().cpu()
        if self.temperatures is None:
            probs = torch.softmax(logits, dim=-1)[0]
        else:
            probs = self.temperatures.probs(logits, [len(ids)])[0]
        i = int(probs.argmax())
        return self.classes[i], float(probs[i])


def classifier_from_lm(path, config: ClassifierConfig = ClassifierConfig(),
                       pretrained: bool = True) -> TextClassifier:
    """A classifier of `config` whose encoder has the architecture and vocabulary of the LM encoder
    saved at `path` (notebook 04's `save_encoder`), its dropouts rescaled by `config.drop_mult`, with
    the LM's trained weights when `pretrained`, else freshly initialised (the from-scratch baseline)."""
    encoder, vocab = load_encoder(path, drop_mult=config.drop_mult)
    if not pretrained:
        encoder = AWDLSTM(encoder.config)
    return TextClassifier(encoder, encoder.config.emb_size, vocab.pad_id, config, vocab=vocab)


def classifier_path(lm_file) -> Path:
    """Where notebook 05 keeps the classifier fine-tuned from the LM saved at `lm_file`: beside it."""
    lm_file = Path(lm_file)
    return lm_file.with_name(f"{lm_file.stem}_classifier.pt")


def save_classifier(path, model: TextClassifier, lm_file) -> Path:
    """Write a trained classifier's weights, its config, its temperatures (if calibrated) and which LM
    file gives its architecture, atomically. The LM file is recorded relative to the classifier's
    folder, so the pair can move together (a new `LESSONLIB_DATA`)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    lm_file = os.path.relpath(Path(lm_file).resolve(), path.parent.resolve())
    temperatures = None if model.temperatures is None else asdict(model.temperatures)
    with atomic_write(path) as f:
        torch.save({"state_dict": state, "lm_file": lm_file, "temperatures": temperatures,
                    "config": asdict(model.config)}, f)
    return path


def load_classifier(path) -> TextClassifier:
    """The classifier `save_classifier` wrote, in eval mode, ready for `predict` (uncalibrated if it was
    saved without temperatures)."""
    path = Path(path)
    blob = read_saved(path, ("state_dict", "lm_file"), "saved classifier",
                      "run notebooks/05_imdb_classifier.ipynb to train and save it again")
    lm_file = Path(blob["lm_file"])  # relative to the classifier's folder (absolute in older files)
    config = ClassifierConfig(**blob.get("config", {}))  # (files saved before it was recorded: the defaults)
    model = classifier_from_lm(lm_file if lm_file.is_absolute() else path.parent / lm_file, config,
                               pretrained=False)
    model.load_state_dict(blob["state_dict"])
    if blob.get("temperatures"):
        t = blob["temperatures"]
        model.temperatures = LengthTemperatures(tuple(t["lengths"]), tuple(t["temperatures"]))
    return model.eval()


def predict_logits(model: TextClassifier, dl) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(class scores, targets, dataset index of each row) over the batches of a loader of `(tokens,
    labels)`, through `eval_outputs`. The batches are drawn once from `dl.batch_sampler` and collated
    here, so each row's index is the one it was computed from, whatever order the sampler gives."""
    index = []

    def batches():
        for rows in dl.batch_sampler:
            index.extend(rows)
            yield dl.collate_fn([dl.dataset[i] for i in rows])

    logits, targets = [], []
    for out, y in eval_outputs(model, batches()):
        logits.append(out.float().cpu())
        targets.append(y.cpu())
    return torch.cat(logits), torch.cat(targets), np.asarray(index, dtype=np.int64)


class PooledEncoder(nn.Module):
    """A frozen encoder's concat-pooled outputs (bs, 3d): what a `PoolingHead` sees."""

    def __init__(self, encoder: nn.Module, pad_idx: int, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.chunked = ChunkedEncoder(encoder, pad_idx, config.bptt, config.max_len)

    def forward(self, tokens):
        return concat_pool(*self.chunked(tokens))


def pooled_features(encoder: nn.Module, dataset: ClassificationDataset, pad_idx: int, bs: int = EVAL_BS,
                    config: ClassifierConfig = ClassifierConfig()) -> np.ndarray:
    """The concat-pooled encoder outputs `(n_reviews, 3d)` of a frozen encoder, through
    `eval_outputs`, in the dataset's order: what the head sees, for probing how much the encoder
    alone already knows."""
    n = len(dataset)
    batches = (pad_collate([dataset[i] for i in range(s, min(s + bs, n))], pad_idx) for s in range(0, n, bs))
    pooled = PooledEncoder(encoder, pad_idx, config)
    return torch.cat([out.cpu() for out, _ in eval_outputs(pooled, batches)]).numpy()
