"""The generated word problems (pgpo.data.arithmetic): splits, answers, the answer reader and the reward."""

import re

import pytest

from pgpo.data import load_task
from pgpo.data.arithmetic import load_word_problems, read_number, triples
from pgpo.prompts import answer_key_feedback, conversation, to_rows
from pgpo.rewards import number_reward


def test_splits_hold_out_number_pairs_and_answers_are_right():
    train, test = load_word_problems("train"), load_word_problems("test")
    assert len(triples()) == 162 and len(test) == 81 and len(train) == 4 * 81
    held = {(q.op, q.a, q.b) for q in test}
    seen = {(q.op, q.a, q.b) for q in train}
    assert not held & seen and len(held) == 81 and len(seen) == 81
    for q in train + test:
        nums = [int(x) for x in re.findall(r"\d+", q.question)]
        assert nums == [q.a, q.b]                                   # the sentence states exactly its operands
        assert q.answer == (q.a + q.b if q.op == "+" else q.a - q.b)
        assert ("gets" in q.question) == (q.op == "+") and 1 <= q.b <= 9 and q.answer >= 1
    assert [q.id for q in load_word_problems("test")] == [q.id for q in test]      # generated the same every time
    assert len({q.id for q in train}) == len(train)


@pytest.mark.parametrize("text, number", [
    ("Mia has 7 + 5 = 12 stamps.", 12), ("The answer is 3.", 3), ("12", 12), ("5 - 3 = 2 marbles left", 2),
    ("She has 3.5 apples", None), ("no number here", None), ("It is 8, not 9.0", None), ("-4", -4), ("", None)])
def test_the_answer_is_the_last_integer(text, number):
    assert read_number(text) == number


def test_reward_rows_and_prompts():
    qs = load_word_problems("test", limit=3)
    rows = to_rows(qs, "reference", "answer_key")
    assert [r["answerKey"] for r in rows] == [str(q.answer) for q in qs]
    assert rows[0]["privileged_context"] == answer_key_feedback(qs[0]) == f"The correct answer is {qs[0].answer}."
    assert "labels" not in rows[0]
    msgs = conversation(qs[0], "reference")
    assert len(msgs) == 1 and msgs[0]["role"] == "user" and qs[0].question in msgs[0]["content"]
    completions = [[{"role": "assistant", "content": f"so {r['answerKey']}"}] for r in rows]
    assert number_reward(completions=completions, answerKey=[r["answerKey"] for r in rows]) == [1.0, 1.0, 1.0]
    wrong = [[{"role": "assistant", "content": f"so {int(r['answerKey']) + 1}"}] for r in rows]
    assert number_reward(completions=wrong, answerKey=[r["answerKey"] for r in rows]) == [0.0, 0.0, 0.0]
    assert len(load_task("arithmetic", "chemistry", "train", limit=5).questions) == 5
