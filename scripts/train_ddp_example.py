"""The same Learner on one process or many: the Rossmann sales network, run plainly or under torchrun.

    .venv/bin/python scripts/train_ddp_example.py                          # one process
    .venv/bin/torchrun --nproc_per_node=2 scripts/train_ddp_example.py     # 2 processes (gloo on CPU,
                                                                           # nccl with one GPU each)

Under torchrun the Learner joins the process group for each fit, wraps the model in
DistributedDataParallel, gives each process its shard of the training rows (the TensorLoader's
`shard`: batch size is per process, so 2 processes at `--bs 256` take the steps of one at 512), sums
the validation metrics over all processes, and only rank 0 prints and saves. Nothing in this script is
DDP-specific. The data come from the cache (or LESSONLIB_DATA_MIRROR), as in notebook 03.
"""

import argparse

from lessonlib.core import seed_everything
from lessonlib.data import rossmann
from lessonlib.engine.distributed import is_main
from lessonlib.engine.training import TrainConfig
from lessonlib.tabular import features
from lessonlib.tabular.experiment import SalesConfig, sales_learner
from lessonlib.tabular.model import TabularConfig
from lessonlib.tabular.preprocess import TabularProcessor


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sample", choices=["sample", "full"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--bs", type=int, default=512, help="batch size per process")
    parser.add_argument("--checkpoint", default="output/ddp_example.pt")
    args = parser.parse_args()

    train, _ = features.build(rossmann(args.preset))
    fit_rows, valid = features.split(features.sales_rows(train), features.LESSON_VALID)
    proc = TabularProcessor(features.CAT_NAMES, features.CONT_NAMES).fit(fit_rows)
    cfg = SalesConfig(model=TabularConfig(layers=(256, 128), ps=(0.001, 0.01)),
                      train=TrainConfig(epochs=args.epochs, lr=args.lr, bs=args.bs, clip=1.0))
    seed_everything(42)  # every process starts from the same weights
    learn = sales_learner(fit_rows, valid, proc, cfg, seed=42)
    learn.fit(cfg.train.epochs, cfg.train.lr, checkpoint=args.checkpoint)
    if is_main():
        steps = len(learn.recorder.batch_losses) // cfg.train.epochs
        print(f"{len(fit_rows):,} training rows, {steps} steps an epoch in this process; "
              f"validation MSE of log sales {learn.history['valid_loss'].iloc[-1]:.4f}")


if __name__ == "__main__":
    main()
