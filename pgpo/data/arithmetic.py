"""Word problems with a verifiable integer answer: a task on which a small instruction-tuned model can learn.

    from pgpo.data.arithmetic import load_word_problems
    train = load_word_problems("train")        # 324 problems
    test = load_word_problems("test")          # 81 problems, on number pairs never seen in training

One step of addition or subtraction in an English sentence, with single-digit operands and results:

    "Mia has 7 stamps and gets 5 more. How many stamps does Mia have now?"       -> 12
    "Leo has 13 coins and gives away 6. How many coins does Leo have left?"     -> 7

Why this task (README, "A real model on this machine"): SmolLM2-135M-Instruct, the instruction-tuned model the
package index ships, answers the packaged SciKnowEval L3 questions at or below chance in every domain and prompt
format measured, so self-distillation would have nothing but the answer format to teach; on these problems it
answers about one sample in four correctly (held-out mean@2 0.22-0.25 at temperature 0.6 before training), so a
successful sibling exists in many groups of six rollouts and there is room to improve. The answer is read as the last integer of the completion (`read_number`), the usual rule for
short math answers; a completion cut off before its answer reads wrong.

The 162 (operation, a, b) triples (a + b with a, b in 1..9; a - b with b in 1..9 and a - b in 1..9) are split once
by a fixed seed: half are held out (the test split, one phrasing each), the other half train (four phrasings each,
with different names and objects). The test split therefore measures whether the arithmetic generalises, not
whether a training problem was memorised. Everything is generated from fixed seeds: the same files every time.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

NAMES = ("Tom", "Anna", "Ravi", "Mia", "Leo", "Sara", "Omar", "Lena", "Yuki", "Ben")
OBJECTS = ("apples", "books", "coins", "stamps", "marbles", "pencils", "shells", "cards")
TRAIN_PHRASINGS = 4
SPLIT_SEED = 20261203


@dataclass(frozen=True)
class WordProblem:
    id: str
    split: str
    question: str
    answer: int
    op: str                 # "+" or "-"
    a: int
    b: int

    @property
    def answer_text(self) -> str:
        return str(self.answer)

    def read(self, text: str) -> int | None:
        """The completion's answer: its last integer (None when it has none)."""
        return read_number(text)


def read_number(text: str) -> int | None:
    """The last integer in `text` (a decimal such as 3.5 is not read as 3 or 5), or None."""
    if not isinstance(text, str):
        return None
    found = re.findall(r"-?\d+(?:\.\d+)?", text)
    ints = [f for f in found if "." not in f]
    return int(ints[-1]) if ints and found[-1] == ints[-1] else None


def triples() -> list[tuple[str, int, int]]:
    """Every (op, a, b) of the task, in a fixed order."""
    add = [("+", a, b) for a in range(1, 10) for b in range(1, 10)]
    sub = [("-", b + c, b) for b in range(1, 10) for c in range(1, 10)]
    return add + sub


def _sentence(op: str, a: int, b: int, name: str, obj: str) -> str:
    if op == "+":
        return f"{name} has {a} {obj} and gets {b} more. How many {obj} does {name} have now?"
    return f"{name} has {a} {obj} and gives away {b}. How many {obj} does {name} have left?"


def load_word_problems(split: str, limit: int | None = None) -> list[WordProblem]:
    """The problems of one split ("train" or "test"), in a fixed shuffled order; `limit` keeps the first ones."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose train or test")
    all_triples = triples()
    order = list(range(len(all_triples)))
    random.Random(SPLIT_SEED).shuffle(order)
    held_out = set(order[: len(order) // 2])
    rng = random.Random(SPLIT_SEED + (1 if split == "train" else 2))
    out = []
    for i, (op, a, b) in enumerate(all_triples):
        if (i in held_out) != (split == "test"):
            continue
        for j in range(1 if split == "test" else TRAIN_PHRASINGS):
            name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
            ans = a + b if op == "+" else a - b
            out.append(WordProblem(f"arith-{split}-{i:03d}-{j}", split, _sentence(op, a, b, name, obj), ans,
                                   op, a, b))
    random.Random(SPLIT_SEED + 3).shuffle(out)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        out = out[:limit]
    return out
