"""Whether the model a run trains, or `pgpo eval` evaluates, can be loaded: a one-line reason before anything is
loaded or written (a folder that is not a model, a run folder instead of its checkpoint, a hub name with the hub
off and nothing cached), or None."""

from __future__ import annotations

import os


def model_source_problem(cfg) -> str | None:
    """Why the run's model cannot be loaded (one line, before anything is written), or None: a local path that is
    not a model folder, or a hub name with the hub switched off and nothing cached."""
    if cfg.model.tiny:
        return None
    name = cfg.model.name_or_path
    if os.path.isdir(name):
        return None if os.path.exists(os.path.join(name, "config.json")) else \
            f"model.name_or_path: {name} is not a model folder (no config.json in it; `pgpo import-model` makes one)"
    problem = model_folder_problem(name)
    if problem:
        return "model.name_or_path: " + problem.split(": ", 1)[-1] if problem.startswith("--model") else problem
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        try:
            from huggingface_hub import try_to_load_from_cache
            cached = try_to_load_from_cache(name, "config.json")
        except Exception:                  # noqa: BLE001 - no hub library or a bad name: let the loader say
            return None
        if not isinstance(cached, str):
            return (f"model.name_or_path: {name!r} is a hub name, the hub is off (HF_HUB_OFFLINE) and it is not in the "
                    "local cache: give a model folder (`pgpo import-model` turns a GGUF file into one)")
    return None


def model_folder_problem(model: str) -> str | None:
    """Why `model` cannot be evaluated (one line), or None: a missing local path, or a run folder / any folder
    without a model's config.json (the checkpoints found are listed). A name that is not a local path is left to
    the hub."""
    if os.path.isdir(model):
        if os.path.exists(os.path.join(model, "config.json")):
            return None
        ckpts = sorted((d for d in os.listdir(model) if d.startswith("checkpoint-") and
                        os.path.exists(os.path.join(model, d, "config.json"))), key=lambda d: int(d.split("-")[-1])
                       if d.split("-")[-1].isdigit() else -1)
        if ckpts:
            return (f"--model {model} is a run folder, not a checkpoint: use one of "
                    + ", ".join(os.path.join(model, c) for c in ckpts))
        return f"--model {model} is not a model folder (no config.json in it)"
    if os.path.exists(model):
        return f"--model {model} is a file, not a model folder"
    parts = model.split("/")          # a hub name is `name` or `org/name`; `org` is not a local folder
    looks_local = model.startswith((".", "/", "~")) or len(parts) > 2 or (len(parts) == 2 and os.path.isdir(parts[0]))
    if looks_local:
        return f"--model {model}: no such folder (give a checkpoint folder, e.g. runs/NAME/checkpoint-N)"
    return None
