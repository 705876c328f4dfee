"""benchmarks/lessons.py, the course timed end to end: it runs lessons in order and records them;
benchmarks/site.py, the site build measured: its counts on a made-up site."""
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


def test_site_benchmark_counts_pages_figures_and_mathjax(tmp_path):
    """Pages are the HTML files outside assets/; figures, the pictures embedded in them or beside
    them (MathJax's own images not counted); MathJax's bytes are those under assets/mathjax; and
    the lesson times are read from the lines the site build prints."""
    import runpy
    S = runpy.run_path(str(REPO / "benchmarks" / "site.py"))
    site = tmp_path / "site"
    (site / "lessons").mkdir(parents=True)
    (site / "assets" / "mathjax" / "img").mkdir(parents=True)
    (site / "index.html").write_text('<img src="data:image/png;base64,AAAA"><img src="results/a.png">')
    (site / "lessons" / "01_x.html").write_text('<img src="data:image/png;base64,B"><img src="data:image/jpeg;base64,C">')
    (site / "results").mkdir()
    (site / "results" / "a.png").write_bytes(b"p" * 10)
    (site / "assets" / "mathjax" / "MathJax.js").write_bytes(b"m" * 100)
    (site / "assets" / "mathjax" / "img" / "glyph.png").write_bytes(b"g" * 5)
    (site / "assets" / "search.html").write_text("<html></html>")
    got = S["measure"](site)
    assert got["pages"] == 2 and got["figures"] == 4 and got["mathjax_bytes"] == 105
    assert got["bytes"] == sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    printed = "[clead_edu] 01_standard_training.ipynb: 15 s\n[clead_edu] 02_attacks.ipynb: 94 s\n"
    assert S["LESSON_TIME"].findall(printed) == [("01_standard_training", "15"), ("02_attacks", "94")]
