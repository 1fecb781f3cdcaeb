"""Shared by the CLI tests: run `python -m pgpo` in-process and return its one-line error."""

from pgpo import cli


def one_error_line(capsys, argv: list[str]) -> str:
    """`pgpo <argv>` must exit with code 2 and print exactly one non-empty line on stderr; that line. The exit code
    is main's SystemExit (argparse errors) or its return value, as `python -m pgpo` (sys.exit(main())) sees it."""
    capsys.readouterr()                          # what the test printed before is not the command's
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    return err[0]
