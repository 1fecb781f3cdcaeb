"""Run configuration: a YAML file of sections, validated before any model or dataset is loaded.

    model:    ModelSection: what to train (a hub name or path; or `tiny: true` for a random tiny Qwen3 on CPU)
    data:     DataSection: task, domain, source, prompt style, privileged feedback, malformed-record policy
    pgpo:     pgpo.settings.PGPOSettings: alpha (0 = plain SDPO), m_max, multiplier shape, I estimator
    training: any field of PGPOConfig - TRL's SDPOConfig and transformers' TrainingArguments - under its TRL name
    eval:     EvalSection: periodic mean@k validation
    monitor:  MonitorSection: collapse detection, optional early stop

The trainer's settings are declared once, by TRL: `training` and `pgpo` build one `pgpo.trainer_config.PGPOConfig`,
with TRL's defaults and TRL's checks (plus PGPOConfig's own). This module declares only what is not a training
argument - the model to load, the data, the evaluation, the monitor - as TRL's scripts do with ScriptArguments and
ModelConfig. The run sets a few PGPOConfig fields from those sections (SET_FROM) and fixes one (FIXED).

Every key is checked: an unknown key, a wrong type or an out-of-range value raises ConfigError in one line naming
the field (`training.learning_rate: expected a number, got 'fast'`, `training.learnin_rate: unknown key; did you
mean 'learning_rate'?`). Overrides are `dotted.key=value` strings whose value is read as YAML (`pgpo.alpha=2`,
`training.output_dir=/tmp/r`). Loading a config imports TRL (PGPOConfig); the sections alone import nothing heavy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import yaml

from pgpo.data import DOMAINS, DataError, canonical_domain
from pgpo.settings import PGPOSettings
from runtools.files import atomic_write_text
from runtools.schema import ConfigError, build, coerce, positive, read_yaml, unit, unknown_key


@dataclass
class ModelSection:
    name_or_path: str = "Qwen/Qwen3-8B"     # a hub name or a local model folder (e.g. from `pgpo import-model`)
    tiny: bool = False                      # build a random tiny Qwen3 (Qwen3 vocabulary) from a config
    tiny_hidden_size: int = 64              # tiny model: hidden size (a multiple of 4)
    tiny_layers: int = 2                    # tiny model: decoder layers
    tiny_seed: int = 0                      # tiny model: the seed of its random weights
    tiny_init_std: float = 0.02             # initializer_range; larger makes outputs depend on the context
    tokenizer: Optional[str] = None         # default: the model's own; tiny models use the packaged one
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    # the weights' dtype; bfloat16/float16 need DeepSpeed's fp32 master weights
    attn_implementation: Optional[Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3"]] = None
    # transformers' attention kernel (default: its choice)

    def validate(self, where: str) -> None:
        positive(where, "tiny_hidden_size", self.tiny_hidden_size)
        positive(where, "tiny_layers", self.tiny_layers)
        positive(where, "tiny_init_std", self.tiny_init_std)
        if self.tiny and self.tiny_hidden_size % 4:
            raise ConfigError(f"{where}.tiny_hidden_size: must be a multiple of 4 (4 attention heads)")


@dataclass
class DataSection:
    task: Literal["sciknoweval", "arithmetic"] = "sciknoweval"   # arithmetic: pgpo.data.arithmetic (domain unused)
    domain: str = "chemistry"               # SciKnowEval domain: chemistry, physics, biology, material
    source: Literal["packaged", "hub", "dir"] = "packaged"
    # packaged (shipped with pgpo), hub (datasets; needs network) or dir (`path`)
    path: Optional[str] = None              # folder of the data when source is dir
    prompt_style: Literal["paper", "reference"] = "reference"
    # reference: TRL's SDPO reprompt template; paper: the paper's
    feedback: Literal["none", "answer_key"] = "none"
    # the teacher's privileged context beside sibling solutions; answer_key leaks the answer (tests only)
    on_malformed: Literal["report", "error", "zip"] = "report"
    # malformed records: report (skip and count), error, zip (keep what parses)
    max_train_questions: Optional[int] = None  # use at most this many training questions
    max_eval_questions: Optional[int] = None  # evaluate on at most this many held-out questions

    def validate(self, where: str) -> None:
        try:
            self.domain = canonical_domain(self.domain)
        except DataError:
            raise ConfigError(f"{where}.domain: unknown domain {self.domain!r}; choose one of "
                              f"{', '.join(DOMAINS)}") from None
        if self.source == "dir" and not self.path:
            raise ConfigError(f"{where}.path: required when source is 'dir'")
        for name in ("max_train_questions", "max_eval_questions"):
            v = getattr(self, name)
            if v is not None:
                positive(where, name, v)
        if self.task == "arithmetic" and self.source != "packaged":
            raise ConfigError(f"{where}.source: the arithmetic task is generated; source must be 'packaged'")

    @property
    def subject(self) -> str:
        """What a run is about, for tables and figures: the Science-QA domain, or the task's name."""
        return self.domain if self.task == "sciknoweval" else self.task


@dataclass
class EvalSection:
    every_steps: int = 5                    # 0 disables periodic validation
    num_samples: int = 16                   # k of mean@k
    temperature: float = 0.6                # sampling temperature
    top_p: float = 0.95                     # nucleus sampling
    max_new_tokens: Optional[int] = None    # default: training.max_completion_length
    max_questions: Optional[int] = None     # evaluate at most this many held-out questions
    batch_size: int = 16                    # prompts per generate call (transformers)
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    # auto (vLLM when installed and a GPU is present), transformers or vllm
    at_start: bool = False                  # also evaluate before the first step

    def validate(self, where: str) -> None:
        if self.every_steps < 0:
            raise ConfigError(f"{where}.every_steps: must be >= 0, got {self.every_steps}")
        positive(where, "num_samples", self.num_samples)
        positive(where, "batch_size", self.batch_size)
        if not self.temperature > 0:
            raise ConfigError(f"{where}.temperature: must be positive")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"{where}.top_p: must be in (0, 1]")
        for name in ("max_new_tokens", "max_questions"):
            if getattr(self, name) is not None:
                positive(where, name, getattr(self, name))


@dataclass
class MonitorSection:
    enabled: bool = True                    # watch for collapse and keep the best checkpoint by mean@k
    accuracy_drop: float = 0.10       # flag when mean@k falls this far below its best
    length_ratio: float = 0.5         # ... or mean completion length below this fraction of its early level
    entropy_ratio: float = 0.5        # ... or the student's token entropy likewise
    window: int = 5                   # steps in the reference and moving averages
    patience: int = 2                 # consecutive bad observations before flagging
    stop: bool = False                # end training on a collapse (the best checkpoint is kept either way)

    def validate(self, where: str) -> None:
        unit(where, "accuracy_drop", self.accuracy_drop)
        for name in ("length_ratio", "entropy_ratio"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ConfigError(f"{where}.{name}: must be in (0, 1], got {v}")
        positive(where, "window", self.window)
        positive(where, "patience", self.patience)


SECTIONS = {            # section -> (its dataclass, what it holds); `training` is PGPOConfig (pgpo.trainer_config)
    "model": (ModelSection, "what to train"),
    "data": (DataSection, "the questions, prompt style and privileged feedback"),
    "pgpo": (PGPOSettings, "the step multiplier m_k (pgpo.settings.PGPOSettings; alpha 0 is plain SDPO)"),
    "eval": (EvalSection, "periodic mean@k validation on held-out questions"),
    "monitor": (MonitorSection, "collapse detection and the best checkpoint"),
}
TRAINING_PURPOSE = ("every field of PGPOConfig: TRL's SDPOConfig (the distillation objective, the teacher, rollouts) "
                    "and transformers' TrainingArguments (optimisation, batching, checkpointing), under their TRL names")
# PGPOConfig fields the run sets from another section (setting them under `training` is refused, naming the section)
SET_FROM = {"pgpo": "the pgpo section",
            "include_environment_feedback": "data.feedback (answer_key: the teacher sees the answer key)"}
# PGPOConfig fields the run fixes: the per-step log (log.jsonl, the monitor, the analysis) records every step
FIXED = {"logging_steps": 1}
# keys of the earlier layout (sdpo and training sections with their own names) -> where they are now
MOVED = {"sdpo": "SDPO's settings are TRL SDPOConfig fields: write sdpo.X as training.X",
         "training.questions_per_step": "use training.generation_batch_size = questions per step x num_generations",
         "model.gradient_checkpointing": "use training.gradient_checkpointing (transformers' field)"}
# `report_to` takes transformers' values and one more: auto = TensorBoard when it is installed, else none
REPORTERS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow",
             "comet_ml": "comet_ml"}     # report_to name -> the package it needs


@dataclass
class RunConfig:
    training: Any                           # pgpo.trainer_config.PGPOConfig: every trainer setting, pgpo included
    name: str = "run"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    eval: EvalSection = field(default_factory=EvalSection)
    monitor: MonitorSection = field(default_factory=MonitorSection)

    @property
    def pgpo(self) -> PGPOSettings:
        return self.training.pgpo

    @property
    def method(self) -> str:
        return "sdpo" if self.pgpo.is_sdpo else "pgpo"

    @property
    def questions_per_step(self) -> int:
        return self.training.generation_batch_size // self.training.num_generations

    def to_dict(self) -> dict:
        """The resolved settings: the sections, `pgpo`, and every PGPOConfig field (`training`), as plain data."""
        training = json.loads(json.dumps(self.training.to_dict(), default=str))
        pgpo = training.pop("pgpo")
        return {"name": self.name, "model": dataclasses.asdict(self.model), "data": dataclasses.asdict(self.data),
                "pgpo": pgpo, "training": training, "eval": dataclasses.asdict(self.eval),
                "monitor": dataclasses.asdict(self.monitor)}


def master_weights_problem(cfg: RunConfig, deepspeed: bool) -> str | None:
    """Why this run would train low-precision weights without an fp32 master copy, or None.

    torch AdamW updates the weights in their own dtype: with bf16 weights and lr 1e-5 most coordinates of an
    update are below bf16 resolution and are lost. DeepSpeed (ZeRO, bf16 mode) keeps fp32 master weights in
    its optimizer; DDP and FSDP2 do not, so they need fp32 weights (training.bf16 still computes in bf16).
    """
    if deepspeed or cfg.model.dtype == "float32" or (cfg.model.tiny and cfg.model.dtype == "auto"):
        return None                                   # (a tiny model is written in float32)
    return master_weights_message(cfg.model.dtype, cfg.training.learning_rate)


def master_weights_message(dtype: str, learning_rate: float) -> str:
    """The one line that refuses low-precision weights without master weights (the CLI before loading anything,
    PGPOTrainer for a model built in Python)."""
    return (f"model.dtype: {dtype} weights without fp32 master weights (torch AdamW at lr {learning_rate:g} would "
            "lose most updates); set model.dtype=float32 (training.bf16 keeps bf16 compute) or launch with a "
            "DeepSpeed ZeRO config such as experiments/accelerate/zero3-8gpu.yaml")


def _checkpointing_aliases(names) -> dict[str, str]:
    """transformers 5.20 renamed `gradient_checkpointing` to `activation_checkpointing` (the old name is deprecated,
    to be removed in v6); 5.17, which the vLLM CPU environment pins, has only the old one. Either name is accepted
    and set under the installed transformers' name (`names`: PGPOConfig's fields)."""
    new = "activation_checkpointing" in names
    pairs = [("gradient_checkpointing", "activation_checkpointing"),
             ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")]
    return {old: new_ for old, new_ in pairs} if new else {new_: old for old, new_ in pairs}


def _report_to(value, where: str):
    """transformers' `report_to`, with `auto` (TensorBoard when installed, else none); a named integration that is
    not installed is refused here, in one line, rather than when the trainer starts."""
    import importlib.util
    if value in ("auto", None):
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else "none"
    if value in ("none", "all"):
        return value
    names = value if isinstance(value, list) else [n.strip() for n in str(value).replace(" ", ",").split(",") if n.strip()]
    for n in names:
        if n not in REPORTERS:
            raise ConfigError(f"{where}: {n!r} is not one of none, auto, all, {', '.join(REPORTERS)} (a "
                              "comma-separated list of the latter is allowed)")
        if importlib.util.find_spec(REPORTERS[n]) is None:
            raise ConfigError(f"{where}: {n} is not installed (pip install {REPORTERS[n]})")
    return names


def _checked(value, tp, where: str):
    """A value for a PGPOConfig field: coerced and checked where the annotation is a plain type (bool, int, float,
    str, a Literal, Optional of one); compound annotations (unions of several types, enums) are left to TRL."""
    import types as pytypes
    simple = (bool, int, float, str)
    if typing.get_origin(tp) in (typing.Union, pytypes.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and (args[0] in simple or typing.get_origin(args[0]) is Literal):
            return None if value is None else coerce(value, args[0], where)
        return value
    if tp in simple or typing.get_origin(tp) is Literal:
        return coerce(value, tp, where)
    return value


def build_training(section: dict, pgpo: dict, model: ModelSection, data: DataSection):
    """PGPOConfig from the `training` mapping (TRL names), the `pgpo` mapping and what the model and data sections
    decide; ConfigError in one line naming the field for anything TRL or PGPOConfig refuses."""
    from pgpo.prompts import teacher_templates
    from pgpo.trainer_config import PGPOConfig

    if not isinstance(section, dict):
        raise ConfigError(f"training: expected a mapping, got {type(section).__name__}")
    types = typing.get_type_hints(PGPOConfig)
    aliases = _checkpointing_aliases(types)
    kw: dict[str, Any] = {}
    for key, value in section.items():
        where = f"training.{key}"
        if key in SET_FROM:
            raise ConfigError(f"{where}: set by {SET_FROM[key]}")
        if key in FIXED:
            if value != FIXED[key]:
                raise ConfigError(f"{where}: fixed at {FIXED[key]} (the run's per-step log records every step)")
            continue
        key = aliases.get(key, key)
        if key not in types:
            raise unknown_key(where, key, types, " (not a field of TRL's SDPOConfig or of PGPOConfig)")
        kw[key] = _checked(value, types[key], where)
    checkpointing = aliases.get("gradient_checkpointing", "gradient_checkpointing")   # the installed name
    if checkpointing not in kw:                       # TRL's default (True), under the name that does not warn
        kw[checkpointing] = PGPOConfig.__dataclass_fields__["gradient_checkpointing"].default
    kw["report_to"] = _report_to(kw.get("report_to", "auto"), "training.report_to")
    kw.update(FIXED)
    for name, template in teacher_templates(data.prompt_style).items():
        kw.setdefault(name, template)                 # the prompt style's teacher templates, unless set here
    kw["include_environment_feedback"] = data.feedback == "answer_key"
    init = dict(kw.get("model_init_kwargs") or {})
    for name in ("dtype", "attn_implementation"):
        if name in init:
            raise ConfigError(f"training.model_init_kwargs.{name}: set model.{name} instead")
        if getattr(model, name):
            init[name] = getattr(model, name)
    kw["model_init_kwargs"] = init
    import torch
    if not torch.cuda.is_available():
        kw.setdefault("use_cpu", True)                # accelerate runs several processes (gloo) only when told so
        os.environ.setdefault("DS_ACCELERATOR", "cpu")   # DeepSpeed, when installed, would warn of its fallback
    try:
        return PGPOConfig(**kw, pgpo=build(PGPOSettings, pgpo, "pgpo"))      # PGPOConfig validates it
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(_named(str(e).strip().splitlines()[0], types, kw)) from None


def _named(message: str, fields, given: dict) -> str:
    """A TRL / PGPOConfig error with its field named the way the config spells it (`training.x: ...`): the field the
    message starts with, or the first `field` it quotes, or the given field whose value it rejects."""
    import re
    head = message.split(":", 1)[0].strip("`' ")
    if head.startswith("pgpo."):
        return message
    if head in fields:
        return f"training.{head}:{message.split(':', 1)[1]}"
    quoted = [q for q in re.findall(r"`(\w+)`", message) if q in fields]
    if quoted:
        return f"training.{quoted[0]}: {message}"
    rejected = [k for k, v in given.items() if isinstance(v, str) and message.startswith(f"{v} is not a valid")]
    if rejected:
        return f"training.{rejected[0]}: {message}"
    return f"training: {message}"


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value read as YAML) to a nested dict, in place."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: cannot read value {raw!r}: {e}") from None
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{key}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config_file(path: str, _seen: tuple = ()) -> dict:
    """The raw mapping of a config file; `base: other.yaml` (relative to the file) is read first and this
    file's keys are merged over it, section by section."""
    data = read_yaml(path, "config")
    if not data:
        raise ConfigError(f"{path}: the config is empty (give at least the model and training sections; see "
                          "experiments/science_qa/smoke-cpu.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a file name")
    base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
    if base_path in _seen:
        raise ConfigError(f"{path}: base files form a cycle ({' -> '.join(_seen + (base_path,))})")
    return _merge(read_config_file(base_path, _seen + (os.path.normpath(path),)), data)


def load_config(path: str | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a run configuration; the result holds the trainer's PGPOConfig (TRL is imported,
    no model or dataset is loaded)."""
    data: dict = read_config_file(path) if path is not None else {}
    apply_overrides(data, overrides or [])
    known = {"name", "training", *SECTIONS}
    for key, value in data.items():
        moved = [key] + [f"{key}.{sub}" for sub in (value if isinstance(value, dict) else ())]
        for name in moved:
            if name in MOVED:
                raise ConfigError(f"{name}: moved; {MOVED[name]}")
        if key not in known:
            raise unknown_key(key, key, sorted(known), f"; the sections are {', '.join(sorted(known))}")
    sections = {k: build(SECTIONS[k][0], data.get(k), k) for k in ("model", "data", "eval", "monitor")}
    for k, s in sections.items():
        s.validate(k)
    name = coerce(data.get("name", "run"), str, "name")
    training = build_training(data.get("training") or {}, data.get("pgpo") or {}, sections["model"], sections["data"])
    return RunConfig(training=training, name=name, **sections)


def dump_config(cfg: RunConfig, path: str) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
