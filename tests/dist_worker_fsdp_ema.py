"""Worker for test_ema_teacher.py's FSDP2 test: the fp32 EMA of a bf16 teacher sharded by fully_shard (2 gloo
ranks) equals, once gathered, the cast of the fp32 EMA computed here on the full tensors."""

import json
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
from distributed_utils import finish_process_group  # noqa: E402


def main(out_path):
    dist.init_process_group("gloo")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from pgpo.ema_teacher import FP32EMATeacher, is_sharded
    from pgpo.models import build_tiny_qwen3

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    student = build_tiny_qwen3(seed=0, hidden_size=32, num_hidden_layers=1).to(torch.bfloat16)
    teacher = build_tiny_qwen3(seed=0, hidden_size=32, num_hidden_layers=1).to(torch.bfloat16).requires_grad_(False)
    full_init = {n: p.detach().double().clone() for n, p in teacher.named_parameters()}
    for m in (student, teacher):
        fully_shard(m, mesh=mesh)
    assert is_sharded(teacher)
    ema = FP32EMATeacher(teacher, rate=0.05)
    want = dict(full_init)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        with torch.no_grad():                    # the same full-size change on every rank, applied shard-wise
            for n, p in student.named_parameters():
                delta = (1e-3 * torch.randn(p.shape, generator=g)).to(torch.bfloat16)
                p.add_(torch.distributed.tensor.distribute_tensor(delta, mesh, p.placements))
        ema.update(student)
        for n, p in student.named_parameters():
            want[n] = 0.95 * want[n] + 0.05 * p.full_tensor().double()
    ok, worst = True, 0.0
    for n, p in teacher.named_parameters():
        full = p.full_tensor()
        err = float((full.double() - want[n]).abs().max())
        tol = 2.0 ** -8 * float(want[n].abs().max()) + 1e-6         # bf16 cast of the fp32 average
        worst = max(worst, err / tol)
        ok &= full.dtype == torch.bfloat16 and err <= tol
    local = ema.state_dict()
    shapes_local = all(local[n].shape == p.to_local().shape for n, p in teacher.named_parameters())
    with open(out_path.replace("RANK", str(dist.get_rank())), "w") as f:
        json.dump({"ok": bool(ok), "worst": worst, "shapes_local": shapes_local,
                   "shadow_bytes": ema.shadow_bytes,
                   "full_bytes": 4 * sum(v.numel() for v in full_init.values())}, f)
    finish_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
