"""Worker for test_eval.py's FSDP2 test: evaluation with weights sharded by fully_shard over 2 gloo ranks and an odd
number of questions (3: two on rank 0, one on rank 1). Every generate call gathers the weights on all ranks, so the
ranks must run the same calls: pgpo.eval.rank_shard pads rank 1 and generate runs synced. Writes each rank's
completions and the number of generate calls."""

import json
import os
import sys

import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
from distributed_utils import finish_process_group  # noqa: E402


def main(out_path):
    dist.init_process_group("gloo")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoTokenizer

    from pgpo.data.arithmetic import load_word_problems
    from pgpo.eval import generate_transformers, rank_shard
    from pgpo.models import build_tiny_qwen3
    from pgpo.run import PACKAGED_TOKENIZER

    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    model = build_tiny_qwen3(seed=0, hidden_size=32, num_hidden_layers=1, initializer_range=0.3)
    model.generation_config.eos_token_id = None
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    tok = AutoTokenizer.from_pretrained(PACKAGED_TOKENIZER)
    questions = load_word_problems("test", limit=3)
    calls = []
    real_generate = model.generate
    model.generate = lambda *a, **k: calls.append(1) or real_generate(*a, **k)
    padded, n_real = rank_shard(questions, rank, world)
    comps = generate_transformers(model, tok, padded, "reference", 2, 1.0, 1.0, 6, batch_size=2, seed=rank,
                                  show_progress=False, synced=True)[:n_real]
    gathered = [None] * world
    dist.all_gather_object(gathered, [(q.id, c) for q, c in zip(padded[:n_real], comps)])
    with open(out_path.replace("RANK", str(rank)), "w") as f:
        json.dump({"n_real": n_real, "n_padded": len(padded), "calls": len(calls),
                   "ids": sorted(i for part in gathered for i, _ in part),
                   "k": sorted({len(c) for part in gathered for _, c in part})}, f)
    finish_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
