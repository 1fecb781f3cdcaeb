import os

import pytest

from pgpo.data import load_questions
from pgpo.prompts import (BOXED_INSTRUCTION, REFERENCE_SYSTEM_PROMPT, conversation, teacher_templates, to_rows,
                          user_prompt)

TOKENIZER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "pgpo", "assets", "qwen3-tokenizer")


@pytest.fixture(scope="module")
def q():
    return load_questions("chemistry", "test", limit=1).questions[0]


def test_paper_template_appendix_b(q):
    p = user_prompt(q, "paper")
    assert p.startswith(q.question + "\n\n" + "A: " + q.texts[0])
    assert p.endswith(BOXED_INSTRUCTION) and "\\boxed{}" in p
    assert conversation(q, "paper") == [{"role": "user", "content": p}]
    t = teacher_templates("paper")
    teacher = t["reprompt_template"].format(prompt=p, solution=t["solution_template"].format(
        successful_previous_attempt="SOL"), feedback="")
    assert teacher == p + "\nCorrect solution: SOL\nCorrectly solve the original question."


def test_reference_style(q):
    msgs = conversation(q, "reference")
    assert msgs[0] == {"role": "system", "content": REFERENCE_SYSTEM_PROMPT}
    body = msgs[1]["content"]
    lines = body.split("\n")
    assert [ln for ln in lines if ln[:3] in ("A: ", "B: ", "C: ", "D: ")] == [f"{l}: {t}" for l, t in q.choices()]
    assert body.endswith("Please reason step by step.")
    assert "<answer>" in REFERENCE_SYSTEM_PROMPT


def test_chat_template_with_thinking_off(q):
    tr = pytest.importorskip("transformers")
    tok = tr.AutoTokenizer.from_pretrained(TOKENIZER)
    text = tok.apply_chat_template(conversation(q, "reference"), tokenize=False, add_generation_prompt=True,
                                   enable_thinking=False)
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")     # empty thinking block


def test_rows_carry_what_the_reward_needs(q):
    (row,) = to_rows([q], "reference", feedback="answer_key")
    assert row["answerKey"] == q.answer and row["labels"] == list(q.labels)
    assert row["privileged_context"] == f"The correct answer is {q.answer}: {q.answer_text}."
    assert "privileged_context" not in to_rows([q], "reference")[0]
    with pytest.raises(ValueError):
        to_rows([q], "reference", feedback="hint")
    with pytest.raises(ValueError, match="prompt style"):
        user_prompt(q, "socratic")
