"""Worker for test_variants_trainer.py's gloo test: PGPO's variants (per-token weights normalised over both ranks;
the scale-free rule with its moving average Ibar) on 2 processes, different data per rank."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from distributed_utils import finish_process_group  # noqa: E402
from trainer_helpers import make_trainer, param_digest, recording_trainer_cls  # noqa: E402

VARIANTS = {"token": ["pgpo.alpha=2", "pgpo.m_max=3", "pgpo.granularity=token"],
            "scale_free": ["pgpo.alpha=0", "pgpo.beta=0.5", "pgpo.ema_steps=2"]}


def main(out_dir, result_path):
    out = {}
    for name, ov in VARIANTS.items():
        tr = make_trainer(os.path.join(out_dir, name), ["training.per_device_train_batch_size=4", *ov], max_steps=2,
                          trainer_cls=recording_trainer_cls())
        tr.train()
        hist = tr.pgpo_controller().modulator.history
        out[name] = {"digest": param_digest(tr.model), "multipliers": [r.multiplier for r in hist],
                     "infos": [r.info for r in hist], "info_ema": [r.info_ema for r in hist],
                     "micro": [r["normaliser"] for r in tr.records if r["normaliser"] is not None],
                     "world": tr.accelerator.num_processes}
    with open(result_path.replace("RANK", os.environ["RANK"]), "w") as f:
        json.dump(out, f)
    finish_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
