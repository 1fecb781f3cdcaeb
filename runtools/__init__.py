"""runtools: what every command and script of the project needs to run, whichever half it belongs to.

The SDE toolkit (`sde`), the trainer (`pgpo`), the experiment scripts and the benchmarks all load strict YAML
configs, write results atomically, save figures, print progress lines and parse command lines the same way. Those
helpers belong to neither the method nor the trainer, so they live here, named for what they are - tools for runs -
and neither half imports the other for them. Torch-free, like `sde` (tests check `import sde` stays so).

    runtools.schema    strict typed loading of nested dataclasses (ConfigError, build, coerce, read_yaml, unknown_key)
    runtools.files     atomic text / JSON writes; the check that an output folder can take a run's output
    runtools.figures   PNG + PDF with deterministic bytes; the colours of an ordered series
    runtools.progress  the periodic progress line with the time remaining; durations as the console prints them
    runtools.args      one-line argparse errors, integer argument types, a command's endings as one line
"""
