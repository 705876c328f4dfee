"""The course site, built and measured: time, memory, size, pages and figures.

    python benchmarks/site.py --out benchmarks/results/site-cpu.json
    python benchmarks/site.py --only 01,07 --out runs/bench_site.json   # some lessons

Runs `python -m clead_edu site` (every lesson executed in the quick preset, then MkDocs) into a
fresh folder and records: the wall time of the whole build and of each lesson's execution (as
the build prints them), the largest resident size of any process it ran (the notebook kernels
included), the site's size on disk and how much of it is MathJax, its pages (HTML files outside
assets/) and figures (pictures embedded in the pages or beside them), and the load average
before and after (another job on the machine slows the build). The README quotes the JSON
(`tools/quote_numbers.py`, keys `site.*`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSON_TIME = re.compile(r"\[clead_edu\] (\d\d_\w+)\.ipynb: (\d+) s")
FIGURE = re.compile(r'src="data:image/(?:png|jpeg|svg\+xml)')


def measure(site: Path) -> dict:
    """Size (bytes, all and MathJax's), pages and figures of a built site folder."""
    files = [p for p in site.rglob("*") if p.is_file()]
    mathjax = site / "assets" / "mathjax"
    pages = [p for p in files if p.suffix == ".html" and p.relative_to(site).parts[0] != "assets"]
    embedded = sum(len(FIGURE.findall(p.read_text(errors="replace"))) for p in pages)
    beside = [p for p in files if p.suffix in (".png", ".jpg", ".svg") and not p.is_relative_to(mathjax)
              and p.relative_to(site).parts[0] != "assets"]
    return {"bytes": sum(p.stat().st_size for p in files),
            "mathjax_bytes": sum(p.stat().st_size for p in files if p.is_relative_to(mathjax)),
            "pages": len(pages), "figures": embedded + len(beside)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="lesson numbers, e.g. 01,07 (default: all)")
    ap.add_argument("--out", default="runs/bench_site.json", help="where the JSON goes")
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "clead_edu", "site", "--out", str(Path(tmp) / "site")]
        cmd += ["--only", args.only] if args.only else []
        load_before, t = os.getloadavg()[0], time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        wall, load_after = time.perf_counter() - t, os.getloadavg()[0]
        if p.returncode != 0:
            raise SystemExit(f"the site build failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        site = measure(Path(tmp) / "site")
    lessons = {name: int(s) for name, s in LESSON_TIME.findall(p.stdout)}
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024     # Linux: kilobytes
    record = {"wall_s": wall, "lessons_s": lessons, "lessons_total_s": sum(lessons.values()),
              "peak_rss_bytes": peak, **site, "only": args.only, "threads": os.environ.get("CLEAD_EDU_THREADS"),
              "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")}
    for name, s in lessons.items():
        print(f"{name:<40} {s:7d} s")
    print(f"site built in {wall:.0f} s ({sum(lessons.values())} s executing the lessons); largest process "
          f"{peak / 2**30:.2f} GiB; {site['bytes'] / 2**20:.1f} MiB ({site['mathjax_bytes'] / 2**20:.1f} MiB "
          f"MathJax), {site['pages']} pages, {site['figures']} figures; load {load_before:.1f} -> {load_after:.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
