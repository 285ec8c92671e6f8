"""The model files the notebooks save: the LM of 04 (`save_encoder`, `load_encoder`,
`load_language_model`) and the reading shared with the classifier of 05 (`read_saved`), with errors
that name the file, say what is wrong with it and how to get a good one back."""

from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn

from lessonlib.core import atomic_write
from lessonlib.text.awd_lstm import AWDLSTM, AdaptiveDecoder, AWDConfig, LanguageModel, LinearDecoder
from lessonlib.text.vocab import Vocab


class SavedModelError(ValueError):
    """A saved model file that cannot be used: truncated, corrupted, or some other program's file."""


def read_saved(path, required: tuple[str, ...], what: str, remedy: str) -> dict:
    """The dict `torch.save` wrote at `path`, read on the CPU without running pickled code
    (`weights_only`). A missing file raises FileNotFoundError; a file torch cannot read, or one without
    the `required` entries, raises SavedModelError naming `path`, `what` it should be and the `remedy`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}: {remedy}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError... by what is broken
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise SavedModelError(f"{path} is not a readable {what}: it is truncated, corrupted or not a torch "
                              f"file ({type(err).__name__}: {reason}). Delete it, then {remedy}") from err
    missing = [key for key in required if not isinstance(blob, dict) or key not in blob]
    if missing:
        raise SavedModelError(f"{path} is a torch file but not a {what} (no {', '.join(missing)}). Delete it "
                              f"(or pass the right file), then {remedy}")
    return blob


def save_encoder(path, encoder: AWDLSTM, vocab, decoder: nn.Module | None = None) -> Path:
    """Write the encoder's config and weights and the vocabulary to one file, atomically. With the
    `decoder`, its weights are kept too (a tied decoder's bias only; an adaptive softmax whole), so
    `load_language_model` can rebuild the whole LM."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    extra = {}
    if isinstance(decoder, LinearDecoder):
        extra = {"decoder_bias": decoder.linear.bias.detach().cpu()}
    elif isinstance(decoder, AdaptiveDecoder):
        weights = {k: v.detach().cpu() for k, v in decoder.state_dict().items()}
        extra = {"adaptive_decoder": {"cutoffs": decoder.asm.cutoffs[:-1], "div_value": decoder.asm.div_value,
                                      "state_dict": weights}}
    elif decoder is not None:
        raise TypeError(f"cannot save a {type(decoder).__name__}: expected LinearDecoder or AdaptiveDecoder")
    with atomic_write(path) as f:
        torch.save({"format": "lessonlib-awd-lstm-encoder/1", "config": asdict(encoder.config),
                    "state_dict": state, "itos": vocab.itos, "counts": vocab.counts, **extra}, f)
    return path


LM_REMEDY = ("run notebooks/04_imdb_language_model.ipynb (or lessonlib.text.lm.trained_lm_path()) "
             "to train and save it again")


def read_lm_file(path) -> dict:
    """What `save_encoder` wrote at `path`, with a clear error for a missing, broken or foreign file."""
    return read_saved(path, ("config", "state_dict", "itos"), "saved LM encoder", LM_REMEDY)


def load_encoder(path, drop_mult: float | None = None):
    """(encoder, vocab) from a file written by `save_encoder`; `drop_mult` (None: the saved one)
    rescales its dropouts, e.g. for a classifier."""
    return encoder_from_blob(read_lm_file(path), drop_mult)


def encoder_from_blob(blob: dict, drop_mult: float | None = None):
    """(encoder, vocab) rebuilt from what `read_lm_file` returned (see `load_encoder`)."""
    config = AWDConfig(**blob["config"])
    if drop_mult is not None:
        config = replace(config, drop_mult=drop_mult)
    encoder = AWDLSTM(config)
    encoder.load_state_dict(blob["state_dict"])
    return encoder, Vocab(blob["itos"], blob.get("counts"))


def load_language_model(path) -> tuple[LanguageModel, Vocab]:
    """(language model, vocab) in eval mode from a file `save_encoder` wrote with its decoder: for
    generating text."""
    blob = read_lm_file(path)  # read once: the encoder and the decoder come from the same file
    encoder, vocab = encoder_from_blob(blob)
    emb_size, vocab_size = encoder.config.emb_size, encoder.config.vocab_size
    if "decoder_bias" in blob:
        decoder = LinearDecoder(emb_size, vocab_size, 0.0, tie_to=encoder.embedding.weight)
        with torch.no_grad():
            decoder.linear.bias.copy_(blob["decoder_bias"])
    elif "adaptive_decoder" in blob:
        spec = blob["adaptive_decoder"]
        decoder = AdaptiveDecoder(emb_size, vocab_size, spec["cutoffs"], 0.0, spec["div_value"])
        decoder.load_state_dict(spec["state_dict"])
    else:
        raise ValueError(f"{path} holds an encoder only: save it with "
                         "save_encoder(..., decoder=model.decoder)")
    return LanguageModel(encoder, decoder).eval(), vocab
