"""How many CPU threads to use: as many as this process may really use, at least 1.

    n, why = choose_threads()       # e.g. (1, 'the CPUs idle now (1.0 of 2)')
    set_threads()                   # choose, apply to torch and the BLAS/OpenMP pools, print a note

torch starts one thread per core of the host, but a JupyterHub container may get a CPU
quota of one or two cores, a job may be pinned to some cores (`taskset`), and a laptop
may be busy with another kernel. A small model with more threads than free cores runs
many times slower, because every parallel operation waits for its slowest thread
(`benchmarks/threads.py` measures it). So the number of threads is the smallest of
  - the user's setting: the argument, else CLEAD_EDU_THREADS, else OMP_NUM_THREADS
    (it replaces the estimate of free CPUs below, but not the hard limits);
  - the CPUs the process may run on (its affinity, `os.sched_getaffinity`);
  - the cgroup CPU quota of the process (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
    `cpu.cfs_period_us`), rounded down, at least 1: a container's `--cpus` limit;
  - without a user setting, the CPUs idle now: the idle share of each allowed CPU in
    /proc/stat over a quarter of a second, summed (a CPU counts when 80% idle). Measured
    once, at the start: load that comes later is not seen (set CLEAD_EDU_THREADS=1 then).
On systems without /proc or sched_getaffinity (macOS, Windows) only the setting and
`os.cpu_count()` apply.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

ENV = "CLEAD_EDU_THREADS"


def user_setting(value: int | str | None = None) -> int | None:
    """The thread count asked for: `value`, else $CLEAD_EDU_THREADS, else $OMP_NUM_THREADS;
    None for none or 'auto'. ValueError unless a whole number >= 1 or 'auto'."""
    source = "threads" if value is not None else ENV if os.environ.get(ENV) else "OMP_NUM_THREADS"
    if value is None:      # OMP_NUM_THREADS may list nested levels ("4,2"): the first is ours
        value = os.environ.get(ENV) or os.environ.get("OMP_NUM_THREADS", "").split(",")[0]
    if str(value).strip().lower() in ("", "auto"):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{source} must be a whole number of threads >= 1 or 'auto', got {value!r}")
    return n


def allowed_cpus() -> set[int]:
    """The CPU ids this process may run on (all of os.cpu_count() where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def parse_quota(text: str, period_text: str | None = None) -> float | None:
    """CPUs allowed by one cgroup quota file: v2 'max 100000' -> None, '50000 100000' -> 0.5;
    v1 (cfs_quota_us, cfs_period_us) '-1' -> None, ('150000', '100000') -> 1.5."""
    parts = text.split()
    if period_text is not None:
        parts = [parts[0], period_text.strip()]
    if not parts or parts[0] in ("max", "-1") or len(parts) < 2:
        return None
    quota, period = int(parts[0]), int(parts[1])
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> float | None:
    """CPUs allowed by the cgroup quota of this process: the smallest quota of its cgroup and
    every parent (v2 and v1 layouts under `root`); None when unlimited or not readable."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                                   # v2: 0::/path
            quotas += [read_quota(d / "cpu.max") for d in parents(Path(root), path)]
        elif "cpu" in controllers.split(","):                  # v1: 3:cpu,cpuacct:/path
            for mount in {controllers, "cpu"}:
                quotas += [read_quota(d / "cpu.cfs_quota_us", d / "cpu.cfs_period_us")
                           for d in parents(Path(root) / mount, path)]
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def parents(mount: Path, path: str) -> list[Path]:
    """mount/a/b, mount/a, mount for the cgroup path '/a/b'."""
    parts = [p for p in path.strip("/").split("/") if p]
    return [mount.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def read_quota(file: Path, period_file: Path | None = None) -> float | None:
    """parse_quota of a quota file (and its period file); None when a file is missing."""
    try:
        return parse_quota(file.read_text(), period_file.read_text() if period_file else None)
    except (OSError, ValueError, IndexError):
        return None


def cpu_times(text: str) -> dict[int, tuple[int, int]]:
    """{cpu id: (idle ticks, total ticks)} from the text of /proc/stat (idle includes iowait;
    total counts user..steal, not guest time, which user time already contains)."""
    times = {}
    for line in text.splitlines():
        name, *ticks = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            t = [int(v) for v in ticks[:8]]
            times[int(name[3:])] = (t[3] + t[4], sum(t))
    return times


def idle_cpus(before: str, after: str, cpus: set[int]) -> float | None:
    """Idle CPUs among `cpus` between two /proc/stat texts: the sum of each CPU's idle share."""
    a, b = cpu_times(before), cpu_times(after)
    shares = [(b[c][0] - a[c][0]) / (b[c][1] - a[c][1]) for c in cpus
              if c in a and c in b and b[c][1] > a[c][1]]
    return sum(shares) if shares else None


def free_cpus(cpus: set[int], proc_stat: str | Path = "/proc/stat", wait: float = 0.25) -> float | None:
    """Idle CPUs among `cpus` over the next `wait` seconds; None without /proc/stat."""
    try:
        before = Path(proc_stat).read_text()
        time.sleep(wait)
        return idle_cpus(before, Path(proc_stat).read_text(), cpus)
    except OSError:
        return None


def limits(threads=None, *, cpus: set[int] | None = None, cgroup_root="/sys/fs/cgroup",
           proc_cgroup="/proc/self/cgroup", proc_stat="/proc/stat") -> dict:
    """Every limit on the thread count: {'setting', 'affinity', 'cgroup quota', 'free CPUs'}
    (CPUs; None = no limit). The free CPUs are measured only without a setting."""
    cpus = allowed_cpus() if cpus is None else cpus
    setting = user_setting(threads)
    return {"setting": setting, "affinity": len(cpus),
            "cgroup quota": cgroup_quota(cgroup_root, proc_cgroup),
            "free CPUs": free_cpus(cpus, proc_stat) if setting is None else None}


WHY = {"setting": "your setting ({})", "affinity": "the CPUs this process may use ({})",
       "cgroup quota": "the CPU quota ({:.3g} CPU-seconds per second)", "free CPUs": "the CPUs idle now ({:.1f} of {})"}


def choose_threads(threads=None, found: dict | None = None) -> tuple[int, str]:
    """(number of threads, which limit decided it) from `limits(threads)` or `found`."""
    found = limits(threads) if found is None else found
    counts = {"setting": found["setting"], "affinity": found["affinity"]}
    if found["cgroup quota"] is not None:        # rounded down: 1.5 CPUs of quota -> 1 thread
        counts["cgroup quota"] = max(1, math.floor(found["cgroup quota"]))
    if found["free CPUs"] is not None:           # a CPU counts when 80% idle
        counts["free CPUs"] = max(1, int(found["free CPUs"] + 0.2))
    name = min((k for k, v in counts.items() if v is not None), key=counts.get)  # first of equals
    return counts[name], WHY[name].format(found[name], found["affinity"])


def set_threads(threads=None, verbose: bool = True) -> int:
    """Choose the thread count (`choose_threads`), apply it to torch and to the BLAS/OpenMP
    pools (threadpoolctl), print a note; returns it."""
    n, why = choose_threads(threads)
    torch.set_num_threads(n)
    threadpool_limits(limits=n)
    if verbose:
        print(f"[clead_edu] using {n} CPU thread{'s' * (n > 1)}: limited by {why}; "
              f"set {ENV}=N to choose")
    return n
