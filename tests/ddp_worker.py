"""A worker for tests/avmodels/engine/test_ddp.py: GlobalBatchNorm in a real 2-process gloo group."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from avmodels.engine.distributed import GlobalBatchNorm


def main(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    # features with |mean| >> std, as pooled visual features are
    x = (1000.0 + torch.randn(8, 5, 3)).requires_grad_(True)
    w = torch.randn(8, 5, 3)
    bn = GlobalBatchNorm(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    part = slice(rank * 4, (rank + 1) * 4)
    xs = x.detach()[part].clone().requires_grad_(True)
    y = bn(xs)
    (y * w[part]).sum().backward()
    dist.all_reduce(bn.weight.grad)  # what DDP does with parameter gradients (sum here)
    torch.save(
        {"y": y.detach(), "gx": xs.grad, "gw": bn.weight.grad, "rm": bn.running_mean,
         "rv": bn.running_var},
        f"{out}/rank{rank}.pt",
    )  # fmt: skip
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
