"""Independent float64 re-implementations of what the trainer computes, for tests to compare against.

Written from the definitions (SDPO top-k + tail support, generalised JSD, KL(teacher || student), truncated
importance weight), not from pgpo's or TRL's code.
"""

import torch


def topk_tail_support(student_logits, teacher_logits, k):
    """(B, T, k + 1) log-probs: the student's k most likely tokens, then one bucket for the remaining mass."""
    s = torch.log_softmax(student_logits.double(), -1)
    t = torch.log_softmax(teacher_logits.double(), -1)
    idx = student_logits.topk(k, dim=-1).indices
    s_top, t_top = s.gather(-1, idx), t.gather(-1, idx)
    s_tail = torch.log1p(-s_top.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-12))
    t_tail = torch.log1p(-t_top.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-12))
    return torch.cat([s_top, s_tail], -1), torch.cat([t_top, t_tail], -1)


def kl(p_log, q_log):
    """KL(p || q) over the last axis."""
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def generalised_jsd(s_log, t_log, alpha):
    """(1 - alpha) KL(s || M) + alpha KL(t || M), M = (1 - alpha) s + alpha t (alpha = 0.5: the JSD)."""
    m = ((1 - alpha) * s_log.exp() + alpha * t_log.exp()).log()
    return (1 - alpha) * kl(s_log, m) + alpha * kl(t_log, m)


def information(records, k):
    """I_k = token mean over all distilled tokens of the step's micro-batches of KL(teacher || student)."""
    total, count = 0.0, 0.0
    for r in records:
        s, t = topk_tail_support(r["student_logits"], r["teacher_logits"], k)
        mask = r["loss_mask"].double()
        total += float((kl(t, s) * mask).sum())
        count += float(mask.sum())
    return total / count


def token_logprobs(logits, ids):
    return torch.log_softmax(logits.double(), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def distillation_loss(record, k, alpha, is_clip, rollout_logps):
    """The SDPO per-sequence-normalised loss of one micro-batch, with weight min(pi / pi_rollout, is_clip)."""
    s, t = topk_tail_support(record["student_logits"], record["teacher_logits"], k)
    per_token = generalised_jsd(s, t, alpha)
    if is_clip is not None:
        ratio = (token_logprobs(record["student_logits"], record["completion_ids"]) - rollout_logps.double()).exp()
        per_token = per_token * ratio.clamp(max=is_clip)
    mask = record["loss_mask"].double()
    return float(((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean())
