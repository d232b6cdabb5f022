"""A small real data-parallel training run: logistic regression on a synthetic two-class data
set. Each rank computes gradients on its own shard, the ranks average them every step through
MASTER_ADDR:MASTER_PORT (torch.distributed when installed, else plain sockets), and every rank
applies the same update — so all ranks end with the same weights, which the last line shows."""

import argparse
import hashlib
import math
import os
import random

from allreduce import connect
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
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    print(f"rank {rank} of {world}, master {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}")
    reducer = connect(rank, world)
    print(f"gradients averaged with {reducer.name}")

    # Each rank trains on its own shard, as DistributedSampler would give it; every rank takes
    # the same number of steps, so the all-reduces line up.
    data = make_data(2000, seed=42)
    shard = data[rank::world]
    steps = len(data) // world // args.batch
    model = LogisticRegression()
    for epoch in range(1, args.epochs + 1):
        losses = []
        for step in range(steps):
            batch = shard[step * args.batch:(step + 1) * args.batch]
            grad, loss = model.gradient(batch)
            averaged = reducer.average(grad + [loss])
            model.step(averaged[:3], args.lr)
            losses.append(averaged[3])
        loss = sum(losses) / len(losses)
        print(f"epoch {epoch} loss {loss:.4f} accuracy {model.accuracy(data):.3f}")
    reducer.close()
    if not math.isfinite(loss):
        raise SystemExit("training diverged")
    digest = hashlib.sha256(repr(model.params).encode()).hexdigest()[:16]
    print(f"final weights {model.params!r} sha256 {digest}")
    print("done")


if __name__ == "__main__":
    main()
