"""The config field reference (`python -m pgpo fields`): every section's fields with type, default and description,
generated from the dataclasses themselves so that it cannot fall behind the code."""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from pgpo.config import FIXED, SECTIONS, SET_FROM, TRAINING_PURPOSE


def _field_comments(cls) -> dict[str, str]:
    """The trailing `# comment` of each field in a dataclass's source (the reference's descriptions)."""
    import inspect
    import re
    out, last = {}, None
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s{4}(\w+): [^#]*?(?:#\s*(.*))?$", line)
        if m and not line.strip().startswith(("def ", "@")):
            last = m.group(1)
            out[last] = (m.group(2) or "").strip()
        elif last and re.match(r"\s+#\s*(.*)$", line):            # a comment continued on the next line
            out[last] = (out[last] + " " + line.strip().lstrip("#").strip()).strip()
        else:
            last = None
    return out


def _type_text(tp) -> str:
    import typing
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Literal:
        return " \\| ".join(repr(a) if isinstance(a, str) else str(a) for a in args)
    if typing.get_origin(tp) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _type_text(inner[0]) + " or null" if len(inner) == 1 else " or ".join(map(_type_text, inner))
    return getattr(tp, "__name__", str(tp))


def _section_reference(name: str, cls, purpose: str) -> list[str]:
    comments, types = _field_comments(cls), typing.get_type_hints(cls)
    out = [f"## `{name}`: {purpose}", "", "| field | type | default | description |", "|---|---|---|---|"]
    for sf in dataclasses.fields(cls):
        default = sf.default if sf.default is not dataclasses.MISSING else sf.default_factory()
        shown = "null" if default is None else (str(default).lower() if isinstance(default, bool) else repr(default))
        out.append(f"| `{sf.name}` | {_type_text(types[sf.name])} | `{shown}` | {comments.get(sf.name, '')} |")
    return out + [""]


def _training_reference() -> list[str]:
    """Every PGPOConfig field with TRL's default and the first sentence of TRL's help text."""
    from pgpo.trainer_config import PGPOConfig
    out = [f"## `training`: {TRAINING_PURPOSE}", "",
           "Set by the run, not here: " + "; ".join(f"`{k}` ({v})" for k, v in SET_FROM.items()) + "; fixed: "
           + ", ".join(f"`{k}` = {v}" for k, v in FIXED.items()) + ". `report_to` also takes `auto` (TensorBoard "
           "when installed). `gradient_checkpointing` and `activation_checkpointing` are one setting (the installed "
           "transformers' name is used).", "", "| field | default | description (TRL's) |", "|---|---|---|"]
    for f in dataclasses.fields(PGPOConfig):
        if f.name.startswith("_") or f.name in SET_FROM or f.name in FIXED or not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        shown = "null" if default is None else (str(default).lower() if isinstance(default, bool) else repr(default))
        helptext = " ".join(str(f.metadata.get("help", "")).split()).split(". ")[0].replace("|", "\\|")
        out.append(f"| `{f.name}` | `{shown[:60]}` | {helptext[:200]} |")
    return out + [""]


def field_reference(section: str | None = None) -> str:
    """Every config field: its section, type (or choices), default and description, as Markdown generated from
    the dataclasses themselves (`python -m pgpo fields`), so the reference cannot fall behind the code. The
    `training` section (PGPOConfig) needs TRL installed."""
    out = ["# Config fields", "",
           "Generated from the dataclasses in `pgpo/config.py`, `pgpo/settings.py` and `pgpo/trainer_config.py` by "
           "`python -m pgpo fields`. In a YAML file a field is `section: {field: value}`; on the command line "
           "`section.field=value` (read as YAML). Top level: `name` (the run's name, default 'run') and `base` (a "
           "YAML file this one extends).", ""]
    for name, (cls, purpose) in SECTIONS.items():
        if section in (None, name):
            out += _section_reference(name, cls, purpose)
    if section in (None, "training"):
        out += _training_reference()
    return "\n".join(out)
