"""Vocabulary: token <-> id, rare tokens to `xxunk`, special tokens first; numericalize to int32."""

from collections import Counter

import numpy as np

from lessonlib.text.tokenize import PAD, SPECIAL_TOKENS, UNK


class Vocab:
    """`itos[i]` is the token with id i; `stoi` maps back, unknown tokens to the id of `xxunk`.

    Build with `Vocab.build(docs, min_freq, max_size)`; `counts` keeps the training frequencies."""

    def __init__(self, itos: list[str], counts: dict[str, int] | None = None):
        if itos[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIAL_TOKENS}")
        if len(set(itos)) != len(itos):
            raise ValueError("a vocabulary must not list a token twice")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.counts = dict(counts or {})
        self.unk_id, self.pad_id = self.stoi[UNK], self.stoi[PAD]

    @classmethod
    def build(cls, docs, min_freq: int = 3, max_size: int = 60_000) -> "Vocab":
        """Keep tokens seen at least `min_freq` times, the `max_size` most frequent (ties by first
        appearance), after the special tokens."""
        if min_freq < 1 or max_size < len(SPECIAL_TOKENS):
            raise ValueError(f"need min_freq >= 1 and max_size >= {len(SPECIAL_TOKENS)}")
        counts = Counter()
        for d in docs:
            counts.update(d)
        keep = [t for t, c in counts.most_common() if c >= min_freq and t not in SPECIAL_TOKENS]
        itos = SPECIAL_TOKENS + keep[: max_size - len(SPECIAL_TOKENS)]
        return cls(itos, counts)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def numericalize(self, tokens: list[str]) -> np.ndarray:
        """int32 ids of `tokens` (unknown ones -> `xxunk`)."""
        get, unk = self.stoi.get, self.unk_id
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))

    def textify(self, ids) -> list[str]:
        return [self.itos[int(i)] for i in ids]


def numericalize_docs(vocab: Vocab, docs) -> list[np.ndarray]:
    """One int32 array per document."""
    return [vocab.numericalize(d) for d in docs]
