"""What `pgpo train --resume` may change, decided before anything loads (torch-free).

A run folder records the settings the run started with (`run_config.yaml`). Resuming continues *that* run, so a
setting that changes what is trained - the method, the data, the model, the optimizer, the batch, the rollouts -
must be the same; `check` names every one that differs in one line. Settings that only change what is observed
or kept are allowed (SAFE: logging, checkpoint cadence and rotation, evaluation, the monitor, max_steps to extend
the run), and each resume's allowed changes are appended to `resumes.jsonl` in the run folder, so the record
still describes the run. `run_config.yaml` itself is never rewritten by a resume.

    finished_step(out_dir)      the step of the newest complete checkpoint (pgpo.checkpoints), or None
    check(new, old, step)       the allowed changes {field: (old, new)}; ResumeError for the others
"""

from __future__ import annotations

import json
import os
import time

import yaml

from pgpo.checkpoints import TRAINER_STATE_NAME, last_complete_checkpoint
from runtools.files import atomic_write_text

RUN_CONFIG_NAME = "run_config.yaml"
RESUMES_NAME = "resumes.jsonl"
# fields a resume may change (a trailing ".*" covers a whole section or a family of fields): what is observed or
# kept - checkpoint cadence and rotation, reporting, logging, data-loader workers, evaluation, the monitor - and
# max_steps, to extend the run
SAFE = ("name", "training.max_steps", "training.save_steps", "training.save_total_limit", "training.report_to",
        "training.dataloader_num_workers", "training.dataloader_pin_memory", "training.dataloader_persistent_workers",
        "training.dataloader_prefetch_factor", "training.disable_tqdm", "training.log_level", "training.log_level_replica",
        "training.log_on_each_node", "training.logging_dir", "training.run_name", "training.project",
        "training.trackio_*", "training.hub_*", "training.push_to_hub", "training.skip_memory_metrics",
        "training.ddp_timeout", "training.log_completions", "training.num_completions_to_print",
        "training.logging_first_step", "training.include_num_input_tokens_seen", "training.torch_empty_cache_steps",
        "eval.*", "monitor.*")


class ResumeError(ValueError):
    """A resume that cannot continue the run as asked (the message is one line)."""


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _safe(key: str) -> bool:
    return any(key == s or (s.endswith("*") and key.startswith(s[:-1])) for s in SAFE)


def checkpoint_step(path: str) -> int:
    with open(os.path.join(path, TRAINER_STATE_NAME)) as f:
        return int(json.load(f)["global_step"])


def check(new: dict, old: dict, step: int) -> dict:
    """The changes `new` makes to the run's recorded settings `old` that a resume from `step` allows; ResumeError
    naming every field whose change would alter the run (and a max_steps below the step already reached)."""
    a, b = flatten(old), flatten(new)
    for k in ("training.output_dir",):            # the same folder, however it was spelled
        a.pop(k, None)
        b.pop(k, None)
    changed = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    refused = [k for k in changed if not _safe(k)]
    if refused:
        shown = "; ".join(f"{k} {changed[k][0]!r} -> {changed[k][1]!r}" for k in refused)
        raise ResumeError(f"--resume: the run was started with other settings ({RUN_CONFIG_NAME}): {shown}; resume "
                          "with the run's settings, or start a new run in another folder")
    max_steps = b.get("training.max_steps")
    if max_steps is not None and 0 < max_steps < step:            # (max_steps <= 0: TRL trains by epochs)
        raise ResumeError(f"--resume: training.max_steps {max_steps} is below the step the run has reached ({step})")
    return {k: v for k, v in changed.items()}


def plan(out_dir: str, new: dict) -> tuple[str, int, dict]:
    """(checkpoint, its step, allowed changes) for resuming the run in out_dir with settings `new`; ResumeError when
    there is nothing to resume or a change is refused."""
    ckpt = last_complete_checkpoint(out_dir)
    if ckpt is None:
        why = "does not exist" if not os.path.isdir(out_dir) else "holds no complete checkpoint"
        raise ResumeError(f"--resume: {out_dir} {why}: nothing to resume (drop --resume to start the run)")
    step = checkpoint_step(ckpt)
    old_path = os.path.join(out_dir, RUN_CONFIG_NAME)
    changes = {}
    if os.path.exists(old_path):
        with open(old_path) as f:
            old = yaml.safe_load(f) or {}
        changes = check(new, old, step)
    return ckpt, step, changes


def record(out_dir: str, step: int, changes: dict) -> None:
    """Append this resume (its step and allowed changes) to resumes.jsonl."""
    rec = {"resumed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from_step": step,
           "changes": {k: {"from": v[0], "to": v[1]} for k, v in changes.items()}}
    path = os.path.join(out_dir, RESUMES_NAME)
    prev = open(path).read() if os.path.exists(path) else ""
    atomic_write_text(path, prev + json.dumps(rec) + "\n")
