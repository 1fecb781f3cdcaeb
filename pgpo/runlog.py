"""The run log `log.jsonl`: its format, declared once, and the code that reads and trims it (torch-free).

One JSON object per line, `kind` first:
  train     one per optimizer step: `step`, the fields of TRAIN_FIELDS (None where a metric is missing or not
            finite), `step_time_s`, `elapsed_s` (seconds of training up to this step, summed over launches)
  eval      periodic mean@k: `step`, `mean_at_k`, `k`, `n_questions`, `stderr`, `answered_fraction`,
            `eval_time_s`
  collapse  the stability monitor's flag: `step`, `signal`, `reason`, ...
A crash can leave a torn last line: readers skip lines that are not JSON.
"""

from __future__ import annotations

import json
import os

from pgpo.resume import RESUMES_NAME, RUN_CONFIG_NAME
from runtools.files import atomic_write_text
from runtools.progress import duration

LOG_NAME = "log.jsonl"
DONE_NAME = "DONE.json"          # written when a run reaches its end: launchers skip such runs
# what a run writes into training.output_dir: a folder holding any of these holds a run (`pgpo train --overwrite`
# deletes exactly these - `*` ends a prefix - and leaves anything else in the folder alone)
RUN_OUTPUTS = ("checkpoint-*", ".staging-*", LOG_NAME, RUN_CONFIG_NAME, "init_model", "data_report.json",
               DONE_NAME, RESUMES_NAME, "runs")

# train-record field -> the trainer's metric it is read from
TRAIN_FIELDS = {
    "loss": "loss", "reward_mean": "self_distillation/reward_mean",
    "success_fraction": "self_distillation/success_sample_fraction",
    "distilled_fraction": "self_distillation/reprompt_sample_fraction",
    "info": "pgpo/info", "multiplier": "pgpo/multiplier", "fallback": "pgpo/fallback",
    "lr": "learning_rate", "grad_norm": "grad_norm", "tokens": "pgpo/tokens",
    "distilled_tokens": "pgpo/distilled_tokens", "distill_loss": "self_distillation/distillation_loss",
    "mean_length": "completions/mean_length", "entropy": "pgpo/entropy",
    "skipped": "pgpo/skipped", "skipped_total": "pgpo/skipped_total",
    "info_ema": "pgpo/info_ema", "weight_mean": "pgpo/weight_mean", "weight_max": "pgpo/weight_max",
}


def holds_run_outputs(out_dir: str) -> bool:
    """True when out_dir holds any of a run's outputs (RUN_OUTPUTS), e.g. a run killed before its first checkpoint."""
    from runtools.files import holds
    return holds(out_dir, RUN_OUTPUTS)


def launch_flags(out_dir: str) -> list[str]:
    """How a launcher continues a run folder: --resume from a complete checkpoint; --overwrite when it holds only
    what a run killed before its first checkpoint wrote (nothing to resume); nothing for a new folder."""
    from pgpo.checkpoints import last_complete_checkpoint
    if last_complete_checkpoint(out_dir) is not None:
        return ["--resume"]
    return ["--overwrite"] if holds_run_outputs(out_dir) else []


def read_log(path: str) -> list[dict]:
    """Every record of a log, in order, skipping torn (non-JSON) lines."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def of_kind(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r.get("kind") == kind]


def append_record(path: str, rec: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()


def truncate_after(path: str, step: int) -> float:
    """Drop records beyond `step` (a resumed run rewrites them), atomically; returns the elapsed training
    seconds recorded up to `step`."""
    if not os.path.exists(path):
        return 0.0
    keep = [r for r in read_log(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))
    return max([r.get("elapsed_s") or 0.0 for r in keep], default=0.0)


def step_line(rec: dict, max_steps: int) -> str:
    """One compact console line for a `train` record of the run log (above):
    `step 3/8  loss 0.123  reward 0.25  I 0.181  m 1.36  lr 1.0e-05  4.1 s/step  ETA 20s` (with `Ibar` and `w`, the
    mean loss weight, after I when a variant logs them)."""
    def num(key, fmt):
        v = rec.get(key)
        return "n/a" if v is None else format(v, fmt)
    step = rec["step"]
    per_step = rec["elapsed_s"] / step if rec.get("elapsed_s") and step else None
    eta = "n/a" if per_step is None else duration(per_step * max(max_steps - step, 0))
    dt = rec.get("step_time_s")
    extra = "".join(f"  {label} {num(key, '.3g')}" for key, label in (("info_ema", "Ibar"), ("weight_mean", "w"))
                    if rec.get(key) is not None)          # the variants' moving average / mean loss weight
    return (f"step {step}/{max_steps}  loss {num('loss', '.4g')}  reward {num('reward_mean', '.3g')}  "
            f"I {num('info', '.3g')}{extra}  m {num('multiplier', '.3g')}  lr {num('lr', '.2e')}  "
            f"{'n/a' if dt is None else f'{dt:.1f}'} s/step  ETA {eta}")
