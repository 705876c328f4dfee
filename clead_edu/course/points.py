"""The points table: full marks per code exercise and partial credit per named mistake.

`points.csv` (next to this file, or the instructor's own copy given with `--points`) has one
row per (exercise, mistake): the row with mistake `right` gives the exercise's full marks, each
other row the points kept for that named mistake (the names are the graders', see
`graders.py`). A mistake without a row earns 0.

    exercise,mistake,points
    fgsm,right,2
    fgsm,train-mode,1
"""
from __future__ import annotations

import csv
from pathlib import Path
from .. import exercises

TABLE = Path(__file__).with_name("points.csv")


def load(path: str | Path | None = None) -> dict[tuple[str, str], float]:
    """{(exercise, mistake): points} from the CSV at `path` (default: the package's points.csv).
    Raises ValueError naming the line of a row without a number or an exercise without full marks."""
    path = Path(path or TABLE)
    table = {}
    with path.open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                key = (row["exercise"].strip(), row["mistake"].strip())
                table[key] = float(row["points"])
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ValueError(f"{path}, line {line}: expected exercise,mistake,points with a number, got {row}")
    missing = {e for e, _ in table} - {e for e, m in table if m == "right"}
    if missing:
        raise ValueError(f"{path}: no 'right' row (full marks) for {', '.join(sorted(missing))}")
    return table


score = exercises.score          # the points of one graded exercise in a table that `load` read
