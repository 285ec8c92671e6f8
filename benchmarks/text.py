"""Benchmark for the IMDB text pipeline: tokenization throughput and LM training speed vs quality.

    python benchmarks/text.py                       # everything: tokenizer, notebook 04's LM recipe
    python benchmarks/text.py --part tokenize       # tokenization only
    python benchmarks/text.py --part lm --batches 150 --valid-batches 20 --lr 1e-2
    python benchmarks/text.py --part lm --recipe lesson   # the 2018 lesson's sizes (emb 200/500/3)
    python benchmarks/text.py --part lm --device cuda --size full --recipe full --batches 300

Tokenization: the sample archive's 4,000 train+unsup+test reviews, our tokenizer (rules + special tokens)
against spaCy's bare tokenizer, both over the same worker pool harness with `--workers` processes.

LM training on the texts of LM preset `--size`, at the sizes, batch size and bptt of `--recipe`:
training tokens/s for each variant (full or adaptive softmax, fp32 or bf16 autocast), the FLOP rate
against fp32/bf16 GEMM peaks measured in the same run, a profile of its training steps, and validation
perplexity after the same batches (so the same tokens) for every variant, so a speed-up is not bought
with quality. Needs `LESSONLIB_DATA_MIRROR` or internet for the data.
"""

import argparse
import math
import time
from contextlib import nullcontext
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from gemm import describe, gemm_peaks, sync
from step_profile import step_profile

from lessonlib.text.lm_callbacks import ar_tar_penalty

VARIANTS = ("fp32", "bf16", "adaptive", "adaptive+bf16", "fp32-native-lstm")


def bare_spacy_batch(texts: list[str]) -> list[list[str]]:
    """spaCy's tokenizer alone, no rules: the reference point for ours."""
    from lessonlib.text.tokenize import _spacy_tokenizer

    return [[t.text for t in doc] for doc in _spacy_tokenizer().pipe(texts, batch_size=256)]


def bench_tokenize(size: str, workers: int) -> None:
    from lessonlib.data import imdb_reviews
    from lessonlib.text import tokenize as tk

    texts = [t for split in ("train", "unsup", "test") for t in imdb_reviews(size, split)["text"]]
    print(f"tokenization: {len(texts):,} reviews ({size}: train + unsup + test), {workers} processes")
    results = {}
    for name, fn in [("bare spaCy", bare_spacy_batch), ("ours", tk.tokenize_batch)]:
        for n in sorted({1, workers}):
            t = time.perf_counter()
            docs = tk.in_parts(fn, texts, n, False, "")
            dt = time.perf_counter() - t
            n_tok = sum(map(len, docs))
            results[name, n] = (n_tok, dt)
            print(f"  {name:10s} {n} proc: {n_tok:>9,} tokens in {dt:6.2f}s = {n_tok / dt:>9,.0f} tokens/s, "
                  f"{len(texts) / dt:,.0f} reviews/s")
    (ours_tok, ours_dt), (bare_tok, bare_dt) = results["ours", workers], results["bare spaCy", workers]
    print(f"  ours vs bare ({workers} proc): {bare_dt / ours_dt:.1%} of bare's reviews/s, "
          f"{(ours_tok / ours_dt) / (bare_tok / bare_dt):.1%} of its tokens/s "
          f"(ours emits {ours_tok / bare_tok - 1:+.1%} tokens: special tokens added, spaces dropped)")
    print(f"  targets: >= 400,000 tokens/s -> {'met' if ours_tok / ours_dt >= 4e5 else 'NOT met'}; "
          f">= 65% of bare -> {'met' if bare_dt / ours_dt >= 0.65 else 'NOT met'}")


def lm_flops_per_token(model, vocab_size: int, cluster_frac=None) -> float:
    """Training FLOPs per token (forward + backward = 3 x forward, 2 FLOPs per multiply-add)."""
    macs = sum(4 * r.n_hid * (r.n_in + r.n_hid) for r in model.encoder.rnns)
    dec = model.decoder
    if hasattr(dec, "asm"):
        asm = dec.asm
        macs += asm.head.in_features * asm.head.out_features
        for frac, tail in zip(cluster_frac, asm.tail, strict=True):
            macs += frac * sum(m.in_features * m.out_features for m in tail if isinstance(m, torch.nn.Linear))
    else:
        macs += dec.linear.in_features * vocab_size
    return 3 * 2 * macs


def lm_step(model, loss_fn, opt, amp, cfg, x, y) -> None:
    """One training step as notebook 04's Learner takes it: loss plus AR/TAR (`ar_tar_penalty` with
    cfg.alpha, cfg.beta), backward, clipping at cfg.train.clip, AdamW."""
    with amp:
        loss = loss_fn(model(x), y) + ar_tar_penalty(model, cfg.alpha, cfg.beta)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip)
    opt.step()
    opt.zero_grad(set_to_none=True)


def bench_lm(args) -> None:
    from lessonlib.core import seed_everything
    from lessonlib.engine.learner import adamw
    from lessonlib.engine.numerics import native_amp
    from lessonlib.engine.training import with_train
    from lessonlib.text.awd_lstm import lm_loss
    from lessonlib.text.lm import LM_PRESETS, LMConfig, build_lm, lm_data

    device = torch.device(args.device)
    if args.recipe == "lesson":
        cfg = with_train(LMConfig(emb_size=200, n_hid=500, n_layers=3, bptt=70, drop_mult=0.5), bs=64)
    else:  # notebook 04's LM: its sizes, batch size, bptt and clipping
        cfg = LM_PRESETS[args.recipe]
    if args.bs:
        cfg = with_train(cfg, bs=args.bs)
    if args.tokens:  # the same text whatever the batch size
        args.batches = max(2, args.tokens // (cfg.train.bs * cfg.bptt))
    data = lm_data(args.size)
    V = len(data.vocab)
    print(f"\nLM training ({args.recipe} recipe): vocab {V:,}, emb {cfg.emb_size}, hidden {cfg.n_hid}, "
          f"{cfg.n_layers} layers, bs {cfg.train.bs}, bptt {cfg.bptt}, drop_mult {cfg.drop_mult}; "
          f"{args.batches} training batches per variant, device {device}, "
          f"torch threads {torch.get_num_threads()}")
    fp32_rates = gemm_peaks(torch.float32, device=device)
    fp32 = max(fp32_rates.values())
    peaks = f"  GEMM peaks (2048^3, best of 5, GFLOP/s): fp32 {describe(fp32_rates)} -> {fp32:,.0f}; "
    if device.type == "cpu" and not native_amp(device):  # bf16 emulated: minutes per 2048^3 product
        bf16 = math.nan
        print(peaks + "no bf16 peak: this CPU has no native bf16 (no AVX512-BF16 or AMX), so the recipe "
              "computes in fp32")
    else:
        bf16_rates = gemm_peaks(torch.bfloat16, device=device)
        bf16 = max(bf16_rates.values())
        print(peaks + f"bf16 {describe(bf16_rates)} -> {bf16:,.0f}")
    cutoffs = (2000, 8000)
    all_targets = np.concatenate(data.train_ids)
    edges = [0, *cutoffs, V]
    frac = [float(np.mean((all_targets >= a) & (all_targets < b))) for a, b in zip(edges[1:-1], edges[2:],
                                                                                      strict=True)]
    print(f"  {'variant':18s} {'train tok/s':>11s} {'GFLOP/s':>8s} {'% fp32 peak':>11s} {'% bf16 peak':>11s} "
          f"{'valid ppl':>9s}", flush=True)
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; choose from {VARIANTS}")
        seed_everything(0)
        adaptive = variant.startswith("adaptive")
        model = build_lm("awd", V, replace(cfg, adaptive_cutoffs=cutoffs if adaptive else None)).to(device)
        model.init_bias(data.token_counts())
        loss_fn = model.decoder.loss if adaptive else lm_loss
        opt = adamw(model.parameters(), lr=args.lr, weight_decay=cfg.train.wd, fused=True)  # the Learner's
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if "bf16" in variant else nullcontext()
        kernels = torch.backends.mkldnn.flags(enabled=False) if "native" in variant else nullcontext()
        train_dl, valid_dl = data.loaders(cfg, seed=0)
        model.train()
        n_tok, seconds = 0, 0.0
        with kernels:
            for i, (x, y) in enumerate(train_dl):
                if i == args.batches:
                    break
                x, y = x.to(device), y.to(device)
                sync(device)
                t = time.perf_counter()
                lm_step(model, loss_fn, opt, amp, cfg, x, y)
                sync(device)
                if i > 0:  # the first batch warms up allocators and kernels
                    seconds += time.perf_counter() - t
                    n_tok += x.numel()
            if args.profile:
                print(f"  {variant}:", end="")
                step_profile(partial(lm_step, model, loss_fn, opt, amp, cfg, x, y), steps=3)
            model.eval()
            total, count = 0.0, 0
            with torch.no_grad(), amp:
                for j, (x, y) in enumerate(valid_dl):
                    if j == args.valid_batches:
                        break
                    x, y = x.to(device), y.to(device)
                    total += float(loss_fn(model(x), y)) * y.numel()
                    count += y.numel()
        tps = n_tok / seconds
        flops = lm_flops_per_token(model, V, frac)
        gf, ppl = flops * tps / 1e9, math.exp(total / count)
        of_bf16 = f"{'-':>11s}" if math.isnan(bf16) else f"{gf / bf16:11.1%}"
        print(f"  {variant:18s} {tps:11,.0f} {gf:8.1f} {gf / fp32:11.1%} {of_bf16} {ppl:9.1f}", flush=True)
    print(f"  (valid ppl over {args.valid_batches} validation batches after {args.batches} training batches "
          f"of {cfg.train.bs * cfg.bptt:,} tokens, lr {args.lr})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "tokenize", "lm"], default="all")
    p.add_argument("--size", default="sample",
                   help="tokenize: the archive; lm: the LM preset whose texts it reads")
    p.add_argument("--recipe", default="sample", choices=["sample", "full", "lesson"],
                   help="LM sizes: an LM preset's (notebook 04: sample) or the 2018 lesson's (emb 200/500/3)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, default=40, help="training batches per LM variant")
    p.add_argument("--tokens", type=int, default=None,
                   help="training tokens per LM variant instead of --batches (compares batch sizes fairly)")
    p.add_argument("--bs", type=int, default=None, help="batch size instead of the recipe's")
    p.add_argument("--valid-batches", type=int, default=20)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part in ("all", "tokenize"):
        bench_tokenize(args.size, args.workers)
    if args.part in ("all", "lm"):
        bench_lm(args)


if __name__ == "__main__":
    main()
