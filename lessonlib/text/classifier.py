"""Sentiment classifier on top of a language-model encoder (ULMFiT, notebook 05).

Data: reviews as token-id arrays, batched by similar length and padded at the end
(`classification_loader`, `padding_fraction`). Model: the encoder runs over each review `bptt`
tokens at a time, carrying its state (`ChunkedEncoder`); a concat-pooling head (`PoolingHead`)
turns its outputs into class scores; `TextClassifier` joins the two and exposes `layer_groups()`
for gradual unfreezing and discriminative learning rates.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

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
    raw review text.
    """

    def __init__(self, encoder: nn.Module, d: int, pad_idx: int, n_classes: int = 2, bptt: int = 70,
                 max_len: int = 1400, head_hidden: int = 50, head_drops: tuple = (0.2, 0.1),
                 vocab=None, classes: Sequence[str] = ("neg", "pos")):
        super().__init__()
        if len(classes) != n_classes:
            raise ValueError(f"{len(classes)} class names for {n_classes} classes")
        self.chunked = ChunkedEncoder(encoder, pad_idx, bptt, max_len)
        self.head = PoolingHead(d, n_classes, head_hidden, head_drops)
        self.vocab, self.classes = vocab, list(classes)

    @property
    def encoder(self) -> nn.Module:
        return self.chunked.encoder

    def forward(self, tokens):
        return self.head(*self.chunked(tokens))

    def layer_groups(self) -> list:
        groups = self.encoder.layer_groups() if hasattr(self.encoder, "layer_groups") else [self.encoder]
        return [*groups, self.head]

    def predict(self, text: str) -> tuple[str, float]:
        """(label, probability of that label) for one review's raw text."""
        from lessonlib.text.tokenize import tokenize

        if self.vocab is None:
            raise ValueError("this classifier has no vocabulary: build it with classifier_from_lm(...) "
                             "or pass vocab= so predict can numericalize text")
        ids = torch.as_tensor(self.vocab.numericalize(tokenize(text)), dtype=torch.long)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        with torch.no_grad():
            probs = torch.softmax(self(ids[None].to(device)).float(), dim=-1)[0]
        self.train(was_training)
        i = int(probs.argmax())
        return self.classes[i], float(probs[i])


def classifier_from_lm(path, pretrained: bool = True, drop_mult: float = 0.5, **kwargs) -> TextClassifier:
    """A classifier whose encoder has the architecture and vocabulary of the LM encoder saved at `path`
    (notebook 04's `save_encoder`), with its trained weights when `pretrained`, else freshly
    initialised (the from-scratch baseline). `drop_mult` rescales the encoder's dropouts;
    `kwargs` go to `TextClassifier` (bptt, max_len, head_hidden, head_drops, ...)."""
    from lessonlib.text.awd_lstm import AWDLSTM, load_encoder

    encoder, vocab = load_encoder(path, drop_mult=drop_mult)
    if not pretrained:
        encoder = AWDLSTM(**encoder.config)
    return TextClassifier(encoder, encoder.config["emb_size"], vocab.pad_id, vocab=vocab, **kwargs)


def classifier_path(lm_file) -> Path:
    """Where notebook 05 keeps the classifier fine-tuned from the LM saved at `lm_file`: beside it."""
    lm_file = Path(lm_file)
    return lm_file.with_name(f"{lm_file.stem}_classifier.pt")


def save_classifier(path, model: TextClassifier, lm_file) -> Path:
    """Write a trained classifier's weights (and which LM file gives its architecture), atomically."""
    from lessonlib.core import atomic_write

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_write(path) as f:
        torch.save({"state_dict": state, "lm_file": str(lm_file)}, f)
    return Path(path)


def load_classifier(path) -> TextClassifier:
    """The classifier `save_classifier` wrote, in eval mode, ready for `predict`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved classifier at {path}: "
                                "run notebooks/05_imdb_classifier.ipynb first")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = classifier_from_lm(blob["lm_file"], pretrained=False)
    model.load_state_dict(blob["state_dict"])
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
    Returns [(stage name, its history)] for the stages run."""
    if len(lrs) != 3 or len(epochs) != 3:
        raise ValueError("give one learning rate and one epoch count per stage: head, last layer, all")
    n = len(learn.layer_groups())
    histories = []
    for name, freeze, lr, n_epochs in zip(STAGES, (-1, -2, 0), lrs, epochs, strict=True):
        if n_epochs == 0:
            continue
        learn.freeze_to(freeze)
        learn.fit(n_epochs, discriminative_lrs(lr, n, factor), show=show)
        histories.append((name, learn.history.copy()))
    return histories


# ----------------------------------------------------------------------------- IMDB recipe


@dataclass
class ClassifierData:
    """The labelled IMDB reviews as token ids of the LM's vocabulary, with their texts (for display)."""

    vocab: object
    train_texts: list
    test_texts: list
    train: ClassificationDataset
    test: ClassificationDataset

    def loaders(self, bs: int = 32, seed: int = 0):
        """(train loader: length-bucketed, reshuffled each epoch; test loader: sorted by length)."""
        pad = self.vocab.pad_id
        return (classification_loader(self.train, bs, pad, train=True, seed=seed),
                classification_loader(self.test, bs, pad, train=False))


def imdb_classifier_data(vocab, size: str = "sample", max_tokens: int | None = None,
                         n_workers: int | None = None) -> ClassifierData:
    """The labelled train and test reviews of `size`, tokenized (cached) and numericalized with `vocab`
    (the LM's), each capped at `max_tokens` (see `ClassificationDataset`)."""
    from lessonlib.data import imdb_reviews
    from lessonlib.text.tokenize import tokenize_texts

    parts = {}
    for split in ("train", "test"):
        df = imdb_reviews(size, split)
        tokens = tokenize_texts(list(df["text"]), n_workers=n_workers)
        ids = [vocab.numericalize(t) for t in tokens]
        parts[split] = (list(df["text"]), ClassificationDataset(ids, df["label"].to_numpy(), max_tokens))
    return ClassifierData(vocab, parts["train"][0], parts["test"][0], parts["train"][1], parts["test"][1])


def train_classifier(lm_file, data: ClassifierData, pretrained: bool, seed: int, lrs=(2e-2, 1e-2, 1e-3),
                     epochs=(1, 1, 2), scratch_lr: float = 5e-3, bs: int = 32, clip: float = 0.25,
                     wd: float = 0.01, drop_mult: float = 0.5, show: bool = True, callbacks=(), amp=None,
                     factor: float = 2.6, **model_kwargs):
    """One run of the comparison, through the Learner, validating on the test reviews after each epoch.

    LM-initialised (`pretrained`): ULMFiT's gradual unfreezing with discriminative LRs (`lrs`, `epochs`
    per stage, each lower layer group `factor` times less; 1.0 = one LR for all). From scratch: the same
    architecture with fresh weights, every layer trained for the same total number of epochs at
    `scratch_lr` (one-cycle; a frozen random encoder would be a straw man), evaluated on the test reviews
    at the end only. Returns `(learn, stages)`: `stages` is a list of
    (stage name, test accuracy at its end)."""
    import torch.nn.functional as F

    from lessonlib.core import seed_everything
    from lessonlib.learner import Learner, accuracy

    seed_everything(seed)
    model = classifier_from_lm(lm_file, pretrained=pretrained, drop_mult=drop_mult, **model_kwargs)
    train_dl, test_dl = data.loaders(bs, seed)
    # from scratch there are no stages to watch: evaluate once at the end (saves two test passes)
    learn = Learner(model, train_dl, test_dl if pretrained else None, F.cross_entropy,
                    metrics={"acc": accuracy}, clip=clip, wd=wd, callbacks=callbacks, amp=amp)
    if pretrained:
        histories = gradual_unfreezing(learn, lrs, epochs, factor=factor, show=show)
        stages = [(name, float(h["acc"].iloc[-1])) for name, h in histories]
    else:
        learn.fit(sum(epochs), scratch_lr, show=show)
        learn.valid_dl = test_dl
        stages = [("all layers", float(learn.evaluate(test_dl)["acc"]))]
    return learn, stages


def pooled_features(encoder: nn.Module, dataset: ClassificationDataset, pad_idx: int, bs: int = 64,
                    bptt: int = 70, max_len: int = 1400) -> np.ndarray:
    """The concat-pooled encoder outputs `(n_reviews, 3d)` of a frozen encoder, in eval mode and in the
    dataset's order: what the head sees, for probing how much the encoder alone already knows."""
    chunked = ChunkedEncoder(encoder, pad_idx, bptt, max_len)
    was_training = encoder.training
    encoder.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(dataset), bs):
            batch = [dataset[i] for i in range(start, min(start + bs, len(dataset)))]
            tokens, _ = pad_collate(batch, pad_idx)
            rows.append(concat_pool(*chunked(tokens)))
    encoder.train(was_training)
    return torch.cat(rows).numpy()
