"""Build and run a PGPO/SDPO training job from a validated RunConfig (what `python -m pgpo train` does): the data,
the tokenizer, the trainer with the RunConfig's PGPOConfig, and the run's callbacks."""

from __future__ import annotations

import logging
import os
import time

from pgpo.config import ConfigError, RunConfig, dump_config, master_weights_problem
from pgpo.resume import RUN_CONFIG_NAME
from pgpo.runlog import DONE_NAME, RUN_OUTPUTS
from runtools.files import atomic_write_json, prepare_output_folder

logger = logging.getLogger(__name__)

PACKAGED_TOKENIZER = os.path.join(os.path.dirname(__file__), "assets", "qwen3-tokenizer")


def model_and_tokenizer_paths(cfg: RunConfig, is_main: bool, wait) -> tuple[str, str]:
    """Where the model and tokenizer come from; a tiny model is written once under output_dir."""
    if not cfg.model.tiny:
        return cfg.model.name_or_path, cfg.model.tokenizer or cfg.model.name_or_path
    from pgpo.models import write_tiny_qwen3

    path = os.path.join(cfg.training.output_dir, "init_model")
    if is_main:
        write_tiny_qwen3(path, cfg.model.tokenizer or PACKAGED_TOKENIZER, seed=cfg.model.tiny_seed,
                         hidden_size=cfg.model.tiny_hidden_size, num_hidden_layers=cfg.model.tiny_layers,
                         initializer_range=cfg.model.tiny_init_std)
    wait()
    return path, path


def engine_dtype(cfg: RunConfig) -> str | None:
    """The dtype a colocated vLLM engine on CPU computes in: the training weights' (a tiny model is written in float32);
    None leaves vLLM's own choice."""
    if cfg.model.dtype == "auto":
        return "float32" if cfg.model.tiny else None
    return cfg.model.dtype


def build_trainer(cfg: RunConfig, trainer_cls=None, extra_callbacks=(), reward_funcs=None, overwrite: bool = False,
                  resuming: bool = False):
    """Everything a run needs, ready for `.train()`: data, tokenizer, trainer (with `cfg.training`), callbacks.

    `reward_funcs` replaces the multiple-choice reward (tests use it to script which rollouts succeed).
    Raises ConfigError before any model is loaded when the weights would train without fp32 master weights.
    `overwrite`: delete the previous run's outputs (RUN_OUTPUTS) from output_dir once those checks have passed.
    `resuming`: the run folder's run_config.yaml is kept as the record of the run (pgpo.resume).
    """
    import datasets
    from accelerate import PartialState
    from transformers import AutoTokenizer

    from pgpo.callbacks import EvalCallback, MonitorCallback, SaveAtEnd, StepLog
    from pgpo.data import load_task
    from pgpo.prompts import to_rows
    from pgpo.rewards import mcq_reward, number_reward
    from pgpo.runlog import LOG_NAME
    from pgpo.trainer import PGPOTrainer

    from accelerate.utils import DistributedType
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()      # no per-file bars for loading or writing the (local) model
    disable_progress_bars()

    state = PartialState(cpu=cfg.training.use_cpu)    # (set up already by PGPOConfig: this is that state)
    problem = master_weights_problem(cfg, deepspeed=state.distributed_type == DistributedType.DEEPSPEED)
    if problem:
        raise ConfigError(problem)
    if cfg.training.use_vllm:                   # one clear line for a mismatched install, before anything loads
        from pgpo.vllm_support import check_vllm, keep_cpu_linear_weights
        check_vllm()
        if cfg.training.vllm_mode == "colocate" and keep_cpu_linear_weights():
            # CPU engines only (GPU engines keep vLLM's own choices): loadable weights for TRL's in-place weight
            # sync, and rollouts in the training weights' dtype
            from pgpo.vllm_support import colocated_engine_dtype
            colocated_engine_dtype(engine_dtype(cfg))
    if overwrite and state.is_main_process:
        prepare_output_folder(cfg.training.output_dir, overwrite=True, holds=RUN_OUTPUTS)
    state.wait_for_everyone()
    os.makedirs(cfg.training.output_dir, exist_ok=True)
    config_path = os.path.join(cfg.training.output_dir, RUN_CONFIG_NAME)
    if state.is_main_process and not (resuming and os.path.exists(config_path)):
        dump_config(cfg, config_path)           # a resume never rewrites the run's record (pgpo.resume)
    model_path, tok_path = model_and_tokenizer_paths(cfg, state.is_main_process, state.wait_for_everyone)
    tokenizer = AutoTokenizer.from_pretrained(tok_path, padding_side="left")

    d = cfg.data
    train = load_task(d.task, d.domain, "train", d.source, d.path, d.on_malformed, limit=d.max_train_questions)
    if len(train) < cfg.questions_per_step:
        raise ValueError(f"data: only {len(train)} training questions but a generation batch takes "
                         f"{cfg.questions_per_step} (training.generation_batch_size / num_generations)")
    dataset = datasets.Dataset.from_list(to_rows(train.questions, d.prompt_style, d.feedback))
    args = cfg.training
    steplog = StepLog(os.path.join(cfg.training.output_dir, LOG_NAME))
    trainer = (trainer_cls or PGPOTrainer)(model=model_path, reward_funcs=list(reward_funcs or [number_reward if d.task == "arithmetic" else mcq_reward]), args=args,
                                           train_dataset=dataset, processing_class=tokenizer,
                                           callbacks=[steplog, SaveAtEnd(), *extra_callbacks])
    # the console gets StepLog's one line per step, not transformers' metrics dict
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    monitor = MonitorCallback(cfg.monitor, steplog, trainer) if cfg.monitor.enabled else None
    if cfg.eval.every_steps > 0 or cfg.eval.at_start:
        limit = cfg.eval.max_questions or d.max_eval_questions
        test = load_task(d.task, d.domain, "test", d.source, d.path, d.on_malformed, limit=limit)
        trainer.add_callback(EvalCallback(trainer, test.questions, cfg, steplog,
                                          listeners=[monitor] if monitor else []))
    if monitor is not None:
        trainer.add_callback(monitor)          # after the evaluation callback: sees this step's result
    if state.is_main_process:
        atomic_write_json(os.path.join(cfg.training.output_dir, "data_report.json"),
                          {"task": d.task, "domain": d.domain, "train_questions": len(train),
                           "malformed": [str(p) for p in train.problems], "duplicates": train.duplicates}, indent=1)
    return trainer


def run_training(cfg: RunConfig, resume: str | bool | None = None, overwrite: bool = False):
    trainer = build_trainer(cfg, overwrite=overwrite, resuming=resume is not None)
    if resume == "auto":                       # the newest complete checkpoint (pgpo.checkpoints)
        from pgpo.checkpoints import last_complete_checkpoint
        last = last_complete_checkpoint(cfg.training.output_dir)
        if last is None:
            logger.info("no checkpoint in %s: starting from scratch", cfg.training.output_dir)
        elif trainer.accelerator.is_main_process:
            print(f"resuming from {last}", flush=True)
        resume = True if last is not None else None
    elif resume and trainer.accelerator.is_main_process:
        print(f"resuming from {resume}", flush=True)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume or None)
    if trainer.accelerator.is_main_process:
        done = {"global_step": trainer.state.global_step, "max_steps": trainer.state.max_steps,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s_this_launch": time.time() - t0,
                "stopped_early": trainer.state.global_step < trainer.state.max_steps}
        atomic_write_json(os.path.join(cfg.training.output_dir, DONE_NAME), done)
        print(summary_line(trainer, cfg.training.output_dir, time.time() - t0), flush=True)
    return trainer


def summary_line(trainer, out_dir: str, wall_s: float) -> str:
    """The run's last console line: steps, the best evaluation and its checkpoint, time, where everything is."""
    from pgpo.runlog import LOG_NAME, of_kind, read_log
    from runtools.progress import duration
    st = trainer.state
    log = os.path.join(out_dir, LOG_NAME)
    evals = of_kind(read_log(log), "eval") if os.path.exists(log) else []
    parts = [f"done: step {st.global_step}/{st.max_steps}" + (" (stopped early)" if st.global_step < st.max_steps
                                                               else ""),
             f"{duration(wall_s)} this launch"]
    if evals:
        best = max(evals, key=lambda e: e["mean_at_k"])
        where = st.best_model_checkpoint or ("the initial model" if best["step"] == 0 else "not kept")
        parts.append(f"best mean@{best['k']} {best['mean_at_k']:.4f} at step {best['step']} ({where})")
    ckpts = sorted((n for n in os.listdir(out_dir) if n.startswith("checkpoint-")),
                   key=lambda n: int(n.split("-")[1]) if n.split("-")[1].isdigit() else -1)
    parts.append(f"in {out_dir}: {LOG_NAME}, {', '.join(ckpts) or 'no checkpoint'}")
    return "; ".join(parts)
