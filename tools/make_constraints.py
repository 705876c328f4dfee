"""Write constraints.txt: the exact version of every package the course's requirements pull in,
as installed in the environment that ran the tests.

    python tools/make_constraints.py > constraints.txt      # in the environment CI tested

Starts from the requirements of requirements-test.txt (which includes the instructor's and the
student's files) and pyproject.toml's dependencies, follows each installed distribution's own
requirements (their markers evaluated for this machine, extras followed), and prints
`name==version`, sorted. The package itself and what is not installed are left out.
`pip install -r requirements.txt -c constraints.txt -e .` then installs the tested versions.
"""
from __future__ import annotations

import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a requirements file, following `-r other.txt` includes."""
    lines = []
    for line in path.read_text().splitlines():
        line = re.sub(r"\s+#.*", "", line).strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line[3:].strip())
        elif line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def closure(requirements: list[str]) -> dict[str, str]:
    """{canonical name: installed version} of the requirements and everything they require."""
    todo, found, seen = [Requirement(r) for r in requirements], {}, set()
    while todo:
        req = todo.pop()
        name, extras = canonicalize_name(req.name), sorted(req.extras)
        if (req.marker is not None and not req.marker.evaluate({"extra": ""})) or (name, *extras) in seen:
            continue
        seen.add((name, *extras))
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            for e in extras or [""]:
                if sub.marker is None or sub.marker.evaluate({"extra": e}):
                    todo.append(Requirement(str(sub).split(";")[0]))
                    break
    return found


def main() -> int:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = closure(requirement_lines(ROOT / "requirements-test.txt") + deps)
    pins.pop("clead-edu", None)
    print("# The versions the course's tests ran with (python tools/make_constraints.py > constraints.txt,")
    print(f"# Python {sys.version_info.major}.{sys.version_info.minor}, Linux x86-64). Use: pip install -r requirements.txt "
          "-c constraints.txt -e .")
    print("\n".join(f"{n}=={v}" for n, v in sorted(pins.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
