"""Command-line helpers shared by `python -m pgpo`, `python -m sde` and the experiment scripts: an argparse parser
whose errors are one line, integer argument types, and a command's endings (Ctrl-C, a closed pipe) as one line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys


@contextlib.contextmanager
def one_line_endings(name: str, interrupted=None):
    """A command's endings as one line: Ctrl-C prints `interrupted()` (or "<name>: interrupted") and exits 130, as
    shells expect; a closed output pipe (`... | head`) ends quietly with the status a SIGPIPE death would give."""
    try:
        yield
    except KeyboardInterrupt:
        line = interrupted() if interrupted is not None else f"{name}: interrupted"
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)          # Python would complain again flushing stdout at exit
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(141) from None


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (`prog: error: message`), not the whole usage; pass
    `parser_class=OneLineParser` to add_subparsers so that sub-commands behave the same."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_at_least(low: int):
    """An argparse `type`: an integer >= low (a bad value is the parser's one-line error)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {v}")
        return v
    return parse
