"""Worker for test_distributed_masks.py: ranks disagree about whether a micro-batch has anything to distill.

    python dist_worker_uneven.py OUT_DIR RESULT_PATH RUN [RUN ...]

RUN is SCENARIO:ALPHA or SCENARIO:ALPHA:trl; the runs train one after the other in the same two processes (one
launch, one process group), each in OUT_DIR/SCENARIO-ALPHA, and RESULT_PATH (RANK replaced by the rank) holds
every run's record under its RUN.

SCENARIO
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
from trainer_helpers import make_trainer, param_digest  # noqa: E402

SCENARIOS = {
    "rank_without_success": (["training.per_device_train_batch_size=1", "training.generation_batch_size=8",
                              "training.num_generations=4"], {0: [1, 1, 0, 0], 1: [0, 0, 0, 0]}),
    "one_masked_microbatch": (["training.per_device_train_batch_size=2", "training.generation_batch_size=8",
                               "training.num_generations=2"], {0: [1, 1, 1, 1], 1: [1, 1, 0, 0]}),
}


def train_one(out_dir, scenario, alpha, trainer_kind="pgpo") -> dict:
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

    trainer = make_trainer(out_dir, overrides + ["data.feedback=none", f"pgpo.alpha={alpha}"], max_steps=2,
                           trainer_cls=MaskRecorder, reward_funcs=[scripted_reward])
    trainer.train()
    hist = trainer.pgpo_controller().modulator.history if trainer_kind == "pgpo" else []
    return {"digest": param_digest(trainer.model), "teacher_digest": param_digest(trainer.teacher_model),
            "multipliers": [r.multiplier for r in hist], "infos": [r.info for r in hist],
            "fallbacks": [r.fallback for r in hist], "mask_sums": mask_sums,
            "accumulation": trainer.args.gradient_accumulation_steps, "world": trainer.accelerator.num_processes}


def main(out_dir, result_path, *runs):
    import torch.distributed as dist

    records = {}
    for run in runs:
        scenario, alpha, *kind = run.split(":")
        records[run] = train_one(os.path.join(out_dir, f"{scenario}-{alpha}"), scenario, float(alpha), *kind)
    with open(result_path.replace("RANK", str(dist.get_rank())), "w") as f:
        json.dump(records, f)
    finish_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
