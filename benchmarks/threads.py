"""CPU threads where courses run: one training job idle, beside a busy process, on one CPU.

    python benchmarks/threads.py                          # 20 PGD-AT batches on digits, every case
    python benchmarks/threads.py --batches 5 --cases idle-1cpu,busy   # a shorter check
    python benchmarks/threads.py --workload run           # the main job with small settings
    python benchmarks/threads.py --workload notebooks/03_adversarial_training.ipynb

Each case runs the workload in a fresh process, with torch's default thread count
("default": one per core of the machine) or the count `clead_edu.threads` chooses
("sized": what the package does; for `run` and notebooks, "default" asks for torch's
count through CLEAD_EDU_THREADS, which the package still caps by the affinity and quota):
  idle            nothing else running (run it on a quiet machine)
  idle-1cpu       pinned to CPU 0 (`os.sched_setaffinity`, like `taskset -c 0`): the baseline
  busy            beside one spinning Python process that this script starts
  quota           in a cgroup with a 1-CPU quota (like `docker run --cpus 1`); this needs
                  root and a writable cgroup, else the case is skipped with a note
It prints the seconds of every case, the threads used, and the ratios busy / idle-1cpu and
quota / idle-1cpu, each with sized threads (the goal: at most 1.3) and with default threads.
Workloads: `batches` (PGD-AT training batches of the quick preset on --dataset; the time
leaves out start-up and one warm-up batch), `run` (`python -m clead_edu run`, PGD-AT only,
one small epoch; the time of the whole command), or a notebook path (papermill, quick
preset, a fresh checkpoint folder; the time of the whole notebook).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lessons import papermill_command   # benchmarks/: the scripts run from their folder

ROOT = Path(__file__).resolve().parents[1]
CASES = ("idle", "idle-1cpu", "busy", "quota")
THREAD_VARS = ("CLEAD_EDU_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# ----------------------------------------------------------------------------- the workloads (child side)

def child_batches(args) -> None:
    """Run args.batches PGD-AT training batches; print one JSON line {seconds, threads}."""
    import torch
    from itertools import islice
    from clead_edu import config as C, data as D
    from clead_edu.models import model_for
    from clead_edu.threads import set_threads
    from clead_edu.train import make_optimizer, run_epoch
    if args.threads == "sized":
        set_threads()
    data = D.get_data(args.dataset, ROOT / "data")
    run_cfg = D.from_preset("quick", args.dataset)
    cfg = run_cfg.for_objective("pgd_at")
    torch.manual_seed(0)
    model = model_for(data, run_cfg.arch)
    loader = D.loader(data.train, cfg.batch_size, train=True, seed=0)
    batches = list(islice(iter(loader), args.batches + 1))
    opt, sched = make_optimizer(model.parameters(), cfg, len(batches))
    run_epoch(batches[:1], model, cfg, opt, sched, progress=False)          # warm-up
    t = time.perf_counter()
    run_epoch(batches[1:], model, cfg, opt, sched, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - t, "threads": torch.get_num_threads(),
                      "batches": len(batches) - 1, "arch": run_cfg.arch}))


def workload_command(args, out: Path) -> list[str]:
    """The command line of one case's process."""
    if args.workload == "batches":
        return [sys.executable, __file__, "--child", "--threads", "{threads}", "--batches",
                str(args.batches), "--dataset", args.dataset]
    if args.workload == "run":
        return [sys.executable, "-m", "clead_edu", "run", "--dataset", args.dataset, "--objectives", "pgd_at",
                "--epochs", "1", "--train-n", str(64 * args.batches), "--eval-n", "100", "--aa-n", "0",
                "--no-figures", "--no-progress", "--overwrite", "--out", str(out / "run")]
    return papermill_command(Path(args.workload).resolve(), out, out / "nb_runs")


# ----------------------------------------------------------------------------- the cases (parent side)

def child_env(threads: str, default_threads: int) -> dict:
    """The environment of a case: no thread variables of the caller's shell; "default" asks
    for torch's default count through CLEAD_EDU_THREADS (the main job and the notebooks size
    their threads themselves)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env["CLEAD_EDU_THREADS"] = str(default_threads) if threads == "default" else "auto"
    return env


def run_case(args, threads: str, *, preexec=None, default_threads: int) -> dict:
    """Run the workload once: {'seconds', 'threads'} ('seconds' None after --timeout)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [c.replace("{threads}", threads) for c in workload_command(args, Path(tmp))]
        t = time.perf_counter()
        try:
            p = subprocess.run(cmd, env=child_env(threads, default_threads), preexec_fn=preexec,
                               capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"seconds": None, "threads": "?"}
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        executed = list(Path(tmp).glob("*.ipynb"))          # a notebook's notes are in its outputs
        note = threads_note(p.stdout + "".join(f.read_text() for f in executed))
    if args.workload == "batches":
        return json.loads(p.stdout.strip().splitlines()[-1]) | {"why": note[1]}
    return {"seconds": wall, "threads": note[0], "why": note[1]}


def threads_note(stdout: str) -> tuple[str, str]:
    """(count, reason) from the package's '[clead_edu] using N CPU threads: limited by ...; ...'
    note; ('?', 'torch default') without one."""
    for line in stdout.replace("\\n", "\n").splitlines():       # (a notebook's JSON escapes newlines)
        if "[clead_edu] using" in line and "CPU thread" in line:
            return line.split("using ")[1].split()[0], line.split("limited by ")[1].split(";")[0]
    return "?", "torch default"


@contextlib.contextmanager
def spinner():
    """A Python process spinning on one CPU for the duration of the block."""
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(1.0)
    try:
        yield
    finally:
        p.kill()
        p.wait()


def cgroup_dir() -> Path | None:
    """A cgroup folder in which this script may create a child group with a CPU quota, or None."""
    v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")
    with contextlib.suppress(OSError):
        if "cpu" in (v2 / "cgroup.subtree_control").read_text().split():
            return v2
    return v1 if (v1 / "cpu.cfs_quota_us").exists() else None


@contextlib.contextmanager
def quota_cgroup(cpus: float = 1.0):
    """Yields a preexec function that moves a new process into a cgroup with a quota of
    `cpus` CPUs, or a reason string when no cgroup can be made here."""
    parent = cgroup_dir()
    if parent is None:
        yield "no cgroup with the cpu controller is mounted"
        return
    group, period = parent / f"clead_edu_bench_{os.getpid()}", 100_000
    try:
        group.mkdir()
        if (group / "cpu.max").exists():
            (group / "cpu.max").write_text(f"{int(cpus * period)} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))
    except OSError as err:
        yield f"cannot create a cgroup in {parent} ({err.strerror}; it needs root)"
        return
    try:
        yield lambda: (group / "cgroup.procs").write_text("0")
    finally:
        group.rmdir()


def measure(args) -> dict:
    """{case: {'default': result, 'sized': result}} for the cases asked for (skips noted)."""
    import torch
    default_threads = torch.get_num_threads()         # torch's default in this fresh process
    cpu0 = min(os.sched_getaffinity(0))
    pin = lambda: os.sched_setaffinity(0, {cpu0})      # noqa: E731
    results = {}
    for case in args.cases:
        for threads in ("default", "sized"):
            if case == "busy":
                with spinner():
                    r = run_case(args, threads, default_threads=default_threads)
            elif case == "quota":
                with quota_cgroup(1.0) as pre:
                    r = {"skipped": pre} if isinstance(pre, str) else run_case(args, threads, preexec=pre,
                                                                              default_threads=default_threads)
            else:
                r = run_case(args, threads, preexec=pin if case == "idle-1cpu" else None,
                             default_threads=default_threads)
            results.setdefault(case, {})[threads] = r
            print(f"  {case:10s} {threads:8s} {show(r)}", flush=True)
    return results


def show(r: dict) -> str:
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    seconds = f"{r['seconds']:8.1f} s" if r["seconds"] is not None else "  > timeout"
    return f"{seconds}, {r['threads']} threads ({r.get('why', '?')})"


def ratios(results: dict) -> list[str]:
    """'busy / idle-1cpu' and 'quota / idle-1cpu' lines, sized and default threads."""
    base = results.get("idle-1cpu", {}).get("sized", {}).get("seconds")
    lines = []
    for case in ("busy", "quota"):
        for threads in ("sized", "default"):
            r = results.get(case, {}).get(threads, {})
            if base and "seconds" in r:
                value = f"{r['seconds'] / base:.2f}x" if r["seconds"] is not None else "> timeout"
                lines.append(f"  {case} / idle-1cpu, {threads} threads: {value}"
                             + ("  (goal <= 1.3x)" if threads == "sized" else ""))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="batches", help="batches | run | a notebook path")
    ap.add_argument("--dataset", default="digits", help="digits | cifar10-sample (batches and run)")
    ap.add_argument("--batches", type=int, default=20, help="training batches of 64 images (batches, run)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a case is stopped")
    ap.add_argument("--out", help="also write the results here as JSON")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", default="sized", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_batches(args)
        return 0
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if bad := [c for c in args.cases if c not in CASES]:
        ap.error(f"unknown case(s) {bad}; choose from {','.join(CASES)}")
    print(f"workload {args.workload} ({args.dataset}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    results = measure(args)
    print("\n".join(ratios(results)))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.out:
        Path(args.out).write_text(json.dumps({"workload": args.workload, "dataset": args.dataset,
                                              "batches": args.batches, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
