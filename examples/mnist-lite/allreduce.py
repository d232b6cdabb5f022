"""Gradient averaging across ranks through MASTER_ADDR:MASTER_PORT, the rendezvous the training
operator (and kflow's local backend) sets up. torch.distributed with gloo when torch is
installed; otherwise a small all-reduce over sockets: rank 0 sums every rank's gradient in rank
order and sends the average back, so every rank applies the same update and ends with the same
weights, bit for bit."""

import json
import os
import socket
import time


class SocketAllReduce:
    name = "sockets"

    def __init__(self, rank, world, addr, port, timeout=120.0):
        self.rank, self.world = rank, world
        self.peers = []
        if world == 1:
            return
        if rank == 0:
            server = socket.create_server(("", port), reuse_port=False, backlog=world)
            server.settimeout(timeout)
            by_rank = {}
            while len(by_rank) < world - 1:
                conn, _ = server.accept()
                stream = conn.makefile("rw")
                by_rank[int(stream.readline())] = (conn, stream)
            server.close()
            self.peers = [by_rank[r] for r in sorted(by_rank)]
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    conn = socket.create_connection((addr, port), timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            conn.settimeout(timeout)
            stream = conn.makefile("rw")
            stream.write(f"{rank}\n")
            stream.flush()
            self.peers = [(conn, stream)]

    def average(self, values):
        if self.world == 1:
            return list(values)
        if self.rank == 0:
            total = list(values)
            for _, stream in self.peers:
                for i, v in enumerate(json.loads(stream.readline())):
                    total[i] += v
            mean = [v / self.world for v in total]
            line = json.dumps(mean) + "\n"
            for _, stream in self.peers:
                stream.write(line)
                stream.flush()
            return mean
        _, stream = self.peers[0]
        stream.write(json.dumps(list(values)) + "\n")
        stream.flush()
        return json.loads(stream.readline())

    def close(self):
        for conn, stream in self.peers:
            stream.close()
            conn.close()


class TorchAllReduce:
    name = "torch.distributed (gloo)"

    def __init__(self, rank, world):
        import torch.distributed as dist

        self.dist = dist
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
        self.world = world

    def average(self, values):
        import torch

        tensor = torch.tensor(values, dtype=torch.float64)
        self.dist.all_reduce(tensor)
        return (tensor / self.world).tolist()

    def close(self):
        self.dist.destroy_process_group()


def connect(rank, world):
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = int(os.environ.get("MASTER_PORT", "23456"))
    try:
        import torch.distributed  # noqa: F401
    except ImportError:
        return SocketAllReduce(rank, world, addr, port)
    return TorchAllReduce(rank, world)
