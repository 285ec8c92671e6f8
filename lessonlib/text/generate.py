"""Continue a prompt with a trained language model: temperature and top-k sampling."""

import torch

from lessonlib.core import eval_mode
from lessonlib.text.tokenize import BOS, detokenize, tokenize


def generate(model, vocab, prompt: str, n_tokens: int = 40, temperature: float = 1.0,
             top_k: int | None = None, seed: int | None = None) -> str:
    """The prompt followed by `n_tokens` sampled tokens, as readable text.

    Each next token is drawn from softmax(logits / temperature), restricted to the `top_k` most likely
    when given (temperature 0 picks the most likely token). `xxunk` is never sampled: it would print as
    a placeholder, not a word."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    tokens = tokenize(prompt) if prompt else [BOS]
    device = next(model.parameters()).device
    with eval_mode(model):
        model.reset()
        ids = torch.as_tensor(vocab.numericalize(tokens), dtype=torch.long, device=device)[None]
        out = list(tokens)
        for _ in range(n_tokens):
            logp = model.log_probs(ids)[0, -1].float().cpu()
            logp[vocab.unk_id] = -float("inf")
            if temperature == 0:
                nxt = int(logp.argmax())
            else:
                logits = logp / temperature
                if top_k is not None and top_k < logits.numel():
                    kth = torch.topk(logits, top_k).values[-1]
                    logits = logits.masked_fill(logits < kth, -float("inf"))
                nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
            out.append(vocab.itos[nxt])
            ids = torch.tensor([[nxt]], device=device)  # the model keeps its hidden state
        model.reset()
    return detokenize(out)
