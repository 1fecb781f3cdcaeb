"""Training callbacks that need the trainer itself: periodic mean@k validation."""

from __future__ import annotations

import time

from transformers import TrainerCallback

from pgpo.eval import generate_transformers, score


class EvalCallback(TrainerCallback):
    """mean@k on the test split every `eval.every_steps` optimizer steps (and at start if asked).

    Questions are sharded over the data-parallel ranks, sampled with transformers `generate` on the
    training weights (gathered under ZeRO-3 by TRL's unwrap helper), and gathered to the main process,
    which appends an {"kind": "eval", ...} line to the step log.
    """

    def __init__(self, trainer, questions, cfg, steplog):
        self.trainer, self.questions, self.cfg, self.steplog = trainer, questions, cfg, steplog

    def _run(self, state):
        from accelerate.utils import gather_object
        from trl.models import unwrap_model_for_generation

        tr, ev = self.trainer, self.cfg.eval
        acc = tr.accelerator
        shard = self.questions[acc.process_index::acc.num_processes]
        t0 = time.perf_counter()
        max_new = ev.max_new_tokens or self.cfg.training.max_completion_length
        with unwrap_model_for_generation(tr.model_wrapped, acc,
                                         gather_deepspeed3_params=tr.args.ds3_gather_for_generation) as model:
            comps = generate_transformers(model, tr.processing_class, shard, self.cfg.data.prompt_style,
                                          ev.num_samples, ev.temperature, ev.top_p, max_new, ev.batch_size,
                                          seed=self.cfg.training.seed + state.global_step, label="eval",
                                          show_progress=acc.is_main_process)
        gathered = gather_object([(q.id, c) for q, c in zip(shard, comps)])
        if acc.is_main_process:
            by_id = dict(gathered)
            res = score(self.questions, [by_id[q.id] for q in self.questions])
            rec = {"kind": "eval", "step": state.global_step, "mean_at_k": res.mean_at_k, "k": res.k,
                   "n_questions": res.n_questions, "stderr": res.stderr, "answered_fraction": res.answered,
                   "eval_time_s": time.perf_counter() - t0}
            self.steplog.write(rec)
            print(f"[eval] step {state.global_step}: mean@{res.k} = {res.mean_at_k:.4f} "
                  f"(+- {res.stderr:.4f}, {res.n_questions} questions)", flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.cfg.eval.at_start and state.global_step == 0:
            self._run(state)

    def on_step_end(self, args, state, control, **kwargs):
        every = self.cfg.eval.every_steps
        if every > 0 and state.global_step % every == 0:
            self._run(state)
