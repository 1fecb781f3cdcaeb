"""Agreeing on I_k across data-parallel ranks and gradient-accumulation micro-batches.

Each rank sees different data, so its local I differs. If ranks used their own m_k, the replicas
would take different steps and drift apart. The fix is to reduce the *sufficient statistics*
(token-weighted sum, token count, non-finite and failure counters) over every micro-batch of the
optimizer step and over every rank, then divide: every rank gets the same I_k and hence the same m_k.

    acc = InfoAccumulator()
    for micro_batch in step:             # forward passes of one optimizer step
        acc.add(information_from_...(...))
    stats = acc.reduce(group)            # one all-reduce, on every rank, before the optimizer step
    m = multiplier(stats.value)          # identical on every rank

Under DeepSpeed the optimizer step runs inside the last micro-batch's backward, so `reduce` must be
called before that backward (the trainer does it in compute_loss of the last micro-batch).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from pgpo.information import InfoStats


def is_distributed(group=None) -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def all_reduce_info(stats: InfoStats, group=None, device: torch.device | str | None = None) -> InfoStats:
    """Sum InfoStats over the ranks of `group` (identity when not distributed).

    `device` must be one the backend can reduce on (a CUDA device for NCCL; CPU for gloo); by default
    the current CUDA device under NCCL, else CPU.
    """
    if not is_distributed(group):
        return InfoStats(stats.total, stats.count, stats.nonfinite)
    if device is None:
        backend = dist.get_backend(group)
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = stats.as_tensor(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return InfoStats.from_tensor(t)


class InfoAccumulator:
    """Sum InfoStats over the micro-batches of one optimizer step, then reduce across ranks once."""

    def __init__(self) -> None:
        self.local = InfoStats()

    def add(self, stats: InfoStats) -> None:
        self.local = self.local.merge(stats)

    def reduce(self, group=None, device=None) -> InfoStats:
        """All-reduce the step's statistics and reset the accumulator for the next step."""
        out = all_reduce_info(self.local, group=group, device=device)
        self.local = InfoStats()
        return out
