"""The tests' small tokenizer (tests/data/qwen3-tokenizer-2k) is what its script makes from the packaged Qwen3
tokenizer, and it is Qwen3's tokenizer in all that the tests rely on: every text round-trips, the chat template
renders the same text, and the special tokens are the same tokens."""

import filecmp
import importlib.util
import os

import pytest

from trainer_helpers import ROOT, SMALL_TOKENIZER


def test_the_committed_cut_is_what_the_script_makes(tmp_path):
    spec = importlib.util.spec_from_file_location("mk", os.path.join(ROOT, "tests", "data", "make_small_tokenizer.py"))
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    mk.main(str(tmp_path))
    names = sorted(os.listdir(SMALL_TOKENIZER))
    assert names == sorted(os.listdir(tmp_path))
    match, mismatch, errors = filecmp.cmpfiles(SMALL_TOKENIZER, tmp_path, names, shallow=False)
    assert mismatch == [] and errors == []


@pytest.mark.train
def test_it_is_qwen3s_tokenizer_with_fewer_merges():
    from transformers import AutoTokenizer

    from pgpo.run import PACKAGED_TOKENIZER
    small, full = AutoTokenizer.from_pretrained(SMALL_TOKENIZER), AutoTokenizer.from_pretrained(PACKAGED_TOKENIZER)
    assert len(small) == 2048
    text = "Which gas forms when Na reacts with H₂O? (A) O₂ (B) H₂ — answer: <think>x</think> 2.5e-3 mol/L\n\tdone"
    ids = small(text).input_ids
    assert small.decode(ids) == text and max(ids) < 2048
    assert len(ids) > len(full(text).input_ids)                     # fewer merges: more, shorter tokens
    for tok in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>"):
        assert small.convert_ids_to_tokens(small.convert_tokens_to_ids(tok)) == tok
        assert small.convert_tokens_to_ids(tok) >= 2022             # the specials follow the 2 022 byte/merge tokens
    assert (small.eos_token, small.pad_token) == (full.eos_token, full.pad_token)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1 + 1?"},
            {"role": "assistant", "content": "<think>add</think>2"}, {"role": "user", "content": "2 + 2?"}]
    for thinking in (True, False):
        kw = dict(tokenize=False, add_generation_prompt=True, enable_thinking=thinking)
        assert small.apply_chat_template(chat, **kw) == full.apply_chat_template(chat, **kw)
    # a byte-level token of the cut is the same token (same string, same id) in the full tokenizer
    vocab = small.get_vocab()
    assert all(full.convert_tokens_to_ids(t) == i for t, i in vocab.items() if i < 2022)
