"""PGPOTrainer: TRL's SDPO trainer with the information-modulated optimizer step (config: pgpo.trainer_config).

What PGPO adds to `trl.experimental.sdpo.SDPOTrainer` (TRL pinned in pyproject.toml; the private hooks
used here are guarded by tests/test_trl_hooks.py):

- `_compute_self_distillation_loss` (hook): the loss is computed exactly as TRL computes it and I_k is
  taken from the *same* tensors: for `topk_logits` from the (k + 1)-category log-probs the loss was built
  on (pgpo.distill, bit-identical to TRL's loss), otherwise from the full-vocabulary logits in sequence
  chunks. Micro-batch statistics are summed (pgpo.distributed.InfoAccumulator).
- `compute_loss`: on the last micro-batch of an optimizer step (accelerate's `sync_gradients`), *before*
  its backward (DeepSpeed steps inside the last backward), the statistics are all-reduced over the
  data-parallel group and m_k = m(I_k) is armed on the innermost torch optimizer (pgpo.optim), which
  scales the learning rates for exactly that step. Every rank computes the same m_k.
- the self-distillation loss runs the same collectives on every rank for every micro-batch, whatever its
  mask. TRL 1.16.0 returns early when a micro-batch has nothing to distill and so skips a gather the other
  ranks run: with one completion per device and no feedback, its own SDPOTrainer hangs on several ranks.
- the EMA teacher is averaged in fp32 (pgpo.ema_teacher), replacing TRL's in-dtype EMA.
- rollout importance weights: the per-token loss is multiplied by min(pi_trainer / pi_rollout, is_clip) with
  the rollout engine's log-probs (vLLM's, requested from the engine; on the transformers generation path one
  no-grad forward of the generating weights). TRL 1.16.0 drops vLLM's log-probs, so its clip never acts.
- a step whose gradient norm is not finite is skipped (pgpo.optim.NonFiniteStepGuard): no update, no
  moment, EMA or PGPO-history change; the lr scheduler still advances, as in the SDPO reference.
- checkpoints are Hugging Face's own (its best-checkpoint path and rotation stay true) and also carry the EMA
  teacher's fp32 average and the PGPO state, written with the optimizer, before `trainer_state.json`; resume takes
  the newest complete checkpoint (pgpo.checkpoints: a save killed half-way is never used) and restores both.
- the variants (pgpo.modulation): Ibar_k kept by the controller (in checkpoints); with granularity sample / token
  the per-token loss is multiplied by detached weights m(I_i) / m(I_t) from the same per-token divergences that
  give I_k, normalised by the loss's own average of the weights over all ranks (pgpo.token_weights); the logged
  `self_distillation/distillation_loss` stays the unweighted one.
- metrics `pgpo/info`, `pgpo/multiplier`, `pgpo/fallback`, `pgpo/distilled_tokens`, `pgpo/tokens`,
  `pgpo/skipped` (this step), `pgpo/skipped_total`; `pgpo/info_ema` (with ema_steps), `pgpo/weight_mean` and
  `pgpo/weight_max` (sample / token weights before normalisation).

alpha = 0 (and beta = 0, whatever the granularity) with `distillation_is_clip = None` reproduces TRL's SDPO bit for
bit (fp32, one process; tests/test_trainer.py, tests/test_variants_trainer.py).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")   # TRL is pinned (pyproject.toml): its experimental warning is noise

import torch
from transformers import TrainerCallback
from trl.experimental.sdpo import SDPOTrainer
from trl.experimental.sdpo.loss_utils import (apply_importance_sampling_clipping,
                                              compute_full_logit_self_distillation_loss,
                                              compute_sampled_token_self_distillation_loss)
from trl.experimental.sdpo.teacher_sync import SyncTeacherModelCallback
from trl.trainer.utils import selective_log_softmax

from pgpo.checkpoints import PGPO_STATE_NAME, discard_incomplete, last_complete_checkpoint
from pgpo.controller import PGPOController, check_resumable
from pgpo.distill import topk_distillation
from pgpo.ema_teacher import FP32EMATeacher
from pgpo.optim import innermost_optimizer, optimizer_chain
from pgpo.information import InfoStats, per_token_from_logits, per_token_from_topk
from pgpo.trainer_config import PGPOConfig

TEACHER_DIR = "teacher"
TEACHER_FP32 = "ema_fp32{shard}.safetensors"     # the fp32 EMA; per rank (".rank{r}-of-{w}") when sharded


class PGPOTrainer(SDPOTrainer):
    _name = "PGPO"
    _tag_names = ["trl", "sdpo", "pgpo"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, PGPOConfig):
            raise TypeError("PGPOTrainer needs a PGPOConfig")
        low = {p.dtype for p in self.model.parameters() if p.requires_grad} & {torch.bfloat16, torch.float16}
        if low and not self.is_deepspeed_enabled:     # DeepSpeed keeps fp32 master weights; DDP / FSDP2 do not
            from pgpo.config import master_weights_message
            raise ValueError(master_weights_message(str(next(iter(low))).removeprefix("torch."),
                                                    self.args.learning_rate))
        self._pgpo: PGPOController | None = None
        self._pgpo_pending_state: dict | None = None
        self._pgpo_step_tokens = 0.0
        self._rollout_logprobs: list | None = None
        self.ema_teacher: FP32EMATeacher | None = None
        if self.args.teacher_model_kind == "ema" and self._teacher_is_separate():
            self.remove_callback(SyncTeacherModelCallback)           # TRL's EMA runs in the model's dtype
            self.ema_teacher = FP32EMATeacher(self.accelerator.unwrap_model(self.teacher_model),
                                              self.args.teacher_update_rate, self.args.teacher_sync_steps,
                                              step_skipped=self._last_step_skipped, accelerator=self.accelerator)
            self.add_callback(self.ema_teacher)
        self.add_callback(_EndOfOptimizerStep(self))
        if self.use_vllm and self.args.distillation_is_clip is not None and hasattr(self, "vllm_generation"):
            self.vllm_generation.logprobs = 0            # the sampled token's log-prob, for the IS weight

    def _last_step_skipped(self) -> bool:
        return self._pgpo is not None and self._pgpo.guard.last_skipped

    def _deepspeed_grad_norm(self):
        """DeepSpeed's global gradient norm of the step in flight (ZeRO-1/2/3 set `_global_grad_norm` before
        calling the torch optimizer once per parameter group), or None when not under DeepSpeed."""
        if not self.is_deepspeed_enabled:
            return None
        for opt in optimizer_chain(self.optimizer):
            if hasattr(opt, "_global_grad_norm"):
                return lambda o=opt: o._global_grad_norm
        raise RuntimeError("DeepSpeed optimizer without _global_grad_norm: the non-finite step guard needs it")

    # -- the controller, attached to the optimizer the engine really steps ------------------------------
    def pgpo_controller(self) -> PGPOController:
        if self._pgpo is None:
            if self.optimizer is None:
                raise RuntimeError("the optimizer does not exist yet")
            device = self.accelerator.device if self.accelerator.device.type == "cuda" else torch.device("cpu")
            self._pgpo = PGPOController(innermost_optimizer(self.optimizer), self.args.pgpo,
                                        jsd_weight=self.args.distillation_alpha, device=device,
                                        per_engine_step=True, norm_source=self._deepspeed_grad_norm())
            if self._pgpo_pending_state is not None:
                self._pgpo.load_state_dict(self._pgpo_pending_state)
                self._pgpo_pending_state = None
        return self._pgpo

    # -- the loss, and I_k from its own forward pass ------------------------------------------------------
    def _compute_self_distillation_loss(self, model, inputs, distillation_logits):
        """TRL's self-distillation loss (same three objectives, same importance-sampling clip, same
        per-sequence normalisation), with two changes:

        - no early return on an empty mask: every rank runs the same gathers on every micro-batch (an empty
          mask gives a zero loss attached to the graph, so DDP's gradient all-reduce runs as usual);
        - I_k is observed from the same tensors (top-k: the (k + 1)-category log-probs the loss is built on;
          otherwise the full-vocabulary logits, in sequence chunks).
        """
        args, dl = self.args, distillation_logits
        mode = "train" if model.training else "eval"
        ctl = self.pgpo_controller() if model.training else None
        if args.distillation_mode == "topk_logits":
            if args.distillation_topk is None:
                raise ValueError("`distillation_mode='topk_logits'` requires `distillation_topk` to be set.")
            per_token_loss, s_lp, t_lp = topk_distillation(dl.student_logits, dl.teacher_logits,
                                                           k=args.distillation_topk,
                                                           add_tail=args.distillation_add_tail,
                                                           jsd_weight=args.distillation_alpha)
            if ctl is not None:
                with torch.no_grad():             # student token entropy on the same support (for the monitor)
                    ent = -(s_lp.exp() * s_lp).sum(-1)
                    mask = dl.completion_mask.float()
                    ent = (ent * mask).sum() / mask.sum().clamp(min=1.0)
                    self._metrics["train"]["pgpo/entropy"].append(self.accelerator.gather(ent.detach()).mean().item())
        else:
            if args.distillation_mode == "full_logits":
                per_token_loss = compute_full_logit_self_distillation_loss(
                    dl.student_logits, dl.teacher_logits, distillation_alpha=args.distillation_alpha)
            elif args.distillation_mode == "sampled_token":
                per_token_loss = compute_sampled_token_self_distillation_loss(
                    dl.student_logits, dl.teacher_logits, dl.completion_ids, distillation_alpha=args.distillation_alpha)
            else:
                raise ValueError("distillation_mode must be one of: 'sampled_token', 'full_logits', 'topk_logits', "
                                 f"got {args.distillation_mode!r}")
        per_token_info = None
        if ctl is not None:                                     # I_k from the tensors the loss used
            if bool(dl.loss_mask.sum() == 0):
                ctl.observe(InfoStats())                        # nothing to distill on this micro-batch
            else:
                est = args.pgpo.estimator
                if args.distillation_mode == "topk_logits":
                    per_token_info = per_token_from_topk(s_lp.detach(), t_lp.detach(), final_support=True,
                                                         estimator=est, jsd_weight=args.distillation_alpha)
                else:
                    per_token_info = per_token_from_logits(dl.student_logits.detach(), dl.teacher_logits.detach(),
                                                           estimator=est, jsd_weight=args.distillation_alpha,
                                                           chunk_size=args.pgpo.chunk_size)
                ctl.observe_per_token(per_token_info, dl.loss_mask)
        rollout_logps = inputs.get("rollout_per_token_logps", inputs.get("old_per_token_logps"))
        if args.distillation_is_clip is not None and rollout_logps is not None:
            student_per_token_logps = selective_log_softmax(dl.student_logits, dl.completion_ids)
            per_token_loss = apply_importance_sampling_clipping(per_token_loss, student_per_token_logps,
                                                                rollout_logps, args.distillation_is_clip)
        unweighted = per_token_loss                             # the logged distillation loss stays SDPO's
        if ctl is not None:                                     # per-sample / per-token PGPO (every rank, always)
            per_token_loss = ctl.weigh(per_token_loss, per_token_info, dl.loss_mask)
        loss = (per_token_loss * dl.loss_mask).sum(-1) / dl.loss_mask.sum(-1).clamp(min=1.0)
        loss = loss.mean()
        mean_distill_loss = (unweighted.detach() * dl.loss_mask).sum() / dl.loss_mask.sum().clamp(min=1.0)
        self._log_self_distillation_metric(mode, self.accelerator.gather(mean_distill_loss.detach()).mean().item())
        return loss

    # -- rollout log-probs for the importance weight ------------------------------------------------------
    def _generate_vllm(self, prompt_ids):
        """TRL's `_generate_vllm`, keeping the engine's per-token log-probs (requested in __init__)."""
        if self.state.global_step != self._last_loaded_step:
            self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step
        num_generations = self.num_generations if self.model.training else self.num_generations_eval
        prompt_ids_out, completion_ids_list, logprobs, _ = self.vllm_generation.generate(
            prompts=prompt_ids, images=None, num_generations=num_generations)
        self._rollout_logprobs = logprobs
        return prompt_ids_out, completion_ids_list

    def sample_rollouts(self, inputs):
        """TRL's rollouts plus `rollout_per_token_logps` (B, T): the log-probs of the policy that generated the
        completions, for the distillation loss's importance weight (only when `distillation_is_clip` is set).
        vLLM: the engine's own log-probs (sampled token, after temperature: vLLM's `processed_logprobs`, the
        same scaling the trainer's logits get); a token it returned none for, and the transformers generation
        path, get one no-grad forward of the weights that generated (the current ones). TRL's
        `old_per_token_logps` (its policy-gradient term's reference) is left as TRL computes it."""
        self._rollout_logprobs = None
        batch = super().sample_rollouts(inputs)
        rollout, self._rollout_logprobs = self._rollout_logprobs, None
        if self.args.distillation_is_clip is None or not self.model.training:
            return batch
        ids = batch["completion_ids"]
        out = None
        if rollout is not None:
            out = torch.full(ids.shape, float("nan"), dtype=torch.float32, device=ids.device)
            for i, seq in enumerate(rollout):
                vals = [float("nan") if lp is None or lp[0] is None else float(lp[0]) for lp in seq]
                n = min(len(vals), out.shape[1])
                out[i, :n] = torch.tensor(vals[:n], dtype=torch.float32)
            out = torch.where(batch["completion_mask"].bool(), out, torch.zeros_like(out))   # padding: unused
        # the fallback forward must run on every rank or none (ZeRO-3 gathers parameters inside it)
        missing = torch.tensor([1.0 if out is None or bool(torch.isnan(out).any()) else 0.0], device=ids.device)
        if bool(self.accelerator.gather(missing).max() > 0):
            with torch.no_grad():
                logits = self._forward_logits(self.model, torch.cat([batch["prompt_ids"], ids], dim=1),
                                              torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
                                              ids.size(1))
                own = selective_log_softmax(logits, ids).float()
            out = own if out is None else torch.where(torch.isnan(out), own, out)
        batch["rollout_per_token_logps"] = out
        return batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)
        if model.training:
            self._pgpo_step_tokens += float(inputs["completion_mask"].sum())
            if self.accelerator.gradient_state.sync_gradients:
                self._pgpo_finalize_step()        # before this micro-batch's backward (DeepSpeed steps in it)
        return loss

    def _pgpo_finalize_step(self) -> None:
        decision = self.pgpo_controller().finalize()
        tokens = self.accelerator.reduce(torch.tensor(self._pgpo_step_tokens, device=self.accelerator.device),
                                         reduction="sum").item()
        self._pgpo_step_tokens = 0.0
        m = self._metrics["train"]
        m["pgpo/info"].append(decision.info if decision.info is not None else float("nan"))
        m["pgpo/multiplier"].append(decision.multiplier)
        m["pgpo/fallback"].append(0.0 if decision.fallback is None else 1.0)
        m["pgpo/distilled_tokens"].append(decision.tokens)
        m["pgpo/tokens"].append(tokens)
        s = self.args.pgpo
        if s.ema_steps is not None:
            m["pgpo/info_ema"].append(decision.info_ema if decision.info_ema is not None else float("nan"))
        if s.granularity != "batch":                       # the weights' mean and max over all ranks' tokens
            st = torch.tensor([decision.weight_mean or 0.0, decision.weight_tokens, decision.weight_max or 0.0],
                              dtype=torch.float64, device=self.accelerator.device)
            both = self.accelerator.gather(st[None]).reshape(-1, 3)
            n = float(both[:, 1].sum())
            m["pgpo/weight_mean"].append(float((both[:, 0] * both[:, 1]).sum()) / n if n > 0 else float("nan"))
            m["pgpo/weight_max"].append(float(both[:, 2].max()) if n > 0 else float("nan"))

    def log(self, logs, start_time=None):
        if self.model.training and "loss" in logs and self._pgpo is not None:
            skipped = self._pgpo.guard.last_skipped
            logs["pgpo/skipped"] = 1.0 if skipped else 0.0
            logs["pgpo/skipped_total"] = float(self._pgpo.guard.skipped)
        super().log(logs, start_time)

    def _pgpo_mark_skipped(self) -> None:
        """A skipped (non-finite) step applied no m_k and its Ibar update was rolled back: its metrics say so (NaN,
        null in the run log) instead of showing values that never acted."""
        for key in ("pgpo/multiplier", "pgpo/info_ema"):
            vals = self._metrics["train"].get(key)
            if vals:
                vals[-1] = float("nan")

    def _log_self_distillation_metric(self, mode, value):
        """SDPO's metric names unchanged (`self_distillation/distillation_loss`, `sdpo/distillation_loss`): TRL would
        name the second after this trainer (`pgpo/...`), and dashboards keyed on SDPO's names would miss it."""
        self._metrics[mode]["self_distillation/distillation_loss"].append(value)
        self._metrics[mode]["sdpo/distillation_loss"].append(value)

    # -- checkpoints: atomic, with the teacher and the PGPO state ---------------------------------------
    def _issue_warnings_after_load(self, load_result) -> None:
        """A tied-embedding model's checkpoint has no `lm_head.weight` (safetensors stores the shared tensor once):
        re-tie it quietly instead of warning about a missing key on every resume; anything else still warns."""
        model = self.accelerator.unwrap_model(self.model)
        tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
        if tied and load_result.missing_keys and set(load_result.missing_keys) <= {"lm_head.weight"} \
                and not load_result.unexpected_keys:
            model.tie_weights()
            return
        super()._issue_warnings_after_load(load_result)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """Trainer.train; `resume_from_checkpoint=True` takes the newest *complete* checkpoint of output_dir
        (pgpo.checkpoints), and folders of a save that was killed are removed before training continues."""
        if resume_from_checkpoint is True:
            run_dir = self.args.output_dir
            if self.args.should_save:
                for path in discard_incomplete(run_dir):
                    print(f"removed {path}: its save did not finish", flush=True)
            self.accelerator.wait_for_everyone()
            resume_from_checkpoint = last_complete_checkpoint(run_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint found in output directory ({run_dir})")
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _save_optimizer_and_scheduler(self, output_dir):
        """Trainer's optimizer and scheduler save, plus the fp32 EMA teacher and the PGPO state. Trainer calls it
        inside `_save_checkpoint` before writing `trainer_state.json` and rotating old checkpoints, so a checkpoint
        is complete (pgpo.checkpoints.is_complete) only with both, and rotation never runs before they exist.
        The mirror of `_load_optimizer_and_scheduler` below."""
        super()._save_optimizer_and_scheduler(output_dir)
        self._save_teacher(os.path.join(output_dir, TEACHER_DIR))
        if self.args.should_save:
            from runtools.files import atomic_write_json
            atomic_write_json(os.path.join(output_dir, PGPO_STATE_NAME),
                              {"controller": self.pgpo_controller().state_dict() if self.optimizer is not None else None,
                               "global_step": self.state.global_step})

    def _teacher_is_separate(self) -> bool:
        return self.teacher_model is not None and self.teacher_model is not self.model

    def _teacher_file(self) -> str:
        w = self.accelerator.num_processes
        return TEACHER_FP32.format(shard=f".rank{self.accelerator.process_index}-of-{w}"
                                   if self.ema_teacher.sharded else "")

    def _save_teacher(self, path: str) -> None:
        """The fp32 EMA: one file from the main process, or one per rank when the teacher is sharded."""
        if self.ema_teacher is None:
            return
        if self.ema_teacher.sharded or self.args.should_save:
            from safetensors.torch import save_file
            os.makedirs(path, exist_ok=True)
            save_file({k: v.contiguous() for k, v in self.ema_teacher.state_dict().items()},
                      os.path.join(path, self._teacher_file()))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        teacher_file = os.path.join(checkpoint, TEACHER_DIR, self._teacher_file()) if self.ema_teacher else None
        state_file = os.path.join(checkpoint, PGPO_STATE_NAME)
        # every rank checks its own files, and all fail together (one line) if any rank lacks one: a rank that raised
        # alone would leave the others waiting in the next collective
        missing = [teacher_file is not None and not os.path.exists(teacher_file), not os.path.exists(state_file)]
        anywhere = self.accelerator.gather(torch.tensor([missing], dtype=torch.float32,
                                                        device=self.accelerator.device)).reshape(-1, 2).amax(0)
        if float(anywhere[0]) > 0:
            raise FileNotFoundError(f"{checkpoint}: a process has no fp32 EMA teacher ({TEACHER_DIR}/"
                                    f"{TEACHER_FP32.format(shard='...')}); cannot resume exactly (every process needs "
                                    "the checkpoint on its storage; a sharded run resumes with the same process count)")
        if float(anywhere[1]) > 0:
            raise FileNotFoundError(f"{checkpoint}: a process has no {PGPO_STATE_NAME} (every process needs the "
                                    "checkpoint on its storage)")
        if self.ema_teacher is not None:
            from safetensors.torch import load_file
            self.ema_teacher.load_state_dict(load_file(teacher_file))
        with open(state_file) as f:
            st = json.load(f).get("controller")
        if st is not None:
            check_resumable(self.args.pgpo, st, where=checkpoint)     # before any rollout, not at the first step
            if self._pgpo is not None:
                self._pgpo.load_state_dict(st)
            else:
                self._pgpo_pending_state = st


class _EndOfOptimizerStep(TrainerCallback):
    """Closes each optimizer step for the PGPO controller (one history record, a fresh skip decision), after
    the engine's step - which DeepSpeed splits into one torch step() call per parameter group."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.trainer._pgpo is not None:
            self.trainer._pgpo.guard.note_engine_skip()        # the engine skipped it without calling the optimizer
            if self.trainer._pgpo.guard.last_skipped:
                self.trainer._pgpo_mark_skipped()
            self.trainer._pgpo.end_step()
