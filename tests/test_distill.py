import pytest
import torch

from pgpo.distill import topk_distillation
from pgpo.information import information_from_logits, information_from_topk

trl_loss = pytest.importorskip("trl.experimental.sdpo.loss_utils")


@pytest.mark.parametrize("add_tail", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_equals_trls_topk_loss_values_and_gradients(add_tail, alpha):
    g = torch.Generator().manual_seed(0)
    s = (2 * torch.randn(2, 7, 300, generator=g)).requires_grad_(True)
    t = 2 * torch.randn(2, 7, 300, generator=g)
    s2 = s.detach().clone().requires_grad_(True)
    ours, s_lp, t_lp = topk_distillation(s, t, k=20, add_tail=add_tail, jsd_weight=alpha)
    theirs = trl_loss.compute_topk_self_distillation_loss(s2, t, distillation_topk=20, distillation_alpha=alpha,
                                                          distillation_add_tail=add_tail)
    assert torch.equal(ours, theirs)           # same operations in the same order: bit for bit
    ours.sum().backward()
    theirs.sum().backward()
    assert torch.equal(s.grad, s2.grad)
    assert s_lp.shape[-1] == 20 + add_tail


def test_information_from_the_losss_own_logprobs():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 5, 64, generator=g), torch.randn(2, 5, 64, generator=g)
    mask = torch.ones(2, 5)
    _, s_lp, t_lp = topk_distillation(s, t, k=64, add_tail=False)
    a = information_from_topk(s_lp.detach(), t_lp, mask, final_support=True)
    b = information_from_logits(s, t, mask)
    assert a.value == pytest.approx(b.value, rel=1e-5)


def test_bad_k():
    with pytest.raises(ValueError, match="top-k"):
        topk_distillation(torch.zeros(1, 2, 5), torch.zeros(1, 2, 5), k=6)
