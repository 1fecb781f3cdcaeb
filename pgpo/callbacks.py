"""Training callbacks: the per-step run log, the end-of-run checkpoint, periodic mean@k validation."""

from __future__ import annotations

from collections.abc import Mapping

import math
import os
import time
from contextlib import contextmanager

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from pgpo import runlog
from pgpo.eval import generate_transformers, rank_shard, score
from pgpo.monitor import StabilityMonitor
from pgpo.runlog import step_line


class MonitorCallback(StabilityMonitor, TrainerCallback, ExportableState):
    """The stability monitor (pgpo.monitor) as a Trainer callback. Its state travels in each checkpoint's
    `trainer_state.json` (Trainer records `state()` of ExportableState callbacks under `stateful_callbacks`) and is
    restored when training resumes, so the best step and the collapse counters continue instead of restarting
    (a resumed monitor that forgot the best would let rotation delete the best checkpoint)."""

    def state(self) -> dict:
        return {"args": {}, "attributes": self.export()}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        if state.global_step > 0 and isinstance(saved, dict):
            self.restore(saved["attributes"])


class StepLog(TrainerCallback):
    """Writes the run log (format: pgpo.runlog) on the main process: one `train` record per optimizer step,
    plus the records other callbacks pass to `write` (`eval`, `collapse`). On resume, records beyond the
    checkpoint's step are dropped first, so the log matches the run."""

    def __init__(self, path: str, echo=print):
        self.path = path
        self.echo = echo                  # one compact console line per step (pgpo.runlog.step_line); None: quiet
        self._t_step = None
        self._t0 = None
        self._elapsed_before = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()
        if not state.is_world_process_zero:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._elapsed_before = runlog.truncate_after(self.path, state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self._t_step = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        rec = {"kind": "train", "step": state.global_step}
        for name, key in runlog.TRAIN_FIELDS.items():
            v = logs.get(key)
            rec[name] = None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
        rec["step_time_s"] = None if self._t_step is None else now - self._t_step
        rec["elapsed_s"] = self._elapsed_before + (now - self._t0 if self._t0 else 0.0)
        self.write(rec)
        if self.echo is not None:
            self.echo(step_line(rec, state.max_steps))

    def write(self, rec: dict) -> None:
        runlog.append_record(self.path, rec)


class SaveAtEnd(TrainerCallback):
    """Make sure the last optimizer step is checkpointed."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = True
        return control


@contextmanager
def engine_awake(vg):
    """A colocated vLLM engine with current weights and its KV cache, put back to sleep afterwards exactly as
    TRL's own `VLLMGeneration.generate` does: level-2 sleep discards the weights, and TRL's flag
    `_llm_weights_sleeping` records it, so that TRL's next generation re-pushes the training weights before
    sampling (whatever step it runs at). `sync_weights` (TRL's) wakes the weights and clears that flag.
    """
    vg.sync_weights()
    if vg.enable_sleep_mode:
        vg.llm.wake_up(tags=["kv_cache"])
    try:
        yield vg.llm
    finally:
        if vg.enable_sleep_mode:
            vg.llm.sleep(level=2)
            vg._llm_weights_sleeping = True


class EvalCallback(TrainerCallback):
    """mean@k on the test split every `eval.every_steps` optimizer steps (and at start if asked).

    Questions are sharded over the data-parallel ranks and sampled with the trainer's vLLM engine after a
    weight sync (colocate with tensor-parallel size 1, or server mode), or otherwise with transformers
    `generate` on the training weights (gathered under ZeRO-3 by TRL's unwrap helper); the results are
    gathered to the main process, which appends an {"kind": "eval", ...} line to the step log.
    """

    def __init__(self, trainer, questions, cfg, steplog, listeners=()):
        self.trainer, self.questions, self.cfg, self.steplog = trainer, questions, cfg, steplog
        self.listeners = list(listeners)        # objects with observe_eval(step, mean_at_k), called on every rank
        self.backend = ""                       # what the last evaluation generated with (recorded in the log)

    def _generate(self, shard, state):
        """k completions per question of this rank's shard: the trainer's vLLM engine when it has one
        (colocate with tensor-parallel size 1, or server), otherwise transformers generate."""
        tr, ev = self.trainer, self.cfg.eval
        max_new = ev.max_new_tokens or self.cfg.training.max_completion_length
        seed = self.cfg.training.seed + state.global_step
        vg = getattr(tr, "vllm_generation", None) if getattr(tr, "use_vllm", False) else None
        if vg is not None and ev.backend != "transformers" and (vg.mode == "server" or vg.tensor_parallel_size == 1):
            self.backend = "vllm"
            return self._generate_vllm(vg, shard, max_new, seed)
        self.backend = "transformers"
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(tr.model_wrapped, tr.accelerator,
                                         gather_deepspeed3_params=tr.args.ds3_gather_for_generation) as model:
            sharded = tr.accelerator.num_processes > 1 and (tr.is_fsdp_enabled or (
                tr.is_deepspeed_enabled and not tr.args.ds3_gather_for_generation))
            return generate_transformers(model, tr.processing_class, shard, self.cfg.data.prompt_style,
                                         ev.num_samples, ev.temperature, ev.top_p, max_new, ev.batch_size,
                                         seed=seed, label="eval", show_progress=tr.accelerator.is_main_process,
                                         synced=sharded)

    def _generate_vllm(self, vg, shard, max_new, seed):
        from pgpo.prompts import conversation

        tr, ev = self.trainer, self.cfg.eval
        tok = tr.processing_class
        prompts = [tok.apply_chat_template(conversation(q, self.cfg.data.prompt_style), tokenize=True,
                                           add_generation_prompt=True, enable_thinking=False) for q in shard]
        # transformers 5 returns a BatchEncoding (a Mapping, not a dict) from tokenize=True; vLLM needs the id list
        prompts = [list(p["input_ids"]) if isinstance(p, Mapping) else list(p) for p in prompts]
        if vg.mode == "server":
            vg.sync_weights()                               # the engine lags the optimizer by one step
            from accelerate.utils import broadcast_object_list, gather_object

            everything = gather_object([(i, p) for i, p in enumerate(prompts)])
            texts = [None]
            if tr.accelerator.is_main_process:
                out = vg.vllm_client.generate(prompts=[p for _, p in everything], n=ev.num_samples,
                                              temperature=ev.temperature, top_p=ev.top_p, max_tokens=max_new)
                ids = out["completion_ids"]
                texts = [[tok.decode(ids[j * ev.num_samples + i], skip_special_tokens=True)
                          for i in range(ev.num_samples)] for j in range(len(everything))]
            texts = broadcast_object_list([texts])[0] if tr.accelerator.num_processes > 1 else texts
            counts = gather_object([len(prompts)])
            start = sum(counts[: tr.accelerator.process_index])
            return texts[start:start + len(prompts)]
        from vllm import SamplingParams

        params = SamplingParams(n=ev.num_samples, temperature=ev.temperature, top_p=ev.top_p, max_tokens=max_new,
                                seed=seed)
        with engine_awake(vg):
            outs = vg.llm.generate([{"prompt_token_ids": p} for p in prompts], sampling_params=params, use_tqdm=False)
        return [[c.text for c in o.outputs] for o in outs]

    def _run(self, state):
        import torch
        from accelerate.utils import gather_object

        acc = self.trainer.accelerator
        # the same number of questions on every rank (padded; the padding's completions are dropped): with sharded
        # weights every generate call gathers them on all ranks
        padded, n_real = rank_shard(self.questions, acc.process_index, acc.num_processes)
        shard = padded[:n_real]
        t0 = time.perf_counter()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):     # evaluation never moves the training RNG streams
            comps = self._generate(padded, state)[:n_real]
        gathered = gather_object([(q.id, c) for q, c in zip(shard, comps)])     # on every rank
        by_id = dict(gathered)
        res = score(self.questions, [by_id[q.id] for q in self.questions])
        for listener in self.listeners:             # identical inputs on every rank: identical decisions
            listener.observe_eval(state.global_step, res.mean_at_k)
        if acc.is_main_process:
            rec = {"kind": "eval", "step": state.global_step, "mean_at_k": res.mean_at_k, "k": res.k,
                   "n_questions": res.n_questions, "stderr": res.stderr, "answered_fraction": res.answered,
                   "eval_time_s": time.perf_counter() - t0, "backend": self.backend}
            self.steplog.write(rec)
            print(f"[eval] step {state.global_step}: mean@{res.k} = {res.mean_at_k:.4f} "
                  f"(+- {'n/a' if res.stderr is None else f'{res.stderr:.4f}'}, {res.n_questions} questions)", flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.cfg.eval.at_start and state.global_step == 0:
            self._run(state)

    def on_step_end(self, args, state, control, **kwargs):
        every = self.cfg.eval.every_steps
        if every > 0 and state.global_step % every == 0:
            self._run(state)
