"""Prompts for Science-QA: the paper's Appendix B templates and the SDPO reference style.

style "paper"      user: question, choices, "Please reason step by step, and put your final answer
                   within \\boxed{}."; teacher (solution-guided): the same + "Correct solution: ..."
                   + "Correctly solve the original question."  No system prompt.
style "reference"  a system prompt asking for a reasoning block and only the option letter inside
                   <answer>...</answer>; user: question, a blank line, one "X: text" line per choice,
                   "Please reason step by step."; teacher: TRL's SDPO reprompt templates (the reference's).

Choices are listed as "A: text" lines in both styles. The chat template is applied by the trainer with
thinking off (`enable_thinking=False`).

Word problems (pgpo.data.arithmetic, `data.task: arithmetic`): the user turn is the problem and NUMBER_INSTRUCTION,
with no system prompt of ours (the model's chat template adds its own default); the style chooses only the
teacher's reprompt template.
"""

from __future__ import annotations

from pgpo.data import Question
from pgpo.data.arithmetic import WordProblem

STYLES = ("paper", "reference")

NUMBER_INSTRUCTION = "Answer with the number."
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
REFERENCE_SYSTEM_PROMPT = (
    "You answer multiple-choice science questions. Think the problem through inside "
    "<reasoning> ... </reasoning>, then write only the letter of the correct option inside "
    "<answer> ... </answer> (for example <answer>C</answer>). Do not repeat the option's text in the answer."
)

TEACHER_TEMPLATES = {
    # The paper's solution-guided template (Appendix B), through TRL's reprompt mechanism.
    "paper": {
        "reprompt_template": "{prompt}{solution}{feedback}\nCorrectly solve the original question.",
        "solution_template": "\nCorrect solution: {successful_previous_attempt}",
        "feedback_template": "\nFeedback: {feedback_raw}",
    },
    # TRL's SDPO defaults, which follow the reference implementation.
    "reference": {
        "reprompt_template": "{prompt}{solution}{feedback}\n\nCorrectly solve the original question.\n",
        "solution_template": "\nCorrect solution:\n\n{successful_previous_attempt}\n\n",
        "feedback_template": "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback_raw}\n\n",
    },
}


def _check(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"prompt style must be one of {STYLES}, got {style!r}")


def format_choices(q: Question) -> str:
    return "\n".join(f"{label}: {text}" for label, text in q.choices())


def user_prompt(q: Question, style: str) -> str:
    _check(style)
    body = f"{q.question}\n\n{format_choices(q)}"
    if style == "paper":
        return f"{body}\n{BOXED_INSTRUCTION}"
    return f"{body}\nPlease reason step by step."


def conversation(q: Question | WordProblem, style: str) -> list[dict]:
    """The student's prompt as chat messages (the last one is the user turn TRL reprompts)."""
    if isinstance(q, WordProblem):
        _check(style)
        return [{"role": "user", "content": f"{q.question}\n{NUMBER_INSTRUCTION}"}]
    msgs = [{"role": "user", "content": user_prompt(q, style)}]
    if style == "reference":
        msgs.insert(0, {"role": "system", "content": REFERENCE_SYSTEM_PROMPT})
    return msgs


def teacher_templates(style: str) -> dict:
    _check(style)
    return dict(TEACHER_TEMPLATES[style])


def answer_key_feedback(q: Question | WordProblem) -> str:
    """Privileged feedback naming the right answer (used only when `data.feedback: answer_key`)."""
    if isinstance(q, WordProblem):
        return f"The correct answer is {q.answer}."
    return f"The correct answer is {q.answer}: {q.answer_text}."


def to_rows(questions: list[Question] | list[WordProblem], style: str, feedback: str = "none") -> list[dict]:
    """Dataset rows for TRL: prompt (chat messages), the answer key and what the reward needs."""
    if feedback not in ("none", "answer_key"):
        raise ValueError(f"feedback must be 'none' or 'answer_key', got {feedback!r}")
    rows = []
    for q in questions:
        row = {"prompt": conversation(q, style), "answerKey": str(q.answer), "question_id": q.id}
        if isinstance(q, Question):
            row.update(labels=list(q.labels), choice_texts=list(q.texts))
        if feedback == "answer_key":
            row["privileged_context"] = answer_key_feedback(q)
        rows.append(row)
    return rows
