"""Binary exact-letter reward for multiple-choice answers.

`extract_choice(text, labels, texts)` finds the final answer in a completion:
  - every \\boxed{...} (balanced braces, nested allowed) and every <answer>...</answer> is a candidate;
    an <answer> left open at the very end (generation stopped) counts too; <think> blocks are ignored;
  - a candidate is read as a letter when it is a single letter, possibly wrapped in \\text{}, \\mathrm{},
    \\textbf{}, $...$, **...**, quotes or parentheses ("(b)", "B.", "B)"), or written "B: text",
    "(B) text", "option B", "answer is B", or when it equals one option's text exactly;
  - lower-case letters are accepted only when they stand alone ("b", "(b)");
  - a candidate naming two or more options ("B or C", "A, D") is ambiguous;
  - candidates with no letter at all (an intermediate \\boxed{42}) are ignored.
The answer is the single letter all readable candidates agree on; anything else (no candidate,
disagreement, ambiguity, a letter outside the question's labels) yields None and reward 0.
"""

from __future__ import annotations

import re
from typing import Sequence

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_OPEN_ANSWER = re.compile(r"<answer>((?:(?!<answer>).)*)$", re.DOTALL | re.IGNORECASE)
_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|operatorname|mbox|emph)\s*\{([^{}]*)\}")
_SINGLE = re.compile(r"^[\(\[\{]?\s*([A-Za-z])\s*[\)\]\}]?\s*[.:)]?$")
_LEADING = re.compile(r"^[\(\[]?([A-Z])(?:[\)\]]\s*|\s*[.:)]\s+|\s*:\s*)(\S.*)$", re.DOTALL)
_PHRASE = re.compile(r"(?i:\b(?:option|choice|answer(?:\s+is)?|letter))\s*[:=]?\s*"
                     r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z])|([a-z])(?=\s*[.)]?\s*$))")
_CAPITAL = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")


def _boxed_contents(text: str) -> list[str]:
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:                    # an unbalanced \boxed{ is not an answer
            out.append(text[m.end(): i - 1])
    return out


def _clean(content: str) -> str:
    s = content.strip()
    prev = None
    while prev != s:                       # peel nested wrappers such as \textbf{\text{B}}
        prev = s
        s = _WRAPPERS.sub(r"\1", s).strip()
        s = s.strip("$*`'\" \n\t")
    return s


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def read_candidate(content: str, labels: Sequence[str], texts: Sequence[str] | None = None
                   ) -> tuple[set[str], bool]:
    """(letters named, ambiguous?) for one candidate's content."""
    s = _clean(content)
    if not s:
        return set(), False
    m = _SINGLE.match(s)
    if m:
        return {m.group(1).upper()}, False
    if texts:
        matches = [lab for lab, t in zip(labels, texts) if _norm(t) == _norm(s)]
        if len(matches) == 1:
            return {matches[0]}, False
    m = _LEADING.match(s)
    if m and m.group(1) in labels:           # "B: text", "(B) text", "B. text"
        return {m.group(1)}, False
    phrase = {next(g for g in groups if g).upper() for groups in _PHRASE.findall(s)}
    if phrase:
        return phrase, len(phrase) > 1
    capitals = {c for c in _CAPITAL.findall(s) if c in labels}
    if len(capitals) > 1:                    # "B or C", "A, D"
        return capitals, True
    if len(capitals) == 1 and len(s) <= 12:   # "B only"
        return capitals, False
    return set(), False


def extract_choice(text: str, labels: Sequence[str] = ("A", "B", "C", "D"),
                   texts: Sequence[str] | None = None) -> str | None:
    """The single option letter the completion commits to, or None (see module docstring)."""
    if not isinstance(text, str):
        return None
    body = _THINK.sub(" ", text)
    if "</think>" in body.lower():        # an unopened closing tag: keep what follows it
        body = body[body.lower().rfind("</think>") + len("</think>"):]
    candidates = _boxed_contents(body) + _ANSWER.findall(body)
    tail = _OPEN_ANSWER.search(body)
    if tail and "</answer>" not in tail.group(1).lower():
        candidates.append(tail.group(1))
    letters: set[str] = set()
    for c in candidates:
        found, ambiguous = read_candidate(c, labels, texts)
        if ambiguous:
            return None
        letters |= found
    if len(letters) != 1:
        return None
    (letter,) = letters
    return letter if letter in labels else None


def _completion_text(completion) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return ""


def mcq_reward(prompts=None, completions=None, answerKey=None, labels=None, choice_texts=None, **kwargs
               ) -> list[float]:
    """TRL reward function: 1.0 when the completion's unique answer letter equals answerKey, else 0.0."""
    if completions is None or answerKey is None:
        raise ValueError("mcq_reward needs `completions` and the dataset column `answerKey`")
    out = []
    for i, (comp, key) in enumerate(zip(completions, answerKey)):
        labs = labels[i] if labels is not None else ("A", "B", "C", "D")
        txts = choice_texts[i] if choice_texts is not None else None
        out.append(1.0 if extract_choice(_completion_text(comp), labs, txts) == key else 0.0)
    return out


def number_reward(prompts=None, completions=None, answerKey=None, **kwargs) -> list[float]:
    """TRL reward function for word problems (pgpo.data.arithmetic): 1.0 when the completion's last integer equals
    the answer, else 0.0."""
    from pgpo.data.arithmetic import read_number
    if completions is None or answerKey is None:
        raise ValueError("number_reward needs `completions` and the dataset column `answerKey`")
    return [1.0 if read_number(_completion_text(c)) == int(k) else 0.0 for c, k in zip(completions, answerKey)]
