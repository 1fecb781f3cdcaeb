"""Worker for test_trainer.py's DDP test: the PGPO trainer on 2 gloo processes (CPU)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from distributed_utils import finish_process_group  # noqa: E402
from trainer_helpers import make_trainer, param_digest  # noqa: E402


def main(out_dir, result_path):
    trainer = make_trainer(out_dir, ["training.per_device_train_batch_size=4"], max_steps=2)
    trainer.train()
    hist = trainer.pgpo_controller().modulator.history
    with open(result_path.replace("RANK", os.environ["RANK"]), "w") as f:
        json.dump({"digest": param_digest(trainer.model), "multipliers": [r.multiplier for r in hist],
                   "infos": [r.info for r in hist], "world": trainer.accelerator.num_processes,
                   "accumulation": trainer.args.gradient_accumulation_steps}, f)
    finish_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
