"""Tiny random Qwen3 models built from a config, for CPU smoke runs, tests and benchmarks.

No machine here reaches a model hub, so the smoke preset writes a randomly initialised
`Qwen3ForCausalLM` (Qwen3's vocabulary, a few layers) together with the shipped Qwen3 tokenizer into a
local directory, and the trainer loads it by path exactly as it loads `Qwen/Qwen3-8B` on a real machine
(TRL builds the EMA teacher from the same path). With another tokenizer (`model.tokenizer`; the tests use a
2 048-token cut of Qwen3's) the tiny model's vocabulary is that tokenizer's.
"""

from __future__ import annotations

import os

QWEN3_VOCAB = 151_936          # Qwen3-8B's embedding rows (the tokenizer has 151 669 tokens)
QWEN3_TOKENS = 151_669


def embedding_rows(tokens: int) -> int:
    """A tiny model's embedding rows for a tokenizer of `tokens` tokens: Qwen3-8B's 151 936 for the Qwen3 tokenizer,
    otherwise the tokenizer's size rounded up to a multiple of 128."""
    return QWEN3_VOCAB if tokens == QWEN3_TOKENS else -(-tokens // 128) * 128


def tiny_qwen3_config(hidden_size: int = 64, num_hidden_layers: int = 2, num_attention_heads: int = 4,
                      num_key_value_heads: int = 2, intermediate_size: int = 128, vocab_size: int = QWEN3_VOCAB,
                      max_position_embeddings: int = 4096, **kwargs):
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                       num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                       num_key_value_heads=num_key_value_heads, head_dim=hidden_size // num_attention_heads,
                       tie_word_embeddings=True, max_position_embeddings=max_position_embeddings,
                       **kwargs)


def build_tiny_qwen3(seed: int = 0, dtype=None, **config_kwargs):
    """A randomly initialised tiny Qwen3ForCausalLM (same seed -> same weights)."""
    import torch
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(tiny_qwen3_config(**config_kwargs))
    if dtype is not None:
        model = model.to(dtype)
    return model


def write_tiny_qwen3(out_dir: str, tokenizer_dir: str, seed: int = 0, **config_kwargs) -> str:
    """Save a tiny random Qwen3 and the tokenizer to `out_dir` (idempotent for the same arguments); its vocabulary is
    the tokenizer's (`embedding_rows`) unless `vocab_size` is given."""
    from transformers import AutoTokenizer, GenerationConfig

    marker = os.path.join(out_dir, "config.json")
    if os.path.exists(marker) and os.path.exists(os.path.join(out_dir, "model.safetensors")):
        return out_dir
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config_kwargs.setdefault("vocab_size", embedding_rows(len(tok)))
    model = build_tiny_qwen3(seed=seed, **config_kwargs)
    model.config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config = GenerationConfig(eos_token_id=[tok.convert_tokens_to_ids("<|im_end|>"),
                                                             tok.convert_tokens_to_ids("<|endoftext|>")],
                                               pad_token_id=tok.pad_token_id)
    tmp = out_dir.rstrip("/") + ".tmp"
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if os.path.exists(out_dir):
        import shutil
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
