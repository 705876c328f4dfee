"""The whole course, timed: every lesson notebook in order, quick preset, one shared run folder.

    python benchmarks/lessons.py                         # notebooks/01..08 on the photos (the default)
    python benchmarks/lessons.py --only 06,07             # some of them
    python benchmarks/lessons.py --no-training            # fail if a lesson would train a model the
                                                          # pretrained bundle should have supplied

This is how a student meets the course on a laptop or a JupyterHub CPU: the notebooks run one
after the other through papermill, in a fresh run folder (so the lessons load the pretrained
photo models, or train what is missing), and each notebook's wall time is printed with the
total and its share of the budget (--budget-s, default 900 s: 15 minutes). The package sizes
its threads itself (`clead_edu.threads`); --threads N sets CLEAD_EDU_THREADS for the kernels.
The times and settings also go to --out (JSON); --keep DIR keeps the executed notebooks, with
each cell's time in its metadata (papermill's "duration").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def papermill_command(nb: Path, out_dir: Path, run_dir: Path) -> list[str]:
    """The command that executes notebook `nb` in the quick preset, in its own folder, with
    checkpoints in `run_dir`, writing the executed copy to out_dir (also benchmarks/threads.py's)."""
    return [sys.executable, "-m", "papermill", str(nb), str(out_dir / nb.name), "--cwd", str(nb.parent),
            "-p", "preset", "quick", "-p", "run_dir", str(run_dir), "-k", "python3", "--no-progress-bar"]


def run_notebook(nb: Path, run_dir: Path, out_dir: Path, env: dict, dataset: str | None) -> float:
    """Execute one notebook (`papermill_command`); its wall seconds."""
    cmd = papermill_command(nb, out_dir, run_dir)
    if dataset:
        cmd += ["-p", "dataset", dataset]
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{nb.name} failed:\n{p.stderr[-3000:]}")
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="notebook numbers, e.g. 06,07 (default: all, in order)")
    ap.add_argument("--dataset", help="the notebooks' dataset parameter (default: each notebook's own)")
    ap.add_argument("--threads", help="CLEAD_EDU_THREADS for the kernels (default: the package decides)")
    ap.add_argument("--no-training", action="store_true", help="set CLEAD_EDU_NO_TRAINING=1")
    ap.add_argument("--budget-s", type=float, default=900.0, help="the course's time budget (s)")
    ap.add_argument("--out", default="runs/bench_lessons.json", help="where the JSON goes")
    ap.add_argument("--keep", help="keep the executed notebooks here (each cell's time is in its metadata)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    notebooks = [nb for nb in NOTEBOOKS if only is None or nb.name[:2] in only]
    if not notebooks:
        raise SystemExit(f"no notebook matches --only {args.only}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    env.update({"CLEAD_EDU_THREADS": args.threads} if args.threads else {})
    env.update({"CLEAD_EDU_NO_TRAINING": "1"} if args.no_training else {})
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(args.keep or tmp)
        executed.mkdir(parents=True, exist_ok=True)
        for nb in notebooks:
            times[nb.name] = run_notebook(nb, Path(tmp) / "runs", executed, env, args.dataset)
            print(f"{nb.name:<40} {times[nb.name]:7.1f} s", flush=True)
    total = sum(times.values())
    print(f"{'total':<40} {total:7.1f} s = {total / 60:.1f} min; {total / args.budget_s:.2f} x the "
          f"budget of {args.budget_s:.0f} s")
    record = {"seconds": times, "total_s": total, "budget_s": args.budget_s, "cpus": os.cpu_count(),
              "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
              "threads": args.threads, "dataset": args.dataset, "no_training": args.no_training,
              "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
