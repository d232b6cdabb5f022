"""A small real training run: logistic regression on a synthetic two-class data set, with
plain Python and the `rich` progress output only if installed. It reads the training
operator's environment (RANK, WORLD_SIZE) the way a distributed script does."""

import argparse
import math
import os
import random

from model import LogisticRegression


def make_data(n, seed):
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        label = rng.random() < 0.5
        centre = (1.5, 1.0) if label else (-1.0, -1.5)
        x = (rng.gauss(centre[0], 1.0), rng.gauss(centre[1], 1.0))
        data.append((x, 1.0 if label else 0.0))
    return data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    print(f"rank {rank} of {world}, master {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}")

    # Each rank trains on its own shard, as DistributedSampler would give it.
    data = make_data(2000, seed=42)[rank::world]
    model = LogisticRegression()
    for epoch in range(1, args.epochs + 1):
        loss = model.train_epoch(data, args.lr)
        accuracy = model.accuracy(data)
        print(f"epoch {epoch} loss {loss:.4f} accuracy {accuracy:.3f}")
    if not math.isfinite(loss):
        raise SystemExit("training diverged")
    print("done")


if __name__ == "__main__":
    main()
