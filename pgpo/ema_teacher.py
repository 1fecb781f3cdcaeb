"""The EMA teacher, averaged in fp32 whatever the model's dtype.

    shadow <- (1 - r) * shadow + r * student      (fp32, every `teacher_sync_steps` optimizer steps)
    teacher <- cast(shadow, teacher dtype)         (the copy the teacher's forward pass uses)

Why fp32: with bf16 weights, EMA rate r = 0.05 and lr 1e-5, an increment r * (student - teacher) is mostly
below bf16's resolution (8 bits of mantissa), so an in-place bf16 EMA (TRL's `SyncTeacherModelCallback`) stays
near the base model. KL(teacher || student) then grows for reasons unrelated to the feedback, which biases
PGPO's I_k (and m_k) upward over training - a bias SDPO does not see. The SDPO reference keeps its EMA teacher
in fp32; so does this class.

Sharding. The shadow holds exactly the teacher's *local* storage of each parameter: the whole tensor (single
process, DDP), the local shard of a DTensor (FSDP2), or the local partition `ds_tensor` (DeepSpeed ZeRO-3;
parameters ZeRO-3 keeps permanently gathered, `ds_persist`, are averaged whole - their partition is never read
by the forward pass).
The student is sharded the same way (same shapes, same world size), so the update is shard-local, needs no
communication, and costs 4 bytes per *local* parameter. When the teacher already is fp32 its storage is the
shadow itself (no copy).

Checkpoints carry the shadow (`state_dict`), so `--resume` restores the fp32 average, not its rounded copy.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback


def local_storage(p: torch.nn.Parameter) -> torch.Tensor:
    """What this rank owns of parameter `p`: the ZeRO-3 partition `ds_tensor` (1-d; the optimizer writes it, and a
    gather rebuilds the full tensor from it - also for the parameters ZeRO-3 keeps gathered, `ds_persist`, whose
    full copy it refreshes after each step: see `refresh_gathered`); the DTensor local shard (FSDP2); or the tensor
    itself."""
    if hasattr(p, "ds_tensor"):                                   # DeepSpeed ZeRO-3 partition (1-d)
        return p.ds_tensor.data
    if type(p.data).__name__ == "DTensor":                        # FSDP2
        return p.data.to_local()
    return p.data


def refresh_gathered(model: torch.nn.Module) -> None:
    """After writing ZeRO-3 partitions: rebuild the full copy of the parameters ZeRO-3 holds gathered (persistent
    ones, and any gathered at the moment) from them, as DeepSpeed does for the student around its own optimizer step
    (partition, then all-gather). Every rank calls it with the same parameters in the same order (the gather is a
    collective); a no-op without ZeRO-3."""
    from_partitions = [p for p in model.parameters() if hasattr(p, "ds_tensor")
                       and getattr(p, "ds_status", None) is not None and p.ds_status.name == "AVAILABLE"]
    if from_partitions:                     # release the stale full copies (the partitions are current), re-gather
        from_partitions[0].partition(param_list=from_partitions, has_been_updated=False)
        from_partitions[0].all_gather(param_list=from_partitions)


def is_sharded(model: torch.nn.Module) -> bool:
    return any(hasattr(p, "ds_tensor") or type(p.data).__name__ == "DTensor" for p in model.parameters())


class FP32EMATeacher(TrainerCallback):
    """Keeps `teacher` an EMA (rate `rate`, every `sync_steps` optimizer steps) of the trained model, in fp32.

    `step_skipped()` says whether the optimizer step that just ended was skipped (non-finite gradient): the
    average is then left alone. Replaces TRL's in-dtype `SyncTeacherModelCallback`.
    """

    def __init__(self, teacher: torch.nn.Module, rate: float, sync_steps: int = 1, step_skipped=lambda: False,
                 accelerator=None):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"teacher_update_rate must be in [0, 1], got {rate}")
        self.teacher, self.accelerator = teacher, accelerator
        self.rate, self.sync_steps, self.step_skipped = float(rate), int(sync_steps), step_skipped
        self.names = [n for n, _ in teacher.named_parameters()]
        self.sharded = is_sharded(teacher)           # then each rank checkpoints its own shard
        # the fp32 average of each parameter: a copy when the teacher is in a lower precision, else None - the
        # teacher's own fp32 storage is the average, looked up at each use (DeepSpeed ZeRO-3 replaces `p.data` when it
        # gathers or releases a parameter, so a reference kept from here could point at a released placeholder)
        self._copies: list[torch.Tensor | None] = []
        for p in teacher.parameters():
            t = local_storage(p)
            self._copies.append(t.detach().float().clone() if t.dtype != torch.float32 else None)

    @property
    def shadow(self) -> list[torch.Tensor]:
        """This rank's fp32 average, one tensor per teacher parameter."""
        return [c if c is not None else local_storage(p) for c, p in zip(self._copies, self.teacher.parameters())]

    @property
    def shadow_bytes(self) -> int:
        """Memory the fp32 average adds on this rank (0 when the teacher itself is fp32)."""
        return sum(c.numel() * 4 for c in self._copies if c is not None)

    @torch.no_grad()
    def update(self, student: torch.nn.Module) -> None:
        """One EMA step towards `student`'s current parameters (sharded like the teacher)."""
        r = self.rate
        for name, c, s, t in zip(self.names, self._copies, student.parameters(), self.teacher.parameters(),
                                 strict=True):
            sh = c if c is not None else local_storage(t)
            src = local_storage(s)
            if src.shape != sh.shape:
                raise RuntimeError(f"EMA teacher: {name} is stored as {tuple(sh.shape)} on this rank but the student's "
                                   f"as {tuple(src.shape)}: teacher and student must be sharded alike")
            sh.mul_(1.0 - r).add_(src.float(), alpha=r)
            if c is not None:
                local_storage(t).copy_(c)
        refresh_gathered(self.teacher)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.sync_steps == 0 and not self.step_skipped():
            model = kwargs["model"]
            self.update(self.accelerator.unwrap_model(model) if self.accelerator is not None else model)

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """This rank's fp32 average, by teacher parameter name (CPU copies)."""
        return {n: s.detach().cpu().clone() for n, s in zip(self.names, self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.names if n not in state]
        if missing:
            raise RuntimeError(f"EMA teacher checkpoint lacks {len(missing)} parameter(s), e.g. {missing[:3]}")
        for n, c, sh, p in zip(self.names, self._copies, self.shadow, self.teacher.parameters()):
            src = state[n]
            if src.shape != sh.shape:
                raise RuntimeError(f"EMA teacher checkpoint: {n} has shape {tuple(src.shape)}, expected "
                                   f"{tuple(sh.shape)} (resume with the same number of processes and sharding)")
            sh.copy_(src.to(sh.device, torch.float32))
            if c is not None:
                local_storage(p).copy_(sh)
        refresh_gathered(self.teacher)
