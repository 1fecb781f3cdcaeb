"""Shared by the CLI tests: run `python -m pgpo` in-process and return its one-line error."""

import pytest

from pgpo import cli


def one_error_line(capsys, argv: list[str]) -> str:
    """`pgpo <argv>` must exit with code 2 and print exactly one non-empty line on stderr; that line."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    return err[0]
