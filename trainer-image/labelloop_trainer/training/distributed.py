"""One process or many: the process group, the device and the CPU threads of this process.

`torchrun` sets `WORLD_SIZE`, `RANK` and `LOCAL_RANK`; without them the trainer is a single
process. NCCL joins GPUs, gloo joins CPU processes. On CPU each process starts with an equal
share of the cores it may use (its affinity mask and its cgroup CPU quota, which is what a
pod's CPU limit becomes): torch's default of one thread per core of the host oversubscribes
the cores as soon as a pod is limited or two processes share a machine, and an
oversubscribed thread pool is several times slower than a smaller one (`loop.py` then
measures whether fewer threads are faster still on a machine busy with other work).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """Where this process stands."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs progress."""
        return self.rank == 0


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_cores() -> int:
    """The cores this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        quota, period = "max", "1"
    if quota != "max":
        cores = min(cores or 1, max(1, int(quota) // int(period)))
    return max(1, cores or 1)


def _cpu_threads(local_world: int) -> int:
    return max(1, cpu_cores() // local_world)


@contextmanager
def started() -> Iterator[Context]:
    """Join the process group (when under torchrun) for the duration of the block."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
        torch.set_num_threads(_cpu_threads(local_world))
    joined = world > 1 and not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Context(rank, world, local_rank, local_world, device)
    finally:
        if joined:
            dist.destroy_process_group()


def gather(ctx: Context, value: Any) -> list[Any]:
    """Every process's `value`, in rank order (just `[value]` for one process)."""
    if ctx.world == 1:
        return [value]
    values: list[Any] = [None] * ctx.world
    dist.all_gather_object(values, value)
    return values


def barrier(ctx: Context) -> None:
    """Wait for every process."""
    if ctx.world > 1:
        dist.barrier()


def min_over_processes(ctx: Context, value: int) -> int:
    """The smallest `value` of all processes."""
    return int(min(gather(ctx, value)))
