"""What moved in Google Colab since the course's Colab test was written.

    curl -LO https://raw.githubusercontent.com/googlecolab/backend-info/main/pip-freeze.gpu.txt
    python tools/colab_diff.py pip-freeze.gpu.txt

Compares a freshly downloaded Colab package list (`pip freeze` form, as Colab publishes it in
github.com/googlecolab/backend-info) with the versions tests/test_colab.py plays
(tests/colab_packages.txt), for the packages that list names, and prints one line per package
that moved or is gone. Exit status 0 when nothing moved, 1 when something did (then update
tests/colab_packages.txt and run `python -m pytest -m colab tests/test_colab.py`). Run it before
a term. Standard library and `packaging` only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

TESTED = Path(__file__).resolve().parents[1] / "tests" / "colab_packages.txt"


def read_freeze(text: str) -> dict[str, str]:
    """{canonical name: version} of a `pip freeze` text; 'name @ url' lines get the url as their
    version; comments, blank lines and options (-e, --index-url) are skipped."""
    found = {}
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        if " @ " in line:
            name, version = line.split(" @ ", 1)
        elif "==" in line:
            name, version = line.split("==", 1)
        else:
            continue
        found[canonicalize_name(name.strip())] = version.strip()
    return found


def moved(tested: dict[str, str], fresh: dict[str, str]) -> list[str]:
    """One line per tested package whose version differs in `fresh`: 'numpy 2.0.2 -> 2.1.3', or
    'umap-learn 0.5.12 -> (gone)'; [] when every one is the same."""
    return [f"{name} {version} -> {fresh.get(name, '(gone)')}"
            for name, version in tested.items() if fresh.get(name) != version]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fresh", help="Colab's pip-freeze.gpu.txt, freshly downloaded")
    ap.add_argument("--tested", default=str(TESTED), help="the list the Colab test plays (default: %(default)s)")
    args = ap.parse_args(argv)
    tested = read_freeze(Path(args.tested).read_text())
    fresh = read_freeze(Path(args.fresh).read_text())
    lines = moved(tested, fresh)
    print("\n".join(lines) if lines else f"nothing moved: the {len(tested)} packages of {args.tested} are the same")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
