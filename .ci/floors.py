"""Print a pip constraints file that pins every direct dependency of the given extras (and the core) to the floor
pyproject.toml declares: `python .ci/floors.py train dev > floors.txt; pip install -c floors.txt -e ".[train,dev]"`
installs the lowest versions the project claims to support, so that the suite run on them proves the floors (the
other CI run installs the newest allowed). Exact pins (==) are kept; a requirement without a floor is left out.
Needs Python 3.11 or later (tomllib), as CI has.
"""
import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
extras = project["optional-dependencies"]


def requirements(names, seen=()):
    for name in names:
        for req in extras[name]:
            inner = re.fullmatch(r"pgpo\[(.+)\]", req)
            if inner:
                yield from requirements([x.strip() for x in inner.group(1).split(",") if x.strip() not in seen],
                                        (*seen, name))
            else:
                yield req


pins = {}
for req in [*project["dependencies"], *requirements(sys.argv[1:])]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    name, spec = m.group(1).lower(), m.group(2)
    low = re.search(r"(==|>=)\s*([0-9][^,;\s]*)", spec)
    if low:
        pins[name] = low.group(2)
for name, version in sorted(pins.items()):
    print(f"{name}=={version}")
