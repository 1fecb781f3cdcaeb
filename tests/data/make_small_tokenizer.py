"""Write tests/data/qwen3-tokenizer-2k: the packaged Qwen3 tokenizer cut to its first merges, 2 048 tokens in all.

Qwen3's byte-level BPE numbers its vocabulary in merge order (ids 0-255 are the bytes, id 256 + i is what merge i
makes), so the first K merges with the first 256 + K tokens are a complete BPE tokenizer by themselves: every text
still encodes (into ~1.5x as many tokens on SciKnowEval), and the chat template, the pre-tokenizer and the 26 special
tokens (<|im_start|>, <|im_end|>, <think>, ...) are Qwen3's, renumbered to follow the merges. The tests train their
tiny random models on it where the tokenizer is not what is under test: the output layer shrinks from 151 936 rows
to 2 048, which is most of a tiny model's compute.

    python tests/data/make_small_tokenizer.py          # rewrites the folder; the result is committed
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "pgpo", "assets", "qwen3-tokenizer")
OUT = os.path.join(HERE, "qwen3-tokenizer-2k")
TOTAL = 2048                       # tokens in all: bytes + merges + special tokens (a multiple of 128)

LICENCE = """# qwen3-tokenizer-2k (tests only)

The Qwen3 tokenizer of `pgpo/assets/qwen3-tokenizer` cut to its first {merges} merges: {total} tokens (256 bytes,
{merges} merged tokens, Qwen3's {specials} special tokens renumbered to ids {first_special}-{last}), the same chat
template and pre-tokenizer. Made by `python tests/data/make_small_tokenizer.py`; the tests' tiny random models use it
where the tokenizer is not under test (an output layer of 2 048 rows instead of 151 936).

Licence: Apache-2.0 (Qwen3 tokenizer, Alibaba Cloud / Qwen team); cut from the packaged files, otherwise unchanged.
"""


def main(out: str = OUT) -> None:
    with open(os.path.join(SOURCE, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    specials = [config["added_tokens_decoder"][k] for k in sorted(config["added_tokens_decoder"], key=int)]
    merges_kept = TOTAL - 256 - len(specials)
    with open(os.path.join(SOURCE, "vocab.json"), encoding="utf-8") as f:
        vocab = sorted(json.load(f).items(), key=lambda kv: kv[1])[:256 + merges_kept]
    if [i for _, i in vocab] != list(range(256 + merges_kept)):
        raise SystemExit("the source vocabulary is not numbered 0..n in merge order")
    with open(os.path.join(SOURCE, "merges.txt"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    header, merges = lines[:1], lines[1:1 + merges_kept]
    for i, merge in enumerate(merges):                 # merge i makes token 256 + i
        if "".join(merge.split(" ")) != vocab[256 + i][0]:
            raise SystemExit(f"merge {i} ({merge!r}) does not make token {256 + i} ({vocab[256 + i][0]!r})")
    config["added_tokens_decoder"] = {str(256 + merges_kept + j): t for j, t in enumerate(specials)}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(dict(vocab), f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(header + merges) + "\n")
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(LICENCE.format(merges=merges_kept, total=TOTAL, specials=len(specials),
                               first_special=256 + merges_kept, last=TOTAL - 1))
    print(f"wrote {out}: {TOTAL} tokens ({merges_kept} merges)")


if __name__ == "__main__":
    main()
