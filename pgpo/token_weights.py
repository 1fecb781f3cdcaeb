"""Per-sample and per-token modulation (pgpo.granularity: sample | token): loss weights from each completion's or
each distilled token's own information, detached (pgpo.modulation describes the variant).

    w_t = m(I_t)                  token:  I_t the token's divergence on the loss's own support (the estimator's)
    w_t = m(I_i), t in sample i   sample: I_i the mean of I_t over sample i's distilled tokens

I_t is the per-token divergence of `pgpo.estimator` on the support the loss uses (top-k + tail for `topk_logits`, the
full vocabulary otherwise). m is pgpo.multiplier's rule (clipped or smooth, in float64 here, as in NumPy). A token
whose I_t is not finite gets w = 1 (and a sample without a finite token likewise); positions outside the mask get
w = 1 (they do not enter the loss).

With `normalize`, w is divided by c, the loss's own average of the weights: SDPO's loss averages each sequence's
tokens, then the sequences, so c = the mean over the micro-batch's sequences with a distilled token of their
token-mean weight, over *every* rank - one all-reduce of (sum of sequence means, count of sequences) per
micro-batch, run by every rank whatever its mask (an empty mask contributes zeros). For a loss that is the same on
every token the weights then leave it unchanged (a pure re-weighting); per-sample weights have mean 1 over the
samples (sde.variants' normalised per-sample step, sum_j w_j g_j / sum_j w_j); per-token weights have mean 1 within
the average of sequence means, which for equal-length completions is the mean over tokens.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from pgpo.multiplier import Multiplier


@torch.no_grad()
def raw_weights(per_token_info: torch.Tensor, mask: torch.Tensor, mult: Multiplier, granularity: str) -> torch.Tensor:
    """w (B, T) float64 before normalisation (module docstring)."""
    mask = mask.bool()
    finite = torch.isfinite(per_token_info) & mask
    safe = torch.where(finite, per_token_info.double(), torch.zeros((), dtype=torch.float64,
                                                                    device=per_token_info.device))
    if granularity == "token":
        w = mult.on(safe)
        return torch.where(finite, w, torch.ones_like(w))
    if granularity != "sample":
        raise ValueError(f"granularity must be 'sample' or 'token' for loss weights, got {granularity!r}")
    n = finite.sum(-1)
    sample_info = safe.sum(-1) / n.clamp(min=1)
    w = torch.where(n > 0, mult.on(sample_info), torch.ones_like(sample_info))
    return torch.where(mask, w[:, None].expand_as(safe), torch.ones_like(safe))


def global_mean(weights: torch.Tensor, mask: torch.Tensor, group=None, device=None) -> tuple[float, float, float]:
    """(c, this rank's sum of sequence-mean weights, this rank's count of sequences with a distilled token): c the mean
    over every rank's sequences of each sequence's token-mean weight (module docstring), 1 when no rank has a token.
    One all-reduce when distributed (every rank must call it)."""
    mask = mask.bool()
    n = mask.sum(-1)
    seq_mean = torch.where(mask, weights, torch.zeros_like(weights)).sum(-1) / n.clamp(min=1)
    local = torch.stack([seq_mean[n > 0].sum(), (n > 0).sum().to(torch.float64)]).to(torch.float64)
    total = local.clone()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        if device is None:
            device = (torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl"
                      else torch.device("cpu"))
        total = total.to(device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
    s, c = (float(v) for v in total.cpu().tolist())
    return (s / c if c > 0 else 1.0), float(local[0]), float(local[1])
