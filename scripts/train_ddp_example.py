"""The same Learner on one process or many: run it plainly, or under torchrun for DDP.

    .venv/bin/python scripts/train_ddp_example.py                          # one process
    .venv/bin/torchrun --nproc_per_node=2 scripts/train_ddp_example.py     # 2 processes (gloo on CPU,
                                                                           # nccl with one GPU each)

Under torchrun the Learner joins the process group, wraps the model in DistributedDataParallel, gives
each process its shard of the training data (batch size is per process), averages the validation
metrics over all processes, and only rank 0 prints and saves. Nothing in this script is DDP-specific.
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lessonlib.callbacks import GradientClip
from lessonlib.core import seed_everything
from lessonlib.learner import Learner, accuracy


def synthetic(n, d=20, seed=0):
    """Points labelled by which side of a random hyperplane they fall on (same rule for every split)."""
    w = torch.randn(d, generator=torch.Generator().manual_seed(1234))
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, (x @ w > 0).long())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--bs", type=int, default=64, help="batch size per process")
    parser.add_argument("--checkpoint", default="output/ddp_example.pt")
    args = parser.parse_args()

    seed_everything(42)  # every process starts from the same weights (DDP also broadcasts rank 0's)
    train_dl = DataLoader(synthetic(8192, seed=0), batch_size=args.bs, shuffle=True)
    valid_dl = DataLoader(synthetic(2048, seed=1), batch_size=256)
    model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 2))
    learn = Learner(model, (train_dl, valid_dl), F.cross_entropy, metrics={"acc": accuracy},
                    callbacks=[GradientClip(1.0)])
    learn.fit(args.epochs, args.lr, checkpoint=args.checkpoint)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
