"""Running the seeds of a study side by side: processes on this machine, or jobs on a cluster.

    python -m clead_edu study --seeds 0,1,2,3,4 --jobs 5                  # 5 processes here
    python -m clead_edu study --seeds 0,1,2,3,4 --jobs 5 --launcher slurm --partition gpu --time 600

Each task is one call, e.g. one seed of a study (`study.seed_metrics`: the main job in
out/seed<k>, reused when finished and resumed from its last epoch when interrupted).
`run_all` keeps up to `jobs` tasks running at once, on one of three launchers:

- "processes": a pool of `jobs` processes on this machine (started fresh, not forked);
- "local": submitit's LocalExecutor, the code path of a cluster, on this machine;
- "slurm": submitit's SlurmExecutor, one SLURM job per task (partition, time, CPUs, GPUs).

On this machine each task gets max(1, CPUs // jobs) torch threads and, where there are
several GPUs, one of them in turn. Each task's output goes to log.txt in its folder;
submitit's own files (pickled task, its logs) go to <out>/submitit. `run_all` returns the
tasks' results in order and writes <out>/launch.json: where and how each task ran.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from .threads import ENV, allowed_cpus

LAUNCHERS = ("processes", "local", "slurm")


@dataclass
class Launch:
    """Where the tasks run. time: minutes a task may take (SLURM and local jobs are stopped
    after it); cpus_per_job/gpus_per_job: what each SLURM job asks for."""
    jobs: int = 1
    launcher: str = "processes"
    partition: str | None = None
    time: int = 600
    cpus_per_job: int = 4
    gpus_per_job: int = 0

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {LAUNCHERS}, got {self.launcher!r}")
        for name, low in (("jobs", 1), ("time", 1), ("cpus_per_job", 1), ("gpus_per_job", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.launcher == "slurm" and not self.partition:
            raise ValueError("the slurm launcher needs a partition (--partition)")

    @property
    def parallel(self) -> bool:
        """False for one task at a time in this process (the plain sequential study)."""
        return self.jobs > 1 or self.launcher != "processes"


def available_cpus() -> int:
    """The CPUs this process may run on (`threads.allowed_cpus`: its affinity where known)."""
    return len(allowed_cpus())


def worker_threads(jobs: int, available: int | None = None) -> int:
    """torch threads per task when `jobs` tasks share this machine: max(1, available // jobs)."""
    return max(1, (available or available_cpus()) // jobs)


def call(fn: Callable, args: tuple, kwargs: dict, threads: int | None, log: Path | None) -> dict:
    """What a worker runs: set the threads (torch's, and $CLEAD_EDU_THREADS, which `threads.set_threads`
    reads unless a thread count is passed), send the output to `log`, run fn(*args, **kwargs). Returns
    {'result', 'worker': {'host', 'pid', 'threads', 'seconds'}}."""
    threads = threads or available_cpus()
    torch.set_num_threads(threads)
    os.environ[ENV] = str(threads)
    t = time.time()
    with contextlib.ExitStack() as stack:
        if log:
            f = stack.enter_context(open(log, "a", buffering=1))     # line by line, to follow it
            stack.enter_context(contextlib.redirect_stdout(f))
            stack.enter_context(contextlib.redirect_stderr(f))
        result = fn(*args, **kwargs)
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "threads": torch.get_num_threads(),
              "seconds": time.time() - t}
    return {"result": result, "worker": worker}


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """`jobs` fresh (spawned, not forked) worker processes that end when this process ends, also
    when it is killed (SIGTERM from `kill`, a scheduler or a Jupyter server): without that, a
    worker would go on training until its task was done, unseen."""
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent)


def exit_with_parent(poll_s: float = 1.0) -> None:
    """In a worker: a daemon thread that ends the process once its parent is gone (the worker is
    then re-parented, so os.getppid() changes). Training resumes from its last finished epoch."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="exit_with_parent").start()


def executor(launch: Launch, folder: Path):
    """An executor with submit(fn, *args) -> a future with done() and result()."""
    if launch.launcher == "processes":
        return process_pool(launch.jobs)
    try:
        import submitit    # only these launchers need it (pyproject extra `cluster`)
    except ImportError:
        raise ValueError(f"--launcher {launch.launcher} needs submitit: pip install submitit") from None
    if launch.launcher == "local":
        ex = submitit.LocalExecutor(folder=folder / "submitit")
        ex.update_parameters(timeout_min=launch.time)
        return ex
    ex = submitit.SlurmExecutor(folder=folder / "submitit")
    ex.update_parameters(partition=launch.partition, time=launch.time, cpus_per_task=launch.cpus_per_job,
                         gpus_per_node=launch.gpus_per_job or None, job_name="clead_edu")
    return ex


def run_all(fn: Callable, tasks: list[tuple[str, tuple, dict, Path]], launch: Launch, out: Path) -> list:
    """fn(*args, **kwargs) for each task (name, args, kwargs, folder for its log), at most
    launch.jobs at once; returns the results in the order of `tasks` and writes out/launch.json."""
    ex, done = executor(launch, out), {}
    try:
        keep_running(ex, fn, tasks, launch, done)
    finally:
        if hasattr(ex, "shutdown"):
            ex.shutdown(cancel_futures=True)
    record = {"launch": asdict(launch), "tasks": {t[0]: done[i]["worker"] for i, t in enumerate(tasks)}}
    (out / "launch.json").write_text(json.dumps(record, indent=1))
    return [done[i]["result"] for i in range(len(tasks))]


def keep_running(ex, fn: Callable, tasks: list, launch: Launch, done: dict) -> None:
    """Submit fn's tasks to `ex`, keeping launch.jobs of them running (each in a slot, which
    picks its GPU where there are several), until all are done: done[i] = what `call` returned."""
    here = launch.launcher != "slurm"
    threads = worker_threads(launch.jobs) if here else launch.cpus_per_job
    gpus = torch.cuda.device_count() if here and torch.cuda.is_available() else 0
    todo, running = list(enumerate(tasks)), {}
    while todo or running:
        for slot in [s for s in range(launch.jobs) if s not in running][:len(todo)]:
            i, (name, args, kwargs, folder) = todo.pop(0)
            folder.mkdir(parents=True, exist_ok=True)
            if gpus > 1 and kwargs.get("device", "auto") in ("auto", "cuda"):
                kwargs = {**kwargs, "device": f"cuda:{slot % gpus}"}
            running[slot] = (i, name, ex.submit(call, fn, args, kwargs, threads, folder / "log.txt"))
            print(f"[clead_edu] {name}: started ({launch.launcher}, {threads} threads; log {folder / 'log.txt'})")
        for slot, (i, name, future) in list(running.items()):
            if future.done():
                done[i] = future.result()
                del running[slot]
                print(f"[clead_edu] {name}: finished in {done[i]['worker']['seconds']:.0f} s")
        time.sleep(0.2 if running else 0)
