"""What the LM costs through the Learner, as notebook 04 trains it: `train_lm` with the sample preset
(its optimizer, clipping, AR/TAR, precision) for one epoch over the first `--reviews` training reviews.

    LESSONLIB_PROGRESS=0 .venv/bin/python benchmarks/lm_fit.py [--reviews 2000] [--threads 2]

Prints training tokens/s (the fit's seconds, validation included) and the validation perplexity; the
same seed gives the same batches, so two commits of the library can be timed side by side
(`PYTHONPATH=<checkout>` each) and their perplexities compared.
"""

import argparse

import torch

from lessonlib.text.lm import LM_PRESETS, lm_data, perplexity, train_lm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reviews", type=int, default=2000, help="training reviews (the first of the preset's)")
    p.add_argument("--valid-reviews", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = lm_data("sample").head(args.reviews, args.valid_reviews)
    learn = train_lm(data, "awd", LM_PRESETS["sample"], seed=args.seed, show=False)
    tokens = sum(map(len, data.train_ids)) * len(learn.history)
    seconds = float(learn.history["seconds"].sum())
    print(f"{tokens:,} training tokens in {seconds:.1f}s: {tokens / seconds:,.0f} tokens/s; validation "
          f"perplexity {perplexity(learn.history['valid_loss'].iloc[-1]):.2f} "
          f"(torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
