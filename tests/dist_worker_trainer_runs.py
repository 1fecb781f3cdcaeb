"""Worker for test_trainer_two_ranks.py: the PGPO trainer on 2 gloo processes (CPU), several runs in one launch.

    python dist_worker_trainer_runs.py OUT_DIR RESULT_PATH RUN [RUN ...]

The runs train one after the other in the same two processes (one launch, one process group), each in
OUT_DIR/<RUN with ':' as '-'>, and RESULT_PATH (RANK replaced by the rank) holds every run's record under its RUN.

RUN
  ddp                    4 completions per device, PGPO with the smoke settings
  variant:token          per-token weights normalised over both ranks (alpha 2, m_max 3)
  variant:scale_free     the scale-free rule with its moving average Ibar (beta 0.5, 2 steps)
  uneven:SCENARIO:ALPHA[:trl]   ranks disagree about whether a micro-batch has anything to distill:
      rank_without_success   1 completion per device, 4 accumulation steps, no feedback: rank 0's group has two
                             successes (every sample has a sibling solution), rank 1's none (all masked)
      one_masked_microbatch  2 completions per device, 2 accumulation steps, groups of 2: rank 1's second
                             micro-batch is a group without success (masked), everything else is distilled
      trl  TRL's own SDPOTrainer instead of PGPO's, to reproduce its hang (never used by the tests)
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from distributed_utils import finish_process_group  # noqa: E402
from trainer_helpers import make_trainer, param_digest, recording_trainer_cls  # noqa: E402

VARIANTS = {"token": ["pgpo.alpha=2", "pgpo.m_max=3", "pgpo.granularity=token"],
            "scale_free": ["pgpo.alpha=0", "pgpo.beta=0.5", "pgpo.ema_steps=2"]}

SCENARIOS = {
    "rank_without_success": (["training.per_device_train_batch_size=1", "training.generation_batch_size=8",
                              "training.num_generations=4"], {0: [1, 1, 0, 0], 1: [0, 0, 0, 0]}),
    "one_masked_microbatch": (["training.per_device_train_batch_size=2", "training.generation_batch_size=8",
                               "training.num_generations=2"], {0: [1, 1, 1, 1], 1: [1, 1, 0, 0]}),
}


def _record(trainer) -> dict:
    hist = trainer.pgpo_controller().modulator.history if hasattr(trainer, "pgpo_controller") else []
    return {"digest": param_digest(trainer.model), "multipliers": [r.multiplier for r in hist],
            "infos": [r.info for r in hist], "info_ema": [r.info_ema for r in hist],
            "fallbacks": [r.fallback for r in hist], "world": trainer.accelerator.num_processes,
            "accumulation": trainer.args.gradient_accumulation_steps}


def train_ddp(out_dir) -> dict:
    trainer = make_trainer(out_dir, ["training.per_device_train_batch_size=4"], max_steps=2)
    trainer.train()
    return _record(trainer)


def train_variant(out_dir, name) -> dict:
    tr = make_trainer(out_dir, ["training.per_device_train_batch_size=4", *VARIANTS[name]], max_steps=2,
                      trainer_cls=recording_trainer_cls())
    tr.train()
    return {**_record(tr), "micro": [r["normaliser"] for r in tr.records if r["normaliser"] is not None]}


def train_uneven(out_dir, scenario, alpha, trainer_kind="pgpo") -> dict:
    import torch.distributed as dist

    overrides, rewards = SCENARIOS[scenario]

    def scripted_reward(completions=None, **kwargs):
        r = rewards[dist.get_rank()]
        if len(completions) != len(r):
            raise AssertionError(f"expected {len(r)} local completions, got {len(completions)}")
        return [float(x) for x in r]

    from pgpo.trainer import PGPOTrainer

    base = PGPOTrainer
    if trainer_kind == "trl":
        from trl.experimental.sdpo import SDPOTrainer
        base = SDPOTrainer
    mask_sums = []

    class MaskRecorder(base):
        def _compute_self_distillation_loss(self, model, inputs, distillation_logits):
            if model.training:
                mask_sums.append([self.state.global_step, int(distillation_logits.loss_mask.sum())])
            return super()._compute_self_distillation_loss(model, inputs, distillation_logits)

    trainer = make_trainer(out_dir, overrides + ["data.feedback=none", f"pgpo.alpha={float(alpha)}"], max_steps=2,
                           trainer_cls=MaskRecorder, reward_funcs=[scripted_reward])
    trainer.train()
    return {**_record(trainer), "teacher_digest": param_digest(trainer.teacher_model), "mask_sums": mask_sums}


KINDS = {"ddp": train_ddp, "variant": train_variant, "uneven": train_uneven}


def main(out_dir, result_path, *runs):
    import torch.distributed as dist

    records = {}
    for run in runs:
        kind, *args = run.split(":")
        records[run] = KINDS[kind](os.path.join(out_dir, run.replace(":", "-")), *args)
    with open(result_path.replace("RANK", str(dist.get_rank())), "w") as f:
        json.dump(records, f)
    finish_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
