"""benchmarks/lessons.py, the course timed end to end: it runs lessons in order and records them."""
import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.notebook
def test_lessons_benchmark_times_each_notebook_and_the_total(tmp_path):
    """Lesson 01 on the digits (the quickest): one time per notebook, the total, the budget share."""
    out = tmp_path / "lessons.json"
    res = subprocess.run([sys.executable, "benchmarks/lessons.py", "--only", "01", "--dataset", "digits",
                          "--threads", "1", "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(out.read_text())
    assert list(record["seconds"]) == ["01_standard_training.ipynb"] and record["seconds"]["01_standard_training.ipynb"] > 0
    assert record["total_s"] == pytest.approx(sum(record["seconds"].values()))
    assert "x the budget of 900 s" in res.stdout
    bad = subprocess.run([sys.executable, "benchmarks/lessons.py", "--only", "99", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "no notebook matches --only 99" in bad.stderr
