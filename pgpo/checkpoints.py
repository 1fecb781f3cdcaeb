"""Which checkpoint a run resumes from: the newest *complete* one (torch-free).

Checkpoints are Hugging Face's own: `PGPOTrainer` lets `Trainer._save_checkpoint` write `checkpoint-N/` in place,
so its bookkeeping (the best checkpoint's path in `trainer_state.json`, rotation by `save_total_limit`) refers to
the folders that exist. Inside that save, the model, optimizer, scheduler, RNG state, the fp32 EMA teacher and
the PGPO state are written first and `trainer_state.json` last; rotation runs only after it. So a save killed
half-way leaves at most one incomplete folder - the newest - while every older one is intact, and a checkpoint is
complete exactly when its `trainer_state.json` parses and names its own step, and its PGPO state is there.
`last_complete_checkpoint` is what `--resume` (and `PGPOTrainer.train(resume_from_checkpoint=True)`) uses;
incomplete folders newer than it are removed by `discard_incomplete` before training continues, so that a later
save of the same step does not mix with their files and rotation never counts them.
"""

from __future__ import annotations

import json
import os
import re
import shutil

TRAINER_STATE_NAME = "trainer_state.json"       # transformers' name (transformers.trainer.TRAINER_STATE_NAME)
PGPO_STATE_NAME = "pgpo_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_steps(run_dir: str) -> list[tuple[int, str]]:
    """(step, path) of every `checkpoint-N` folder in run_dir, by step."""
    if not os.path.isdir(run_dir):
        return []
    out = []
    for name in os.listdir(run_dir):
        m = _CHECKPOINT.match(name)
        if m and os.path.isdir(os.path.join(run_dir, name)):
            out.append((int(m.group(1)), os.path.join(run_dir, name)))
    return sorted(out)


def is_complete(path: str, step: int | None = None) -> bool:
    """True when the checkpoint folder's save finished: trainer_state.json (written last) parses and names the
    folder's step, and the PGPO state is there."""
    try:
        with open(os.path.join(path, TRAINER_STATE_NAME)) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return False
    if step is not None and state.get("global_step") != step:
        return False
    return os.path.exists(os.path.join(path, PGPO_STATE_NAME))


def last_complete_checkpoint(run_dir: str) -> str | None:
    """The newest complete checkpoint of run_dir, or None."""
    for step, path in reversed(checkpoint_steps(run_dir)):
        if is_complete(path, step):
            return path
    return None


def discard_incomplete(run_dir: str) -> list[str]:
    """Remove the checkpoint folders newer than the last complete one (a save that was killed); returns them."""
    last = last_complete_checkpoint(run_dir)
    last_step = -1 if last is None else int(_CHECKPOINT.match(os.path.basename(last)).group(1))
    removed = []
    for step, path in checkpoint_steps(run_dir):
        if step > last_step and not is_complete(path, step):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
