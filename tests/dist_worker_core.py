"""Worker for test_distributed.py: DDP + gradient accumulation + PGPO on a tiny LM, gloo on CPU."""

import json
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(__file__))
from distributed_utils import finish_process_group  # noqa: E402
from pgpo.controller import PGPOController  # noqa: E402
from pgpo.settings import PGPOSettings  # noqa: E402
from pgpo.information import information_from_topk, topk_support  # noqa: E402

V, H, B, T, K = 50, 16, 2, 8, 10


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, H)
        self.head = torch.nn.Linear(H, V)

    def forward(self, ids):
        return self.head(torch.tanh(self.emb(ids)))


def main(out_path):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)                       # identical initial weights on every rank
    student, teacher = TinyLM(), TinyLM()
    for p in teacher.parameters():
        p.requires_grad_(False)
    model = DDP(student)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    ctl = PGPOController(opt, PGPOSettings(alpha=3.0, m_max=2.0))
    gen = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    log = {"rank": rank, "steps": []}
    for step in range(3):
        local = []
        for micro in range(2):
            ids = torch.randint(0, V, (B, T), generator=gen)
            mask = (torch.rand(B, T, generator=gen) > 0.25).float()
            s_logits = model(ids)
            with torch.no_grad():
                t_logits = teacher(ids) * 1.5 + 0.3
            s_lp, t_lp = topk_support(s_logits, t_logits, K)
            ctl.observe_topk(s_lp, t_lp, mask)
            st = information_from_topk(s_lp, t_lp, mask)
            local.append([st.total, st.count])
            loss = ((s_lp.exp() * (s_lp - t_lp)).sum(-1) * mask).sum() / mask.sum()
            if micro == 1:
                decision = ctl.finalize()      # before the last backward, as under DeepSpeed
                loss.backward()
            else:
                with model.no_sync():
                    loss.backward()
        opt.step()
        opt.zero_grad()
        log["steps"].append({"m": decision.multiplier, "info": decision.info, "local": local})
    log["params"] = torch.cat([p.detach().flatten() for p in student.parameters()]).tolist()
    log["history"] = [r.multiplier for r in ctl.modulator.history]
    with open(out_path, "w") as f:
        json.dump(log, f)
    finish_process_group()


if __name__ == "__main__":
    main(sys.argv[1].replace("RANK", os.environ["RANK"]))
