"""The GPU suite's notebooks stage: the lesson notebooks through papermill on the real-image
folder, each with its wall time and its peak memory measured two ways (nvidia-smi polled from
outside, and an IPython start-up hook inside the kernel). The notebooks are not changed."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from suite_core import GUESS, MINI_TRAIN, ROOT, Stage, check_ready, nvidia_smi, package_env, run_group
from suite_throughput import measured_rates

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# What each notebook trains in the full preset (later notebooks reuse the checkpoints of earlier
# ones from the run folder they all use): with the rates, this chooses the notebooks' epochs.
# 08 runs its own three-seed study of PGD-AT and C-LEAD on a GPU; the suite runs 01-07 unless
# --notebooks names it.
NOTEBOOK_TRAINS = {"01": ["standard"], "02": [], "03": ["pgd_at", "trades", "fgsm_at", "pgd_at"],
                   "04": [], "05": ["clead"] * 7, "06": ["standard"], "07": [], "08": ["pgd_at", "clead"] * 3}

MEMORY_HOOK = '''\
# Written by benchmarks/gpu_suite.py: after every cell, the kernel's peak memory to $CLEAD_SUITE_MEMFILE.
import json as _json, os as _os, resource as _resource


def _clead_suite_memory(*_args, **_kwargs):
    rec = {"kernel_peak_rss_mib": _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        import torch as _torch
        if _torch.cuda.is_available() and _torch.cuda.is_initialized():
            rec["torch_peak_allocated_mib"] = _torch.cuda.max_memory_allocated() / 2**20
            rec["torch_peak_reserved_mib"] = _torch.cuda.max_memory_reserved() / 2**20
    except Exception as err:
        rec["error"] = repr(err)
    path = _os.environ.get("CLEAD_SUITE_MEMFILE")
    if path:
        with open(path + ".tmp", "w") as f:
            _json.dump(rec, f)
        _os.replace(path + ".tmp", path)


get_ipython().events.register("post_run_cell", _clead_suite_memory)
'''


class GpuMemoryPoller:
    """Peak of nvidia-smi's memory.used (MiB, first GPU) while running, minus the value at start."""

    def __init__(self, period_s: float = 0.5):
        self.period_s, self.peak, self.start, self._stop = period_s, None, None, threading.Event()

    def __enter__(self):
        first = nvidia_smi("memory.used")
        if first:
            self.start = self.peak = float(first[0])
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(self.period_s):
            now = nvidia_smi("memory.used")
            if now:
                self.peak = max(self.peak, float(now[0]))

    def __exit__(self, *exc):
        self._stop.set()
        return False

    def record(self) -> dict:
        if self.start is None:
            return {"nvidia_smi_peak_mib": None}
        return {"nvidia_smi_peak_mib": self.peak, "nvidia_smi_before_mib": self.start,
                "nvidia_smi_peak_above_before_mib": self.peak - self.start}


def notebook_epochs(names: list[str], budget_s: float, rates: dict) -> tuple[int, float, float]:
    """Epochs for the notebooks (1..30) so that the estimate fits budget_s; returns (epochs,
    estimated seconds per epoch over all the notebooks' training, estimated fixed seconds)."""
    per_epoch = sum(MINI_TRAIN / rates.get(o, GUESS["img_s"][o]) for n in names for o in NOTEBOOK_TRAINS[n[:2]])
    fixed = sum(GUESS["notebook_fixed_s"][n[:2]] for n in names)
    epochs = int(max(1, min(30, (budget_s - fixed) // max(per_epoch, 1e-9))))
    return epochs, per_epoch, fixed


def notebook_parameters(suite, st: Stage, names: list[str], folder: Path) -> tuple[dict, float]:
    """Papermill parameters (the quick preset in a dry run, else full with epochs fitted to the
    budget) and the stage's estimated seconds."""
    if suite.dry:
        preset, epochs, est = "quick", suite.epochs or 1, 20.0 * len(names)
    else:
        preset = "full"
        epochs, per_epoch, fixed = notebook_epochs(names, st.budget_s, {**GUESS["img_s"], **measured_rates(suite.res)})
        epochs = suite.epochs or epochs
        est = fixed + epochs * per_epoch
    return {"preset": preset, "dataset": f"folder:{suite.data}", "epochs": epochs, "seed": 0,
            "run_dir": str(folder / "runs")}, est


def write_kernel_setup(folder: Path, params: dict) -> Path:
    """The private IPYTHONDIR with the memory hook, and parameters.json; returns IPYTHONDIR."""
    ipdir = folder / "ipython"
    startup = ipdir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-clead-suite-memory.py").write_text(MEMORY_HOOK)
    (folder / "parameters.json").write_text(json.dumps(params, indent=1))
    return ipdir


def run_notebook(nb: Path, folder: Path, ipdir: Path, timeout_s: float) -> dict:
    """Execute one notebook with papermill; its status, wall time and memory records."""
    memfile = folder / f"{nb.stem}.memory.json"
    env = package_env(IPYTHONDIR=str(ipdir), CLEAD_SUITE_MEMFILE=str(memfile))
    env.pop("MPLBACKEND", None)                                           # the kernel's inline figures
    cmd = [sys.executable, "-m", "papermill", str(nb), str(folder / nb.name), "--cwd", str(nb.parent),
           "-f", str(folder / "parameters.json"), "-k", "python3", "--no-progress-bar"]
    t = time.time()
    with GpuMemoryPoller() as poll:
        code, _, err = run_group(cmd, env, timeout_s)
    status = {0: "ok", None: "killed: stage budget spent"}.get(code, f"failed (exit {code})")
    rec = {"status": status, "wall_s": time.time() - t, **poll.record(),
           **(json.loads(memfile.read_text()) if memfile.exists() else {"memory_hook": "no record"})}
    if status != "ok":
        rec["stderr_tail"] = err[-3000:]
        (folder / f"{nb.stem}.stderr.txt").write_text(err[-3000:])
    return rec


def stage_notebooks(suite, st: Stage) -> None:
    """Every chosen notebook that still fits the budget, one after another; raises at the end
    if one failed (one killed at the budget's end makes the stage 'partial')."""
    check_ready(suite, ["papermill", "ipykernel", "umap", "pyautoattack"])
    folder = suite.out / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in NOTEBOOKS if p.stem[:2] in suite.notebooks]
    names = [p.stem for p in chosen]
    params, est = notebook_parameters(suite, st, names, folder)
    st.note("plan", {"notebooks": names, "parameters": params, "estimated_s": est})
    print(f"[gpu_suite] notebooks plan: {', '.join(names)} with {params}; estimated {est:.0f} s "
          f"of {st.budget_s:.0f} s (a notebook that no longer fits is skipped)")
    ipdir = write_kernel_setup(folder, params)
    for nb in chosen:
        est_nb = (20 if suite.dry else GUESS["notebook_fixed_s"][nb.stem[:2]]) / 2
        if not st.fits(est_nb):
            st.skip(nb.stem, est_nb)
            suite.res.set(("notebooks", nb.stem), {"status": "skipped (budget)"})
            continue
        rec = {**run_notebook(nb, folder, ipdir, max(5, st.left())),
               "executed": str((folder / nb.name).relative_to(suite.out))}
        suite.res.set(("notebooks", nb.stem), rec)
        print(f"[gpu_suite] {nb.stem}: {rec['status']}, {rec['wall_s']:.1f} s, GPU peak (nvidia-smi) "
              f"{rec['nvidia_smi_peak_mib']} MiB, torch peak allocated {rec.get('torch_peak_allocated_mib')} MiB")
        if rec["status"].startswith("killed"):
            st.error(f"{nb.stem}: {rec['status']}")
    failed = [n for n in names if suite.res.get(("notebooks", n, "status"), "").startswith("failed")]
    if failed:
        raise RuntimeError(f"notebooks failed: {', '.join(failed)} (see notebooks/*.stderr.txt)")
