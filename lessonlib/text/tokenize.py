"""Review text -> tokens: spaCy's rule-based English tokenizer plus the lesson's rules and special tokens.

Rules before spaCy: HTML `<br />` to newlines, control characters dropped, runs of spaces collapsed,
a character repeated 4+ times becomes `xxrep n c`. After spaCy: a word repeated 4+ times becomes
`xxwrep n w`, an all-caps word gets `xxup`, a capitalised word gets `xxmaj`, everything is lower-cased,
and each review opens with `xxbos`. `tokenize_texts` runs this over processes with an on-disk cache.
"""

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from lessonlib.core import atomic_write, progress
from lessonlib.data import cache_dir
from lessonlib.parallel import run_parallel

UNK, PAD, BOS, MAJ, UP, REP, WREP = "xxunk", "xxpad", "xxbos", "xxmaj", "xxup", "xxrep", "xxwrep"
SPECIAL_TOKENS = [UNK, PAD, BOS, MAJ, UP, REP, WREP]
TOKENIZER_VERSION = 1  # bump on any rule change: it is part of the cache key

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # every control character except the newline
_SPACES = re.compile(r" {2,}")
_CHAR_REP = re.compile(r"(\S)\1{3,}")


def _char_rep(m: re.Match) -> str:
    return f" {REP} {len(m.group(0))} {m.group(1)} "


def clean_text(text: str) -> str:
    """The rules applied before spaCy (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"expected a review as str, got {type(text).__name__}; decode bytes first")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"the text is not valid Unicode: {text[e.start]!r} at position {e.start} (a lone "
                         "surrogate, as a bad decode leaves it); decode the bytes with errors='replace', or "
                         "drop that character") from None
    text = _BR.sub("\n", text)
    text = _CONTROL.sub(" ", text)
    text = _CHAR_REP.sub(_char_rep, text)
    return _SPACES.sub(" ", text).strip()


def postprocess(words: list[str]) -> list[str]:
    """The rules applied to spaCy's tokens (see the module docstring)."""
    out = [BOS]
    n, i = len(words), 0
    while i < n:
        w = words[i]
        if w.isspace():  # spaCy keeps whitespace as tokens; keep only line breaks, as one "\n"
            if "\n" in w:
                out.append("\n")
            i += 1
            continue
        j = i + 1
        if j < n and words[j].lower() == w.lower():  # a repeated word, whatever its case
            low = w.lower()
            while j < n and words[j].lower() == low:
                j += 1
        if j - i >= 4:
            out += [WREP, str(j - i)]
            i = j - 1  # the word itself follows once
        if w.isupper() and len(w) > 1:
            out += [UP, w.lower()]
        elif w[0].isupper():
            out += [MAJ, w.lower()]
        else:
            out.append(w.lower())
        i += 1
    return out


_NLP = None


def _spacy_tokenizer():
    global _NLP
    if _NLP is None:
        import spacy

        _NLP = spacy.blank("en")
    return _NLP.tokenizer


def tokenize_batch(texts: list[str]) -> list[list[str]]:
    """Tokenize some reviews in this process (no cache, no workers)."""
    tok = _spacy_tokenizer()
    cleaned = [clean_text(t) for t in texts]
    return [postprocess([t.text for t in doc]) for doc in tok.pipe(cleaned, batch_size=256)]


def tokenize(text: str) -> list[str]:
    """Tokenize one review, e.g. a prompt."""
    return tokenize_batch([text])[0]


def data_cache_dir() -> Path:
    """The dataset cache (`LESSONLIB_DATA`, default `data/` in the repository)."""
    return Path(cache_dir())


def cache_key(texts: list[str]) -> str:
    """sha256 over the tokenizer's version and rules and every input text (length-prefixed)."""
    h = hashlib.sha256()
    settings = {"version": TOKENIZER_VERSION, "special": SPECIAL_TOKENS, "spacy": _spacy_version()}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def _spacy_version() -> str:
    import spacy

    return spacy.__version__


def _chunks(items: list, n: int) -> list[list]:
    size = max(1, -(-len(items) // n))
    return [items[i : i + size] for i in range(0, len(items), size)]


def in_parts(fn, texts: list[str], n_workers: int, show: bool, desc: str) -> list[list[str]]:
    """`fn` (a batch tokenizer) over `texts` in parts, on `n_workers` processes (`run_parallel`) when
    there is enough text to share, with a progress bar per part; the documents come back in order."""
    if n_workers <= 1 or len(texts) < 2 * n_workers:
        parts = _chunks(texts, max(1, len(texts) // 500))
        return [doc for part in progress(parts, desc=desc, disable=not show) for doc in fn(part)]
    parts = _chunks(texts, n_workers * 8)
    results = run_parallel(fn, [{"texts": part} for part in parts], workers=n_workers, desc=desc, show=show)
    return [doc for part in results for doc in part]


def tokenize_texts(
    texts,
    n_workers: int | None = None,
    cache: bool | str | Path = True,
    show_progress: bool = True,
) -> list[list[str]]:
    """Tokenize many reviews over `n_workers` processes (default: all cores), with a progress bar.

    With `cache` (True: `<data cache>/tokens/`, or a folder), results are stored on disk under a key
    made of the texts and the tokenizer's settings and version, so a second call is a file read and
    a changed input or rule is never served stale."""
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be str; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    n_workers = n_workers or os.cpu_count() or 1
    path = None
    if cache:
        folder = data_cache_dir() / "tokens" if cache is True else Path(cache)
        path = folder / f"{cache_key(texts)}.npz"
        if path.exists():
            return load_tokens(path)
    docs = in_parts(tokenize_batch, texts, n_workers, show_progress, "tokenizing")
    if path is not None:
        save_tokens(path, docs)
    return docs


def save_tokens(path: Path, docs: list[list[str]]) -> None:
    """Store token lists compactly (unique strings + int32 ids + offsets), written atomically."""
    strings: dict[str, int] = {}
    ids = np.fromiter((strings.setdefault(t, len(strings)) for d in docs for t in d), dtype=np.int32)
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    with atomic_write(path) as f:
        np.savez(f, strings=np.array("\x00".join(strings), dtype=np.str_), ids=ids, offsets=offsets)


def load_tokens(path: Path) -> list[list[str]]:
    """Read token lists written by `save_tokens`."""
    with np.load(path) as z:
        table = str(z["strings"]).split("\x00")
        ids, offsets = z["ids"], z["offsets"]
    words = [table[i] for i in ids.tolist()]
    return [words[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]


def detokenize(tokens: list[str]) -> str:
    """A readable string from tokens, with the special tokens applied back (for display)."""
    out, i, n, repeat = [], 0, len(tokens), 1
    while i < n:
        t = tokens[i]
        if t in (REP, WREP) and i + 2 < n and tokens[i + 1].isdigit():
            if t == REP:
                out.append(tokens[i + 2] * int(tokens[i + 1]))
                i += 3
            else:
                repeat = int(tokens[i + 1])
                i += 2
            continue
        if t in (BOS, PAD):
            i += 1
            continue
        if t in (MAJ, UP) and i + 1 < n:
            word = tokens[i + 1].capitalize() if t == MAJ else tokens[i + 1].upper()
            i += 2
        else:
            word = t
            i += 1
        out += [word] * repeat
        repeat = 1
    text = " ".join(out)
    return re.sub(r" ([.,!?;:)])(?=\s|$)|(\( )| (n't|'s|'re|'ve|'ll|'d|'m)\b", _join_punct, text)


def _join_punct(m: re.Match) -> str:
    if m.group(1):
        return m.group(1)
    if m.group(2):
        return "("
    return m.group(3)
