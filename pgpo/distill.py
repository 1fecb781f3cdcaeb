"""The SDPO top-k (+ tail) distillation loss, returning the log-probs it is built from.

Same mathematics as TRL's `compute_topk_self_distillation_loss` (the student's top-k tokens define the
support, the teacher is projected onto it, the leftover mass becomes one tail bucket or is dropped by
renormalising, then the generalised JSD with weight `jsd_weight`), but the (k + 1)-category
log-probabilities are returned too, so that PGPO's I_k comes from the very tensors the loss used at a
cost of O(batch x length x k) instead of another pass over the vocabulary.
tests/test_distill.py checks equality with TRL's function.
"""

from __future__ import annotations

import torch

from pgpo.information import divergence, normalise_support, topk_support


def topk_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, k: int,
                      add_tail: bool = True, jsd_weight: float = 0.5
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token distillation loss (B, T) and the student/teacher log-probs (B, T, k[+1]) it compared.

    The student's log-probs carry the autograd graph; detach them before using them for statistics.
    """
    if k < 1 or k > student_logits.shape[-1]:
        raise ValueError(f"top-k must be in [1, vocab={student_logits.shape[-1]}], got {k}")
    s, t = normalise_support(*topk_support(student_logits, teacher_logits, k), add_tail)
    return divergence(s, t, "sdpo_divergence", jsd_weight), s, t
