"""Sentiment classifier on top of a language-model encoder (ULMFiT, notebook 05).

Data: reviews as token-id arrays, batched by similar length and padded at the end
(`classification_loader`, `padding_fraction`). Model: the encoder runs over each review `bptt`
tokens at a time, carrying its state (`ChunkedEncoder`); a concat-pooling head (`PoolingHead`)
turns its outputs into class scores; `TextClassifier` joins the two and exposes `layer_groups()`
for gradual unfreezing and discriminative learning rates.
"""

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from lessonlib.calibration import LengthTemperatures
from lessonlib.core import atomic_write, eval_mode, seed_everything
from lessonlib.data import imdb_reviews
from lessonlib.learner import Learner, accuracy, adamw
from lessonlib.numerics import training_amp
from lessonlib.text.awd_lstm import AWDLSTM, load_encoder
from lessonlib.text.saved import read_saved
from lessonlib.text.tokenize import SPECIAL_TOKENS, tokenize, tokenize_texts
from lessonlib.text.vocab import numericalize_docs

# ----------------------------------------------------------------------------- data


def _cap(ids: np.ndarray, max_tokens: int | None) -> np.ndarray:
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    return np.concatenate([ids[:1], ids[len(ids) - max_tokens + 1 :]])


class ClassificationDataset(torch.utils.data.Dataset):
    """Reviews as int64 token-id arrays with their integer labels.

    `max_tokens` caps each review at its first token (`xxbos`) plus its last `max_tokens - 1` tokens
    (the end of a review, where the verdict usually is); None keeps everything. This caps compute on
    CPU; the encoder itself copes with any length.
    """

    def __init__(self, ids: Sequence, labels: Sequence[int], max_tokens: int | None = None):
        if len(ids) != len(labels):
            raise ValueError(f"got {len(ids)} reviews but {len(labels)} labels; they must pair up")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1 (or None for no cap), got {max_tokens}")
        self.ids = [_cap(np.asarray(a, dtype=np.int64), max_tokens) for a in ids]
        for i, a in enumerate(self.ids):
            if a.ndim != 1 or len(a) == 0:
                raise ValueError(
                    f"review {i} has no tokens (shape {a.shape}); numericalize the tokenizer's output, "
                    "which starts every review with xxbos, even an empty one"
                )
        self.labels = np.asarray(labels, dtype=np.int64)
        self.lengths = np.array([len(a) for a in self.ids], dtype=np.int64)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


class BucketSampler(Sampler):
    """Random but length-bucketed batches of indices, for training (fast.ai's SortishSampler).

    Each epoch: shuffle, cut into chunks of `bs * bucket` reviews, sort each chunk by length, cut it
    into batches, shuffle the batches. Every review appears exactly once per epoch, batches hold
    reviews of similar length (little padding), and the order still changes every epoch. A last
    batch of one review joins the one before (BatchNorm cannot train on a single example).
    """

    def __init__(self, lengths, bs: int, bucket: int = 50, seed: int = 0):
        if bs < 1 or bucket < 1:
            raise ValueError(f"bs and bucket must be at least 1, got bs={bs}, bucket={bucket}")
        self.lengths, self.bs, self.bucket = np.asarray(lengths), bs, bucket
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        perm = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        chunk = self.bs * self.bucket
        batches = []
        for start in range(0, len(perm), chunk):
            idx = perm[start : start + chunk]
            idx = idx[np.argsort(-self.lengths[idx], kind="stable")]
            batches += [idx[i : i + self.bs].tolist() for i in range(0, len(idx), self.bs)]
        if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm cannot train on a batch of one
            last = batches.pop()
            batches[-1] += last
        order = torch.randperm(len(batches), generator=self.generator).tolist()
        return iter([batches[i] for i in order])

    def __len__(self):
        n = math.ceil(len(self.lengths) / self.bs)
        return n - 1 if n > 1 and len(self.lengths) % self.bs == 1 else n


class SortedSampler(Sampler):
    """Batches of indices sorted by decreasing length, for validation (the least padding possible)."""

    def __init__(self, lengths, bs: int):
        if bs < 1:
            raise ValueError(f"bs must be at least 1, got {bs}")
        self.order = np.argsort(-np.asarray(lengths), kind="stable")
        self.bs = bs

    def __iter__(self):
        return iter([self.order[i : i + self.bs].tolist() for i in range(0, len(self.order), self.bs)])

    def __len__(self):
        return math.ceil(len(self.order) / self.bs)


def pad_collate(batch, pad_idx: int):
    """(token ids, label) pairs -> (tokens `(bs, longest)` padded at the end with `pad_idx`, labels)."""
    longest = max(len(ids) for ids, _ in batch)
    tokens = torch.full((len(batch), longest), pad_idx, dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        tokens[row, : len(ids)] = torch.as_tensor(ids)
    labels = torch.tensor([int(y) for _, y in batch], dtype=torch.long)
    return tokens, labels


def classification_loader(
    dataset: ClassificationDataset, bs: int, pad_idx: int, train: bool, seed: int = 0, bucket: int = 50
) -> DataLoader:
    """A loader of `(tokens, labels)` batches: length-bucketed random order when `train`, sorted by
    length otherwise. Single process (num_workers=0) and seeded, so runs repeat exactly."""
    lengths = dataset.lengths
    sampler = BucketSampler(lengths, bs, bucket, seed) if train else SortedSampler(lengths, bs)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=partial(pad_collate, pad_idx=pad_idx))


def padding_fraction(lengths, batches) -> float:
    """Share of the padded positions in the given batches of indices (one epoch of a sampler)."""
    lengths = np.asarray(lengths)
    real = padded = 0
    for batch in batches:
        batch_lengths = lengths[list(batch)]
        real += batch_lengths.sum()
        padded += batch_lengths.max() * len(batch_lengths)
    return float(1 - real / padded)


# ----------------------------------------------------------------------------- model


class ChunkedEncoder(nn.Module):
    """Runs a language-model encoder over whole reviews, `bptt` tokens at a time, carrying its state.

    The encoder is stateful like `AWDLSTM`: `reset()` forgets the state, `encoder(tokens)` returns the
    outputs `(bs, T, d)` and keeps the (detached) final state for the next call. Only the last
    `max_len` tokens of each review are kept for pooling; chunks before every review's window only
    warm up the state, without gradient, so memory stays bounded however long a review is.
    Returns the kept outputs, a mask of their real (non-padding, in-window) positions and the output
    at each review's last token.
    """

    def __init__(self, encoder: nn.Module, pad_idx: int, bptt: int = 70, max_len: int = 1400):
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

    def __init__(self, d: int, n_classes: int = 2, hidden: int = 50, drops: tuple = (0.2, 0.1)):
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

    `tokens` is `(bs, length)` padded at the end with `pad_idx` (what `classification_loader` gives).
    `layer_groups()` lists the encoder's groups (embedding, then each layer) and the head, for
    gradual unfreezing and discriminative learning rates. With a `vocab`, `predict(text)` classifies
    raw review text, its probability tempered by `temperatures` (a `LengthTemperatures`, see
    `lessonlib.text.confidence`) once they are set.
    """

    def __init__(self, encoder: nn.Module, d: int, pad_idx: int, n_classes: int = 2, bptt: int = 70,
                 max_len: int = 1400, vocab=None, classes: Sequence[str] = ("neg", "pos")):
        super().__init__()
        if len(classes) != n_classes:
            raise ValueError(f"{len(classes)} class names for {n_classes} classes")
        self.chunked = ChunkedEncoder(encoder, pad_idx, bptt, max_len)
        self.head = PoolingHead(d, n_classes)
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
        temperature = 1.0 if self.temperatures is None else self.temperatures.at(len(ids))
        with eval_mode(self):
            probs = torch.softmax(self(ids[None].to(device)).float() / temperature, dim=-1)[0]
        i = int(probs.argmax())
        return self.classes[i], float(probs[i])


def classifier_from_lm(path, pretrained: bool = True, drop_mult: float = 0.5, **kwargs) -> TextClassifier:
    """A classifier whose encoder has the architecture and vocabulary of the LM encoder saved at `path`
    (notebook 04's `save_encoder`), with its trained weights when `pretrained`, else freshly
    initialised (the from-scratch baseline). `drop_mult` rescales the encoder's dropouts;
    `kwargs` go to `TextClassifier` (bptt, max_len, ...)."""
    encoder, vocab = load_encoder(path, drop_mult=drop_mult)
    if not pretrained:
        encoder = AWDLSTM.from_config(encoder.config)
    return TextClassifier(encoder, encoder.config.emb_size, vocab.pad_id, vocab=vocab, **kwargs)


def classifier_path(lm_file) -> Path:
    """Where notebook 05 keeps the classifier fine-tuned from the LM saved at `lm_file`: beside it."""
    lm_file = Path(lm_file)
    return lm_file.with_name(f"{lm_file.stem}_classifier.pt")


def save_classifier(path, model: TextClassifier, lm_file) -> Path:
    """Write a trained classifier's weights, its temperatures (if calibrated) and which LM file gives its
    architecture, atomically. The LM file is recorded relative to the classifier's folder, so the pair
    can move together (a new `LESSONLIB_DATA`)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    lm_file = os.path.relpath(Path(lm_file).resolve(), path.parent.resolve())
    temperatures = None if model.temperatures is None else asdict(model.temperatures)
    with atomic_write(path) as f:
        torch.save({"state_dict": state, "lm_file": lm_file, "temperatures": temperatures}, f)
    return path


def load_classifier(path) -> TextClassifier:
    """The classifier `save_classifier` wrote, in eval mode, ready for `predict` (uncalibrated if it was
    saved without temperatures)."""
    path = Path(path)
    blob = read_saved(path, ("state_dict", "lm_file"), "saved classifier",
                      "run notebooks/05_imdb_classifier.ipynb to train and save it again")
    lm_file = Path(blob["lm_file"])  # relative to the classifier's folder (absolute in older files)
    model = classifier_from_lm(lm_file if lm_file.is_absolute() else path.parent / lm_file, pretrained=False)
    model.load_state_dict(blob["state_dict"])
    if blob.get("temperatures"):
        t = blob["temperatures"]
        model.temperatures = LengthTemperatures(tuple(t["lengths"]), tuple(t["temperatures"]))
    return model.eval()


def discriminative_lrs(lr: float, n_groups: int, factor: float = 2.6) -> list[float]:
    """ULMFiT's learning rates: the last group (the head) at `lr`, each lower group `factor` times less."""
    return [lr / factor ** (n_groups - 1 - i) for i in range(n_groups)]


STAGES = ("head", "+ last layer", "all layers")


def gradual_unfreezing(learn, lrs=(2e-2, 1e-2, 1e-3), epochs=(1, 1, 2), factor: float = 2.6,
                       show: bool = True) -> list:
    """ULMFiT fine-tuning through the Learner: train the head, then also the last encoder layer, then
    everything; each stage a one-cycle fit of `epochs[k]` epochs whose peak LR `lrs[k]` goes to the
    head, each lower layer group getting `factor` times less. A stage with 0 epochs is skipped.
    Returns [(stage name, its history)] for the stages run; afterwards `learn.history` holds every
    stage's epochs in order (numbered on from one stage to the next, with a `stage` column)."""
    if len(lrs) != 3 or len(epochs) != 3:
        raise ValueError("give one learning rate and one epoch count per stage: head, last layer, all")
    n = len(learn.layer_groups())
    histories, rows = [], []
    for name, freeze, lr, n_epochs in zip(STAGES, (-1, -2, 0), lrs, epochs, strict=True):
        if n_epochs == 0:
            continue
        learn.freeze_to(freeze)
        learn.fit(n_epochs, discriminative_lrs(lr, n, factor), show=show)
        histories.append((name, learn.history.copy()))
        rows += [{**row, "epoch": len(rows) + i, "stage": name} for i, row in enumerate(learn.recorder.rows)]
    learn.recorder.rows = rows
    return histories


FINE_TUNING = ("every layer", "ULMFiT")


def fine_tuning(recipe: str, lr: float, epochs: int) -> dict:
    """`train_classifier`'s schedule for a named recipe of `epochs` epochs in all, peak LR `lr`:
    "every layer": every layer trains from the first step at the one rate `lr` (one one-cycle);
    "ULMFiT": gradual unfreezing (the head for an epoch, then also the last LSTM layer for an epoch,
    then every layer for the rest), each stage its own one-cycle whose head LR falls from `lr` to
    `lr/2` to `lr/4` (as the 2018 lesson's stages do), each lower layer group 2.6 times less."""
    if recipe == "every layer":
        return {"factor": 1.0, "stages": None}
    if recipe == "ULMFiT":
        if epochs < 3:
            raise ValueError(f"ULMFiT's three stages need at least 3 epochs, got {epochs}")
        return {"factor": 2.6, "stages": ((lr, lr / 2, lr / 4), (1, 1, epochs - 2))}
    raise ValueError(f"unknown fine-tuning recipe {recipe!r}: choose one of {FINE_TUNING}")


# ----------------------------------------------------------------------------- IMDB recipe


@dataclass
class ClassifierData:
    """Labelled IMDB reviews as token ids of the LM's vocabulary, with their texts (for display and for
    NBSVM): `train` to fit on, `valid` (carved from the labelled train reviews) for anything watched
    or chosen during training, `test` scored once at the end."""

    vocab: object
    train: ClassificationDataset
    test: ClassificationDataset
    valid: ClassificationDataset | None = None
    train_texts: list = field(default_factory=list)
    valid_texts: list = field(default_factory=list)
    test_texts: list = field(default_factory=list)

    def loaders(self, bs: int = 32, seed: int = 0):
        """(train loader: length-bucketed, reshuffled each epoch; valid loader sorted by length, or None)."""
        pad = self.vocab.pad_id
        valid = None if self.valid is None else classification_loader(self.valid, 2 * bs, pad, train=False)
        return classification_loader(self.train, bs, pad, train=True, seed=seed), valid

    def test_loader(self, bs: int = 64):
        return classification_loader(self.test, bs, self.vocab.pad_id, train=False)

    def subset(self, n: int, seed: int = 0) -> "ClassifierData":
        """The same data with only `n` training reviews, as many of each class (seeded)."""
        labels = self.train.labels
        classes = np.unique(labels)
        if n % len(classes) or n // len(classes) > min(np.sum(labels == c) for c in classes):
            raise ValueError(f"cannot take {n} reviews, {len(classes)} classes in equal parts, from "
                             f"{len(labels)} training reviews ({np.bincount(labels).tolist()} per class)")
        keep = balanced_indices(labels, n // len(classes), seed)
        train = ClassificationDataset([self.train.ids[i] for i in keep], labels[keep])
        texts = [self.train_texts[i] for i in keep] if self.train_texts else []
        return ClassifierData(self.vocab, train, self.test, self.valid, texts, self.valid_texts,
                              self.test_texts)


def balanced_indices(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `per_class` seeded-random items of each class in `labels`."""
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                   for c in np.unique(labels)]))


def imdb_classifier_data(vocab, size: str = "sample", max_tokens: int | None = None, n_valid: int = 0,
                         seed: int = 0, n_workers: int | None = None) -> ClassifierData:
    """The labelled train and test reviews of archive `size`, tokenized (cached) and numericalized with
    `vocab` (the LM's), each capped at `max_tokens` (see `ClassificationDataset`); a seeded `n_valid` of
    the train reviews, as many of each class, are set aside for validation."""
    parts = {}
    for split in ("train", "test"):
        df = imdb_reviews(size, split)
        tokens = tokenize_texts(list(df["text"]), n_workers=n_workers)
        parts[split] = (list(df["text"]), numericalize_docs(vocab, tokens), df["label"].to_numpy())
    texts, ids, labels = parts["train"]
    valid = balanced_indices(labels, n_valid // len(np.unique(labels)), seed)
    train = np.setdiff1d(np.arange(len(texts)), valid)

    def part(texts, ids, labels, idx):
        return ClassificationDataset([ids[i] for i in idx], labels[idx], max_tokens), [texts[i] for i in idx]

    train_ds, train_texts = part(texts, ids, labels, train)
    valid_ds, valid_texts = part(texts, ids, labels, valid) if n_valid else (None, [])
    test_texts, test_ids, test_labels = parts["test"]
    test_ds = ClassificationDataset(test_ids, test_labels, max_tokens)
    return ClassifierData(vocab, train_ds, test_ds, valid_ds, train_texts, valid_texts, test_texts)


def train_classifier(lm_file, data: ClassifierData, pretrained: bool, seed: int, lr: float = 1e-2,
                     epochs: int = 8, factor: float = 1.0, stages=None, bs: int = 32, clip: float = 0.25,
                     wd: float = 0.01, drop_mult: float = 1.0, validate: bool = True, show: bool = True,
                     callbacks=(), amp=None, **model_kwargs):
    """One classifier trained through the Learner, validated after every epoch on `data.valid` (if
    any, and `validate`); the test reviews are not touched (score them once:
    `learn.evaluate(data.test_loader())`).

    The encoder starts from the LM saved at `lm_file` (`pretrained`) or from fresh weights of the same
    architecture. Every layer trains from the start: one-cycle over `epochs` with peak LR `lr` for the
    head, each lower layer group `factor` times less (1.0: one LR for all). With `stages=(lrs, epochs)`,
    ULMFiT's gradual unfreezing instead (see `gradual_unfreezing`). `amp`: None = `training_amp()` (bf16
    where the hardware computes it natively, unless $LESSONLIB_PRECISION forces one). Returns the Learner
    (`learn.history`: per-epoch validation loss and accuracy)."""
    seed_everything(seed)
    model = classifier_from_lm(lm_file, pretrained=pretrained, drop_mult=drop_mult, **model_kwargs)
    train_dl, valid_dl = data.loaders(bs, seed)
    learn = Learner(model, train_dl, valid_dl if validate else None, F.cross_entropy,
                    opt_func=partial(adamw, fused=True), metrics={"acc": accuracy}, clip=clip, wd=wd,
                    callbacks=callbacks, amp=training_amp() if amp is None else amp)
    if stages is not None:
        gradual_unfreezing(learn, *stages, factor=factor, show=show)
    else:
        learn.fit(epochs, discriminative_lrs(lr, len(learn.layer_groups()), factor), show=show)
    return learn


def classifier_run(lm_file, data: ClassifierData, pretrained: bool, seed: int, lr: float, epochs: int,
                   recipe: str = "every layer", bs: int = 32, validate: bool = True,
                   keep_weights: bool = False) -> dict:
    """One `train_classifier` run with a `fine_tuning` recipe, reduced to what a worker process can
    send back (`run_parallel`): `history` (per-epoch validation accuracy, if `validate`), `test_acc`
    (the test reviews scored once, after training) and, with `keep_weights`, the trained `weights`."""
    learn = train_classifier(lm_file, data, pretrained, seed, lr=lr, epochs=epochs, bs=bs, validate=validate,
                             show=False, **fine_tuning(recipe, lr, epochs))
    out = {"history": learn.history, "test_acc": learn.evaluate(data.test_loader())["acc"]}
    if keep_weights:
        out["weights"] = learn.model.state_dict()
    return out


def predict_logits(model: TextClassifier, dl) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(class scores, targets, dataset index of each row) over the batches of a loader of `(tokens,
    labels)`, in eval mode. The batches are drawn once from `dl.batch_sampler` and collated here, so
    each row's index is the one it was computed from, whatever order the sampler gives."""
    logits, targets, index = [], [], []
    with eval_mode(model):
        for batch in dl.batch_sampler:
            tokens, y = dl.collate_fn([dl.dataset[i] for i in batch])
            logits.append(model(tokens).float())
            targets.append(y)
            index.extend(batch)
    return torch.cat(logits), torch.cat(targets), np.asarray(index, dtype=np.int64)


def predict_probs(model: TextClassifier, dl) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """`predict_logits` as class probabilities (softmax; no temperature)."""
    logits, targets, index = predict_logits(model, dl)
    return logits.softmax(-1), targets, index


def pooled_features(encoder: nn.Module, dataset: ClassificationDataset, pad_idx: int, bs: int = 64,
                    bptt: int = 70, max_len: int = 1400) -> np.ndarray:
    """The concat-pooled encoder outputs `(n_reviews, 3d)` of a frozen encoder, in eval mode and in the
    dataset's order: what the head sees, for probing how much the encoder alone already knows."""
    chunked = ChunkedEncoder(encoder, pad_idx, bptt, max_len)
    rows = []
    with eval_mode(encoder):
        for start in range(0, len(dataset), bs):
            batch = [dataset[i] for i in range(start, min(start + bs, len(dataset)))]
            tokens, _ = pad_collate(batch, pad_idx)
            rows.append(concat_pool(*chunked(tokens)))
    return torch.cat(rows).numpy()
