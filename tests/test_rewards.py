import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgpo.rewards import extract_choice, mcq_reward

ABCD = ("A", "B", "C", "D")
TEXTS = ("Sodium chloride", "Potassium nitrate", "Ba6Bi2Zr7Fe1O24", "None of the above")

CASES = [
    # (completion, expected letter or None)
    ("Reasoning... so the answer is \\boxed{B}.", "B"),
    ("\\boxed{ B }", "B"),
    ("\\boxed{\\text{B}}", "B"),
    ("\\boxed{\\textbf{\\text{(C)}}}", "C"),
    ("\\boxed{(d)}", "D"),
    ("\\boxed{b}", "B"),
    ("\\boxed{B.}", "B"),
    ("\\boxed{B)}", "B"),
    ("\\boxed{$C$}", "C"),
    ("\\boxed{\\mathrm{A}}", "A"),
    ("\\boxed{B: Potassium nitrate}", "B"),
    ("\\boxed{(B) Potassium nitrate}", "B"),
    ("\\boxed{Potassium nitrate}", "B"),              # the option's text itself
    ("\\boxed{ba6bi2zr7fe1o24}", "C"),
    ("\\boxed{\\text{Option } C}", "C"),
    ("The final answer: \\boxed{\\text{answer is D}}", "D"),
    ("<reasoning>x</reasoning>\n<answer>\nA\n</answer>", "A"),
    ("<answer> (c) </answer>", "C"),
    ("<ANSWER>D</ANSWER>", "D"),
    ("<reasoning>long</reasoning><answer>B", "B"),        # generation stopped after the letter
    ("First \\boxed{12} moles, hence \\boxed{C}", "C"),   # an intermediate numeric box is ignored
    ("\\boxed{C} ... double-check ... \\boxed{C}", "C"),  # repeated, consistent
    ("\\boxed{C} and <answer>C</answer>", "C"),
    ("<think>maybe \\boxed{A}</think> The answer is \\boxed{B}", "B"),  # thinking ignored
    ("... </think> \\boxed{D}", "D"),
    ("**Answer:** \\boxed{**C**}", "C"),
    ("\\boxed{\\text{C only}}", "C"),
    # ambiguous or missing -> None
    ("\\boxed{B} ... actually \\boxed{C}", None),
    ("<answer>A</answer> <answer>B</answer>", None),
    ("\\boxed{B or C}", None),
    ("\\boxed{A, D}", None),
    ("\\boxed{B and C}", None),
    ("The answer is B.", None),                         # no tag at all
    ("", None),
    ("\\boxed{B", None),                                # unbalanced
    ("\\boxed{}", None),
    ("\\boxed{E}", None),                               # not among the labels
    ("\\boxed{42}", None),
    ("<answer></answer>", None),
    ("\\boxed{the answer is a reaction}", None),        # lower-case article is not an option
    ("<think>\\boxed{A}</think>", None),                # only inside thinking
    ("\\boxed{\\text{option B or option C}}", None),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_extract_choice_adversarial(text, expected):
    assert extract_choice(text, ABCD, TEXTS) == expected


def test_two_choice_questions_reject_c():
    assert extract_choice("\\boxed{C}", ("A", "B"), ("yes", "no")) is None
    assert extract_choice("\\boxed{no}", ("A", "B"), ("yes", "no")) == "B"


def test_reward_function_trl_signature_and_chat_completions():
    comps = [[{"role": "assistant", "content": "\\boxed{B}"}], [{"role": "assistant", "content": "\\boxed{A}"}],
             "<answer>C</answer>", [{"role": "assistant", "content": "\\boxed{B} or \\boxed{C}"}]]
    r = mcq_reward(prompts=[None] * 4, completions=comps, answerKey=["B", "B", "C", "B"],
                   labels=[list(ABCD)] * 4, choice_texts=[list(TEXTS)] * 4, trainer_state=None)
    assert r == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="answerKey"):
        mcq_reward(completions=["x"])


@given(st.text(max_size=200))
def test_never_crashes_and_only_returns_valid_labels(text):
    out = extract_choice(text, ABCD, TEXTS)
    assert out is None or out in ABCD


@given(st.sampled_from(ABCD), st.text(alphabet=st.characters(blacklist_characters="{}\\<>ABCDabcd"), max_size=80))
def test_boxed_letter_survives_surrounding_text(letter, noise):
    assert extract_choice(f"{noise} \\boxed{{{letter}}} {noise}", ABCD) == letter
