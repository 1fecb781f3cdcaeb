"""The information signal I_k (paper Eq. 8) from the student and teacher outputs of one forward pass.

I(Y; F) = E_F KL(p(Y | F) || p(Y)): the feedback-conditioned teacher is p(Y | F), the student (no
feedback) stands for p(Y), so the natural estimator is the divergence between their next-token
distributions, averaged over the distilled (masked) response tokens of the batch. Options:

estimator
    "kl_teacher_student"  KL(teacher || student)                    (default; the MI form above)
    "kl_student_teacher"  KL(student || teacher)
    "sdpo_divergence"     the SDPO loss's own generalised JSD with the loss's weight `jsd_weight`
                          (`training.distillation_alpha`), TRL's convention:
                          (1 - a) KL(S || M) + a KL(T || M), M = (1 - a) S + a T; a = 0 gives
                          KL(T || S), a = 1 gives KL(S || T)
reduction
    "token_mean"          mean over all masked tokens of the batch (default)
    "sample_mean"         mean over samples of each sample's token mean (samples with no token skipped)

Inputs are either full-vocabulary logits (processed in chunks along the sequence so that the extra
memory is O(batch x chunk x vocab), not O(batch x length x vocab)) or log-probabilities on a top-k
support, optionally with the tail bucket log(1 - sum p) (the form the SDPO top-k loss already has).

Results are `InfoStats(total, count, nonfinite)` sums so that callers can add them over gradient-
accumulation micro-batches and all-reduce them across ranks before dividing. Non-finite per-token
values are excluded from the sums and counted in `nonfinite`: they never become a NaN I_k; the caller
decides (PGPO falls back to m = 1 for that step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pgpo.settings import ESTIMATORS, REDUCTIONS  # noqa: F401  (the option names, declared once)


@dataclass
class InfoStats:
    """Sufficient statistics of I over some tokens: I = total / count, plus a non-finite counter; summed by
    `merge` and by the all-reduce in pgpo.distributed."""

    total: float = 0.0
    count: float = 0.0
    nonfinite: float = 0.0

    def merge(self, other: "InfoStats") -> "InfoStats":
        return InfoStats(self.total + other.total, self.count + other.count, self.nonfinite + other.nonfinite)

    @property
    def ok(self) -> bool:
        """True when I is a finite number computed from at least one token."""
        return self.nonfinite == 0 and self.count > 0 and math.isfinite(self.total)

    @property
    def value(self) -> float:
        """total / count; NaN when there is nothing to average."""
        return self.total / self.count if self.count > 0 else float("nan")

    def as_tensor(self, device=None) -> torch.Tensor:
        return torch.tensor([self.total, self.count, self.nonfinite], dtype=torch.float64, device=device)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> "InfoStats":
        total, count, nonfinite = (float(v) for v in t.detach().cpu().tolist())
        return cls(total, count, nonfinite)


def divergence(student_logp: torch.Tensor, teacher_logp: torch.Tensor, estimator: str = "kl_teacher_student",
               jsd_weight: float = 0.5) -> torch.Tensor:
    """Per-position divergence between two normalised log-distributions over the last dimension.

    The operations follow TRL's `compute_divergence` one for one (elementwise terms, then the
    interpolation, then the sum), so that the SDPO loss built on it is bit-identical to TRL's.
    """
    if estimator == "kl_teacher_student" or (estimator == "sdpo_divergence" and jsd_weight == 0.0):
        kl = F.kl_div(student_logp, teacher_logp, reduction="none", log_target=True)   # T (log T - log S)
    elif estimator == "kl_student_teacher" or (estimator == "sdpo_divergence" and jsd_weight == 1.0):
        kl = F.kl_div(teacher_logp, student_logp, reduction="none", log_target=True)   # S (log S - log T)
    elif estimator == "sdpo_divergence":
        if not 0.0 < jsd_weight < 1.0:
            raise ValueError(f"jsd_weight must be in [0, 1], got {jsd_weight!r}")
        a = torch.tensor(jsd_weight, dtype=student_logp.dtype, device=student_logp.device)
        mixture = torch.logsumexp(torch.stack([student_logp + torch.log(1 - a), teacher_logp + torch.log(a)]), dim=0)
        kl_teacher = F.kl_div(mixture, teacher_logp, reduction="none", log_target=True)
        kl_student = F.kl_div(mixture, student_logp, reduction="none", log_target=True)
        kl = torch.lerp(kl_student, kl_teacher, jsd_weight)
    else:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    return kl.sum(-1)


def add_tail_bucket(topk_logp: torch.Tensor) -> torch.Tensor:
    """Append log(1 - sum exp(topk_logp)) so that the k+1 categories sum to one (TRL's tail bucket)."""
    log_s = torch.logsumexp(topk_logp, dim=-1, keepdim=True).clamp(max=-1e-7)
    return torch.cat([topk_logp, torch.log(-torch.expm1(log_s))], dim=-1)


def normalise_support(student_logp: torch.Tensor, teacher_logp: torch.Tensor, add_tail: bool
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k log-probs made into distributions: a tail bucket appended, or the k renormalised."""
    if add_tail:
        return add_tail_bucket(student_logp), add_tail_bucket(teacher_logp)
    return (student_logp - torch.logsumexp(student_logp, dim=-1, keepdim=True),
            teacher_logp - torch.logsumexp(teacher_logp, dim=-1, keepdim=True))


def _check_shapes(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher {what} differ in shape: {tuple(student.shape)} vs "
                         f"{tuple(teacher.shape)}")
    if mask.shape != student.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match {what} {tuple(student.shape[:2])}")


def reduce_per_token(per_token: torch.Tensor, mask: torch.Tensor, reduction: str) -> InfoStats:
    """Masked sums of a (B, T) per-token tensor, excluding (and counting) non-finite values."""
    mask = mask.to(torch.bool)
    finite = torch.isfinite(per_token)
    bad = (mask & ~finite).sum()
    good = mask & finite
    vals = torch.where(good, per_token.to(torch.float64), torch.zeros((), dtype=torch.float64,
                                                                       device=per_token.device))
    if reduction == "token_mean":
        return InfoStats(float(vals.sum()), float(good.sum()), float(bad))
    if reduction != "sample_mean":
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    n_tok = good.sum(-1)
    has = n_tok > 0
    sample_means = vals.sum(-1)[has] / n_tok[has]
    return InfoStats(float(sample_means.sum()), float(has.sum()), float(bad))


@torch.no_grad()
def per_token_from_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *,
                          estimator: str = "kl_teacher_student", jsd_weight: float = 0.5, chunk_size: int = 128
                          ) -> torch.Tensor:
    """The per-position divergence (B, T), float32, from full-vocabulary logits (B, T, V).

    The log-softmaxes are computed `chunk_size` positions at a time, in float32, so the extra memory is a
    few (B, chunk, V) buffers. Logits must already carry any temperature the loss uses.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
                         f"{tuple(teacher_logits.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    per_token = torch.empty(student_logits.shape[:2], dtype=torch.float32, device=student_logits.device)
    for t0 in range(0, per_token.shape[1], chunk_size):
        t1 = min(t0 + chunk_size, per_token.shape[1])
        s = torch.log_softmax(student_logits[:, t0:t1].detach().float(), dim=-1)
        t = torch.log_softmax(teacher_logits[:, t0:t1].detach().float(), dim=-1)
        per_token[:, t0:t1] = divergence(s, t, estimator, jsd_weight)
        del s, t
    return per_token


@torch.no_grad()
def per_token_from_topk(student_logp: torch.Tensor, teacher_logp: torch.Tensor, *, add_tail: bool = True,
                        final_support: bool = False, estimator: str = "kl_teacher_student", jsd_weight: float = 0.5
                        ) -> torch.Tensor:
    """The per-position divergence (B, T), float32, on a shared top-k support (see information_from_topk)."""
    if student_logp.shape != teacher_logp.shape:
        raise ValueError(f"student and teacher log-probs differ in shape: {tuple(student_logp.shape)} vs "
                         f"{tuple(teacher_logp.shape)}")
    s, t = student_logp.detach().float(), teacher_logp.detach().float()
    if not final_support:
        s, t = normalise_support(s, t, add_tail)
    return divergence(s, t, estimator, jsd_weight)


@torch.no_grad()
def information_from_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, *,
                            estimator: str = "kl_teacher_student", reduction: str = "token_mean",
                            jsd_weight: float = 0.5, chunk_size: int = 128) -> InfoStats:
    """I from full-vocabulary logits of shape (B, T, V) over the tokens where mask (B, T) is set
    (per_token_from_logits, then the reduction)."""
    _check_shapes(student_logits, teacher_logits, mask, "logits")
    return reduce_per_token(per_token_from_logits(student_logits, teacher_logits, estimator=estimator,
                                                  jsd_weight=jsd_weight, chunk_size=chunk_size), mask, reduction)


@torch.no_grad()
def information_from_topk(student_logp: torch.Tensor, teacher_logp: torch.Tensor, mask: torch.Tensor, *,
                          add_tail: bool = True, final_support: bool = False, estimator: str = "kl_teacher_student",
                          reduction: str = "token_mean", jsd_weight: float = 0.5) -> InfoStats:
    """I from log-probabilities on a shared top-k support, shape (B, T, k) (both full-vocabulary log-probs
    of the same token ids). With add_tail the leftover mass becomes a (k+1)-th category; without it the
    top-k are renormalised. `final_support=True` says the inputs are already the final normalised
    distributions (tail appended or renormalised, as returned by pgpo.distill.topk_distillation).
    """
    _check_shapes(student_logp, teacher_logp, mask, "log-probs")
    return reduce_per_token(per_token_from_topk(student_logp, teacher_logp, add_tail=add_tail,
                                                final_support=final_support, estimator=estimator,
                                                jsd_weight=jsd_weight), mask, reduction)


def topk_support(student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-vocabulary log-probs of the student's top-k tokens for student and teacher, shape (B, T, k).

    The student's top-k define the support (as in the SDPO top-k loss); gradients flow through the
    student's values when its logits require grad.
    """
    s_lse = torch.logsumexp(student_logits, dim=-1, keepdim=True)
    s_top, idx = torch.topk(student_logits, k=k, dim=-1)
    t_lse = torch.logsumexp(teacher_logits, dim=-1, keepdim=True)
    t_top = torch.gather(teacher_logits, dim=-1, index=idx)
    return s_top - s_lse, t_top - t_lse
