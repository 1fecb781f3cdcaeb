"""Worker for test_deepspeed.py, started by `accelerate launch` on 2 CPU processes (DeepSpeed ZeRO-2 / ZeRO-3 on
DeepSpeed's CPU accelerator with gloo, or plain DDP as the reference): the PGPO trainer on the tiny Qwen3 for 3
optimizer steps of 2 micro-batches, a checkpoint after each, the loss of step 2 made non-finite (so DeepSpeed's
global gradient norm is NaN and PGPO's guard must skip the step).

Each rank writes <result>.rank<r>.json: its m_k history, the guard's skip count, the log's rows (rank 0), and the
largest deviation of the fp32 EMA teacher from an EMA computed here in float64 from the student's full parameters
after every step (the initial teacher, then (1 - r) T + r theta_k on every step that was not skipped). Rank 0 also
writes the student's final full parameters (<result>.params.pt) for the comparison across engines.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from trainer_helpers import make_trainer  # noqa: E402

NAN_STEP = 1                    # global_step during the second optimizer step


def full_copy(model):
    """The full parameters of `model` in float64, from what each rank owns: under ZeRO-3 the `ds_tensor` partitions
    all-gathered here (a collective), not DeepSpeed's gathered copies; otherwise the tensors themselves."""
    import torch.distributed as dist
    out = {}
    for n, p in model.named_parameters():
        if hasattr(p, "ds_tensor"):
            part = p.ds_tensor.data.double()
            parts = [torch.empty_like(part) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, part)
            out[n] = torch.cat(parts)[: p.ds_numel].view(p.ds_shape).clone()
        else:
            out[n] = p.detach().double().clone()
    return out


def stale_gathered_copies(model) -> float:
    """ZeRO-3: the largest difference between a parameter's gathered full copy (what the forward reads while it is
    available, e.g. the persistent small ones) and its partitions - 0 when DeepSpeed's copies are current."""
    full = full_copy(model)
    worst = 0.0
    for n, p in model.named_parameters():
        if hasattr(p, "ds_tensor") and p.ds_status.name == "AVAILABLE" and p.data.numel() == p.ds_numel:
            worst = max(worst, float((p.data.double().view(p.ds_shape) - full[n]).abs().max()))
    return worst


def skip_the_shared_memory_op():
    """DeepSpeed's CPU backend JIT-compiles its shared-memory all-reduce op (g++, ~40 CPU-s, again in every
    environment: torch_extensions keys it by Python version, not by environment) when the process group starts. Only
    `inference_all_reduce` uses it, never training; marking it unavailable (DeepSpeed's own edit-persisting list of
    compatible ops, which a non-Linux machine gets the same way) leaves every collective of training on gloo, as
    before."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def main(out_dir, result, max_steps, resume_from):
    from transformers import TrainerCallback

    from pgpo.runlog import of_kind, read_log
    from pgpo.trainer import PGPOTrainer

    class NaNAtStep2(PGPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training and self.state.global_step == NAN_STEP and \
                    self.accelerator.gradient_state.sync_gradients:
                loss = loss * float("nan")
            return loss

    overrides = ["training.per_device_train_batch_size=2", "training.save_steps=1", "training.save_total_limit=5"]
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":      # set by `accelerate launch`
        skip_the_shared_memory_op()
    trainer = make_trainer(out_dir, overrides, max_steps=max_steps, trainer_cls=NaNAtStep2)

    class Snapshots(TrainerCallback):                    # added after the EMA teacher's callback: runs after it
        def __init__(self):
            self.student, self.teacher = [], []

        def on_train_begin(self, args, state, control, model=None, **kw):
            self.student.append(full_copy(trainer.accelerator.unwrap_model(trainer.model_wrapped)))
            self.teacher.append(full_copy(trainer.ema_teacher.teacher))

        def on_step_end(self, args, state, control, model=None, **kw):
            self.student.append(full_copy(trainer.accelerator.unwrap_model(trainer.model_wrapped)))
            self.teacher.append(full_copy(trainer.ema_teacher.teacher))
            self.stale = max(getattr(self, "stale", 0.0), stale_gathered_copies(trainer.ema_teacher.teacher))

    snaps = Snapshots()
    trainer.add_callback(snaps)
    trainer.train(resume_from_checkpoint=resume_from or None)

    controller = trainer.pgpo_controller()
    rate = trainer.ema_teacher.rate
    skipped_steps = {int(r["step"]) for r in of_kind(read_log(os.path.join(out_dir, "log.jsonl")), "train")
                     if r.get("skipped")}
    first_step = trainer.state.global_step - (len(snaps.student) - 1)
    want = dict(snaps.teacher[0])
    worst = 0.0
    for k in range(1, len(snaps.student)):
        if first_step + k not in skipped_steps:
            want = {n: (1 - rate) * want[n] + rate * snaps.student[k][n] for n in want}
        for n, t in snaps.teacher[k].items():
            scale = float(want[n].abs().max()) + 1e-12
            worst = max(worst, float((t - want[n]).abs().max()) / scale)
    rank = trainer.accelerator.process_index
    out = {"engine": "deepspeed" if trainer.is_deepspeed_enabled else "ddp",
           "zero_stage": trainer.accelerator.state.deepspeed_plugin.zero_stage if trainer.is_deepspeed_enabled else 0,
           "world": trainer.accelerator.num_processes, "multipliers": [r.multiplier for r in controller.modulator.history],
           "skipped": controller.guard.skipped, "ema_worst_rel": worst, "ema_steps_checked": len(snaps.student) - 1,
           "teacher_sharded": trainer.ema_teacher.sharded,
           "teacher_stale_copies": getattr(snaps, "stale", 0.0), "global_step": trainer.state.global_step}
    with open(f"{result}.rank{rank}.json", "w") as f:
        json.dump(out, f)
    if rank == 0:
        torch.save({n: v.float() for n, v in snaps.student[-1].items()}, f"{result}.params.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
