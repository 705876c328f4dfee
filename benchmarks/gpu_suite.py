"""The GPU measurement suite of issue 10: one command that measures every GPU path of clead_edu.

    python benchmarks/gpu_suite.py --stage all --out /tmp/gpu_suite --bundle $OUT        # on the GPU
    python benchmarks/gpu_suite.py --dry-run --stage all --out /tmp/suite_dry           # CPU, 1-2 minutes

Stages (`--stage throughput|notebooks|study|all`, or a comma list):

  throughput  PreAct ResNet-18, CIFAR-shaped synthetic data, batch 128 and 512, with and without
              --compile (fast path only): images/s and projected seconds per 50,000-image epoch for
              standard, PGD-10 AT, C-LEAD training and PGD-20 evaluation, fast path against the
              plain baseline (benchmarks/throughput.py does each measurement), AutoAttack (standard)
              time on 1,000 images of an untrained model (a lower bound; the study stage times it
              on a trained model).
  notebooks   the 7 notebooks with papermill, preset full, dataset folder:<--data>, epochs cut to
              fit the budget; wall time and peak memory of each (below); executed notebooks kept.
  study       `python -m clead_edu study` on folder:<--data>, preset full (PreAct ResNet-18),
              objectives standard, pgd_at, trades, clead (+ clead_released when
              clead_edu.losses.OBJECTIVES has it at run time), standard AutoAttack on all test
              images (517 in cifar10-mini), seeds 0,1,2 with epochs cut to fit, and seed 0 again
              with --fast off (AutoAttack skipped there) to compare fast against plain.

Every stage first prints its plan (sizes, estimated seconds). `--budget-s` is each stage's time
(one number for all, or `throughput=90,notebooks=220,study=180`, the defaults): the sizes (timed
batches, epochs) are chosen to fit it, from the throughput stage's measured images/s when that
stage ran earlier into the same --out (or into the JSON given with --continue-from), else from
the planning guesses in GUESS below (guesses, never reported as measurements); a step whose
estimate no longer fits what is left is skipped and recorded as skipped. `--dry-run` runs the
same code on the CPU at tiny sizes (small CNN, batches of 8/16, torch.compile with the 'eager'
backend, a synthetic 32x32 ImageFolder of 10 colour-coded classes unless --data is given,
notebook 01 only in the quick preset, one epoch, one seed, AutoAttack 'quick');
tests/test_gpu_suite.py runs it.

Outputs, all under --out: <gpu>.json (e.g. h200.json; cpu.json on a CPU), rewritten after every
measurement, so a failing or killed stage loses nothing measured before (the throughput stage
writes only there); notebooks/ (executed .ipynb, parameters, memory records), study/ (the study folders). With
--bundle DIR, each finished stage (ok or failed) also leaves DIR/<stage>.tar.gz (checkpoints left
out) and a copy of the JSON: DIR is the device tool's $OUT, which brings back at most 8 files.

Peak memory of a notebook, two ways: nvidia-smi polled every 0.5 s while it runs (the device's
memory in use minus what was in use before it started: the CUDA context, the caching allocator's
reserve and anything else on the GPU), and an IPython start-up file, put in a private IPYTHONDIR
for the kernel, that registers a post_run_cell hook writing torch.cuda.max_memory_allocated() and
max_memory_reserved() (and the kernel's peak RSS) to notebooks/<name>.memory.json after every cell.
The notebooks themselves are not changed.

On the GPU machine (docs/benchmarks.md, "Running the GPU suite", has every step): torch and
torchvision are there; papermill, ipykernel, umap-learn and pyautoattack are not, so
benchmarks/gpu_wheels.sh downloads them here into local/wheels (16 MB), and the data is copied to
local/cifar10-mini (13 MB); both travel with `carry: ["local"]`. A session holding a GPU has 15
minutes of device time in all (the machine's start, a minute or more, included) and calls of
under 9 minutes, so the suite runs in ONE call of the device tool:

  run(carry=["local"], timeout_s=540, command=
      "python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site local/wheels/*.whl
       && export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 || exit; nvidia-smi > $OUT/nvidia-smi.txt;
       timeout 510 python3 benchmarks/gpu_suite.py --stage all --budget-s throughput=90,notebooks=220,study=180
       --out /tmp/gpu_suite --bundle $OUT 2>&1 | tee $OUT/suite.log")
  give_back()

(the command on one line). `timeout 510` stops the suite before the tool would, so tee and the
bundles of the stages already done still come back; $OUT then holds h200.json, notebooks.tar.gz,
study.tar.gz, suite.log and nvidia-smi.txt (5 of the 8 files allowed).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import throughput as TP  # noqa: E402  (benchmarks/throughput.py: one measurement per call)

STAGES = ("throughput", "notebooks", "study")
BUDGET_S = {"throughput": 90, "notebooks": 220, "study": 180}
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WORKLOADS = ("standard", "pgd_at", "clead", "pgd20_eval")
EPOCH_IMAGES = 50_000

# Planning guesses for a GPU of the H100/H200 class, used only to size a stage before anything
# is measured (the throughput stage's images/s replace the training rates when it ran first).
# None of these is a measurement, and none is written to the results as one.
GUESS = {
    "img_s": {"standard": 15000, "fgsm_at": 8000, "pgd_at": 3000, "trades": 2700, "clead": 2500,
              "clead_released": 2500},      # fast path, batch 128, PreAct ResNet-18, 32x32
    "plain_factor": 2.5,                    # plain path is this many times slower
    "eval_s_per_model": 30,                 # study: PGD-20, PGD-50 x3, FGSM, AutoAttack on 517 images
    "process_s": 15,                        # one python/kernel start with torch and the data
    "notebook_fixed_s": {"01": 10, "02": 15, "03": 30, "04": 15, "05": 70, "06": 110, "07": 30},
    "compile_s": 60,                        # torch.compile of one model (train and eval graphs)
}
# What each notebook trains in the full preset (the shared checkpoint folder lets later notebooks
# reuse earlier models): used with the rates above to choose the notebooks' epochs.
NOTEBOOK_TRAINS = {"01": ["standard"], "02": [], "03": ["pgd_at", "trades", "fgsm_at", "pgd_at"],
                   "04": [], "05": ["clead"] * 7, "06": ["standard"], "07": []}


# ----------------------------------------------------------------------------- results file

class Results:
    """The suite's JSON record (<out>/<gpu>.json), rewritten atomically after every change, so
    that whatever was measured before a failure or a kill survives."""

    def __init__(self, path: Path, continue_from: str | None = None):
        """Starts from the file at `path` if there is one, else from `continue_from` (the JSON
        an earlier call of the suite brought back), else empty."""
        self.path = path
        start = path if path.exists() else Path(continue_from) if continue_from else None
        self.data = json.loads(start.read_text()) if start else {}

    def set(self, keys: tuple, value) -> None:
        """data[k1][k2]...[kn] = value, then write the file."""
        d = self.data
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
        self.save()

    def get(self, keys: tuple, default=None):
        d = self.data
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return default
            d = d[k]
        return d

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


def device_info(device: torch.device) -> dict:
    """device (torch's GPU name, or 'cpu'), torch, CUDA, cuDNN and driver versions, GPU memory."""
    info = {"device": "cpu", "torch": torch.__version__, "python": sys.version.split()[0]}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(device=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    multiprocessors=p.multi_processor_count)
        smi = nvidia_smi("driver_version")
        if smi:
            info["driver"] = smi[0]
    return info


def nvidia_smi(field: str) -> list[str] | None:
    """One --query-gpu field for every GPU, or None without nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] or None


def json_name(device_name: str) -> str:
    """'NVIDIA H200' -> 'h200.json', 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3.json', 'cpu' -> 'cpu.json'."""
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower().replace("nvidia", "")).strip("-")
    return f"{slug or 'gpu'}.json"


class Stage:
    """One stage's clock and its records under results['stages'][name]."""

    def __init__(self, name: str, budget_s: float, res: Results):
        self.name, self.budget_s, self.res, self.t0 = name, budget_s, res, time.time()

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def fits(self, estimate_s: float) -> bool:
        return estimate_s <= self.left()

    def note(self, key: str, value) -> None:
        self.res.set(("stages", self.name, key), value)

    def skip(self, what: str, estimate_s: float) -> None:
        print(f"[gpu_suite] {self.name}: skipping {what} (estimated {estimate_s:.0f} s, {self.left():.0f} s left)")
        skipped = self.res.get(("stages", self.name, "skipped"), []) + [what]
        self.note("skipped", skipped)


def run_group(cmd: list[str], env: dict, timeout_s: float, merge: bool = False) -> tuple[int | None, str, str]:
    """Run cmd in its own process group; after timeout_s, kill the whole group (papermill's kernel
    too, so nothing goes on using the GPU). Returns (exit code, or None if killed; stdout; stderr)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        return proc.returncode, out or "", err or ""
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        return None, out or "", err or ""


# ----------------------------------------------------------------------------- stage: throughput

def throughput_sizes(dry: bool, budget_s: float) -> dict:
    """Model, batch sizes, timed batches, AutoAttack images and compile backend for the budget."""
    if dry:
        return dict(arch="small_cnn", batch_sizes=[8, 16], batches=1, aa_n=4, workers=0, backend="eager")
    batches = int(min(20, max(3, 20 * budget_s / 150)))    # 20 timed batches (+20 warm-up) at >= 150 s
    return dict(arch="preact_resnet18", batch_sizes=[128, 512], batches=batches, aa_n=1000, workers=8,
                backend="inductor")


def throughput_plan(sizes: dict) -> list[tuple]:
    """The measurements, most important first: (batch, compile, workload, path)."""
    first = [(b, False, w, p) for b in sizes["batch_sizes"] for w in WORKLOADS for p in ("fast", "baseline")]
    compiled = [(b, True, w, "fast") for b in sizes["batch_sizes"] for w in ("pgd_at", "clead", "standard")]
    return first + [("autoattack",)] + compiled


def measure(item: tuple, sizes: dict, x, y, device) -> float:
    """Images/s of one (batch, compile, workload, path) measurement (benchmarks/throughput.py)."""
    batch, compile_, workload, path = item
    args = SimpleNamespace(arch=sizes["arch"], batch_size=batch, batches=sizes["batches"], compile=compile_,
                           compile_backend=sizes["backend"], workers=sizes["workers"])
    fast = path == "fast"
    if workload == "pgd20_eval":
        return TP.eval_rate(fast, args, x, y, device)
    return TP.train_rate(workload, fast, args, x, y, device)


def stage_throughput(suite, st: Stage) -> None:
    sizes = throughput_sizes(suite.dry, st.budget_s)
    plan = throughput_plan(sizes)
    st.note("plan", {**sizes, "measurements": len(plan)})
    print(f"[gpu_suite] throughput plan: {sizes['arch']}, batches {sizes['batch_sizes']}, "
          f"{sizes['batches']} timed batches after as many warm-up ones, {len(plan)} measurements "
          f"(compiled ones last, skipped when the budget is spent), AutoAttack on {sizes['aa_n']} images")
    gen = torch.Generator().manual_seed(0)
    n = max(sizes["batches"] * max(sizes["batch_sizes"]), sizes["aa_n"])
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    res, seconds = suite.res, {}
    res.set(("throughput",), {"arch": sizes["arch"], "batches": sizes["batches"], "epoch_images": EPOCH_IMAGES,
                              "data": "synthetic uint8 3x32x32, 10 classes", "rows": []})
    for item in plan:
        est = estimate_measurement(item, seconds, suite.dry)
        name = "autoattack" if item[0] == "autoattack" else "b{}{} {} {}".format(*item[:1], "+compile" * item[1], *item[2:])
        if seconds and not st.fits(est):
            st.skip(name, est)
            continue
        t = time.time()
        if suite.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            if item[0] == "autoattack":
                s = TP.autoattack_seconds(SimpleNamespace(arch=sizes["arch"], aa_n=sizes["aa_n"]), x, y, suite.device)
                res.set(("throughput", "autoattack_standard_untrained"), {
                    "images": sizes["aa_n"], "seconds": s, "note": "untrained model, labels = its own "
                    "predictions: a lower bound of the time on a trained model"})
                print(f"[gpu_suite] AutoAttack (standard), {sizes['aa_n']} images, untrained model: {s:.1f} s")
            else:
                rate = measure(item, sizes, x, y, suite.device)
                row = {"batch": item[0], "compile": item[1], "workload": item[2], "path": item[3],
                       "images_per_s": rate, "epoch_s": EPOCH_IMAGES / rate, "wall_s": time.time() - t}
                if suite.device.type == "cuda":
                    row["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
                res.data["throughput"]["rows"].append(row)
                summarize_throughput(res, sizes)
                print(f"[gpu_suite] {name}: {rate:.0f} img/s, {EPOCH_IMAGES / rate:.1f} s per 50,000-image epoch")
        except Exception as err:          # a failing measurement is a finding; the others still run
            print(f"[gpu_suite] {name} FAILED: {err!r}")
            st.note("errors", st.res.get(("stages", st.name, "errors"), []) + [f"{name}: {err!r}"])
        seconds[item] = time.time() - t


def estimate_measurement(item: tuple, seconds: dict, dry: bool) -> float:
    """Seconds one measurement is expected to take, from those already taken."""
    if item[0] == "autoattack":
        return 5 if dry else 30
    batch, compile_, workload, path = item
    same = [s for (b, c, w, p), s in ((k, v) for k, v in seconds.items() if k[0] != "autoattack")
            if w == workload and b == batch and not c]
    base = max(same) if same else max(list(seconds.values()) or [1.0])
    return base + (GUESS["compile_s"] if compile_ and not dry else 0)


def summarize_throughput(res: Results, sizes: dict) -> None:
    """The top-level keys: epoch_s and ratio_fast_vs_baseline at the first (smallest) batch size,
    fast path without compile; also the same for every batch size and with compile."""
    rows = res.data["throughput"]["rows"]
    rate = {(r["batch"], r["compile"], r["workload"], r["path"]): r["images_per_s"] for r in rows}
    b0 = sizes["batch_sizes"][0]
    epoch_s = {w: EPOCH_IMAGES / rate[(b0, False, w, "fast")] for w in WORKLOADS if (b0, False, w, "fast") in rate}
    ratio = {w: rate[(b0, False, w, "fast")] / rate[(b0, False, w, "baseline")] for w in WORKLOADS
             if (b0, False, w, "fast") in rate and (b0, False, w, "baseline") in rate}
    table = {}
    for (b, c, w, p), r in rate.items():
        key = f"batch{b}" + ("_compile" if c else "")
        entry = table.setdefault(key, {}).setdefault(w, {})
        entry[p] = r
        base = rate.get((b, False, w, "baseline"))
        if p == "fast" and base:
            entry["ratio_fast_vs_baseline"] = r / base
    res.data.update(epoch_s=epoch_s, ratio_fast_vs_baseline=ratio, epoch_s_batch=b0)
    res.data["throughput"]["images_per_s"] = table
    res.save()


def measured_rates(res: Results) -> dict:
    """Training images/s per objective (fast path, first batch size, no compile) from an earlier
    throughput stage in this --out, with TRADES, FGSM-AT and clead_released derived from them."""
    rows = res.get(("throughput", "rows"), [])
    b0 = min((r["batch"] for r in rows), default=None)
    rate = {r["workload"]: r["images_per_s"] for r in rows if r["batch"] == b0 and not r["compile"]
            and r["path"] == "fast"}
    base = {r["workload"]: r["images_per_s"] for r in rows if r["batch"] == b0 and not r["compile"]
            and r["path"] == "baseline"}
    out = {}
    if "pgd_at" in rate:
        out.update(pgd_at=rate["pgd_at"], trades=0.9 * rate["pgd_at"])
    if "standard" in rate:
        out.update(standard=rate["standard"], fgsm_at=rate["standard"] / 2)
    if "clead" in rate:
        out.update(clead=rate["clead"], clead_released=rate["clead"])
    if "pgd_at" in rate and "pgd_at" in base:
        out["plain_factor"] = rate["pgd_at"] / base["pgd_at"]
    return out


# ----------------------------------------------------------------------------- stage: notebooks

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
    per_epoch = sum(5085 / rates.get(o, GUESS["img_s"][o]) for n in names for o in NOTEBOOK_TRAINS[n[:2]])
    fixed = sum(GUESS["notebook_fixed_s"][n[:2]] for n in names)
    epochs = int(max(1, min(30, (budget_s - fixed) // max(per_epoch, 1e-9))))
    return epochs, per_epoch, fixed


def check_ready(suite, modules: list[str]) -> None:
    """Raise at once, before any time is spent, if the data or a module the stage needs is missing."""
    import importlib.util
    if not (suite.data / "train").is_dir() or not (suite.data / "test").is_dir():
        raise FileNotFoundError(f"{suite.data} has no train/ and test/: copy the data there "
                                f"(cp -r ../shared/data/cifar10-mini local/) and carry local")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"missing {', '.join(missing)}: run benchmarks/gpu_wheels.sh, carry local, "
                                  f"and pip-install local/wheels/*.whl on the GPU machine (docs/benchmarks.md)")


def stage_notebooks(suite, st: Stage) -> None:
    check_ready(suite, ["papermill", "ipykernel", "umap", "pyautoattack"])
    folder = suite.out / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in NOTEBOOKS if p.stem[:2] in suite.notebooks]
    names = [p.stem for p in chosen]
    if suite.dry:
        preset, epochs, est = "quick", suite.epochs or 1, 20.0 * len(names)
    else:
        preset = "full"
        epochs, per_epoch, fixed = notebook_epochs(names, st.budget_s, {**GUESS["img_s"], **measured_rates(suite.res)})
        epochs = suite.epochs or epochs
        est = fixed + epochs * per_epoch
    params = {"preset": preset, "dataset": f"folder:{suite.data}", "epochs": epochs, "seed": 0,
              "run_dir": str(folder / "runs")}
    st.note("plan", {"notebooks": names, "parameters": params, "estimated_s": est})
    print(f"[gpu_suite] notebooks plan: {', '.join(names)} with {params}; estimated {est:.0f} s "
          f"of {st.budget_s:.0f} s (a notebook that no longer fits is skipped)")
    ipdir = folder / "ipython"
    (ipdir / "profile_default" / "startup").mkdir(parents=True, exist_ok=True)
    (ipdir / "profile_default" / "startup" / "00-clead-suite-memory.py").write_text(MEMORY_HOOK)
    (folder / "parameters.json").write_text(json.dumps(params, indent=1))
    for nb in chosen:
        est_nb = (20 if suite.dry else GUESS["notebook_fixed_s"][nb.stem[:2]]) / 2
        if not st.fits(est_nb):
            st.skip(nb.stem, est_nb)
            suite.res.set(("notebooks", nb.stem), {"status": "skipped (budget)"})
            continue
        memfile = folder / f"{nb.stem}.memory.json"
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}     # the kernel's inline figures
        env.update(PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   IPYTHONDIR=str(ipdir), CLEAD_SUITE_MEMFILE=str(memfile))
        cmd = [sys.executable, "-m", "papermill", str(nb), str(folder / nb.name), "--cwd", str(nb.parent),
               "-f", str(folder / "parameters.json"), "-k", "python3", "--no-progress-bar"]
        t = time.time()
        with GpuMemoryPoller() as poll:
            code, _, err = run_group(cmd, env, max(5, st.left()))
            status = {0: "ok", None: "killed: stage budget spent"}.get(code, f"failed (exit {code})")
            tail = err[-3000:]
        rec = {"status": status, "wall_s": time.time() - t, **poll.record(),
               **(json.loads(memfile.read_text()) if memfile.exists() else {"memory_hook": "no record"}),
               "executed": str((folder / nb.name).relative_to(suite.out))}
        if status != "ok":
            rec["stderr_tail"] = tail
            (folder / f"{nb.stem}.stderr.txt").write_text(tail)
        suite.res.set(("notebooks", nb.stem), rec)
        print(f"[gpu_suite] {nb.stem}: {status}, {rec['wall_s']:.1f} s, GPU peak (nvidia-smi) "
              f"{rec['nvidia_smi_peak_mib']} MiB, torch peak allocated {rec.get('torch_peak_allocated_mib')} MiB")
        if status.startswith("killed"):
            st.note("errors", st.res.get(("stages", st.name, "errors"), []) + [f"{nb.stem}: {status}"])
    failed = [n for n in names if suite.res.get(("notebooks", n, "status"), "").startswith("failed")]
    if failed:
        raise RuntimeError(f"notebooks failed: {', '.join(failed)} (see notebooks/*.stderr.txt)")


# ----------------------------------------------------------------------------- stage: study

def study_objectives() -> list[str]:
    """standard, pgd_at, trades, clead, and clead_released if registered when the suite runs."""
    from clead_edu.losses import OBJECTIVES
    return ["standard", "pgd_at", "trades", "clead"] + (["clead_released"] if "clead_released" in OBJECTIVES else [])


def study_epochs(objectives, seeds: int, budget_s: float, rates: dict, train_n: int = 5085) -> tuple[int, dict]:
    """Epochs (1..30) for `seeds` seeds on the fast path plus seed 0 on the plain path, so that
    the estimate fits budget_s. Returns (epochs, the estimate's parts in seconds)."""
    epoch = sum(train_n / rates.get(o, GUESS["img_s"][o]) for o in objectives)
    plain = rates.get("plain_factor", GUESS["plain_factor"])
    fixed_fast = GUESS["process_s"] + len(objectives) * GUESS["eval_s_per_model"]
    fixed_plain = GUESS["process_s"] + len(objectives) * GUESS["eval_s_per_model"] / 3   # no AutoAttack
    epochs = int(max(1, min(30, (budget_s - seeds * fixed_fast - fixed_plain) // (epoch * (seeds + plain)))))
    return epochs, {"train_epoch_fast_s": epoch, "plain_factor": plain, "fixed_fast_s": fixed_fast,
                    "fixed_plain_s": fixed_plain,
                    "total_s": seeds * (fixed_fast + epochs * epoch) + fixed_plain + epochs * epoch * plain}


def stage_study(suite, st: Stage) -> None:
    check_ready(suite, ["pyautoattack"])
    folder = suite.out / "study"
    folder.mkdir(parents=True, exist_ok=True)
    objectives = study_objectives()
    seeds = suite.seeds
    if suite.dry:
        epochs = suite.epochs or 1
        est = {"total_s": 10.0 * (len(seeds) + 1)}
        sizes = ["--arch", "small_cnn", "--train-n", "40", "--eval-n", "8", "--aa-n", "8", "--batch-size", "16",
                 "--train-steps", "2", "--extra-pgd-steps", "3", "--extra-restarts", "2"]
    else:
        epochs, est = study_epochs(objectives, len(seeds), st.budget_s, {**GUESS["img_s"], **measured_rates(suite.res)})
        epochs = suite.epochs or epochs
        sizes = []
    plain_factor = measured_rates(suite.res).get("plain_factor", GUESS["plain_factor"])
    base = [sys.executable, "-m", "clead_edu", "study", "--dataset", f"folder:{suite.data}", "--preset", "full",
            "--epochs", str(epochs), "--objectives", ",".join(objectives), "--no-figures", "--no-progress",
            "--device", suite.device_arg, *sizes]
    fast = base + ["--autoattack", aa_version(suite), "--fast", "on", "--out", str(folder / "fast")]
    plain = base + ["--autoattack", "none", "--fast", "off", "--out", str(folder / "plain")]
    steps = [(f"fast, seeds {','.join(map(str, seeds[:k]))}", fast + ["--seeds", ",".join(map(str, seeds[:k]))], 1)
             for k in range(1, min(2, len(seeds)) + 1)]
    steps.append((f"plain (--fast off), seed {seeds[0]}", plain + ["--seeds", str(seeds[0])], None))
    steps += [(f"fast, seeds {','.join(map(str, seeds[:k]))}", fast + ["--seeds", ",".join(map(str, seeds[:k]))], 1)
              for k in range(3, len(seeds) + 1)]
    st.note("plan", {"objectives": objectives, "epochs": epochs, "seeds": seeds, "estimate": est,
                     "commands": [" ".join(c) for _, c, _ in steps]})
    print(f"[gpu_suite] study plan: {','.join(objectives)}, {epochs} epochs, seeds {seeds} on the fast path "
          f"(standard AutoAttack on all test images) and seed {seeds[0]} with --fast off (no AutoAttack); "
          f"estimated {est['total_s']:.0f} s of {st.budget_s:.0f} s")
    seed_s = None
    for what, cmd, new_seeds in steps:
        want = seed_s * (plain_factor if new_seeds is None else 1) if seed_s else 0
        if seed_s and not st.fits(want):
            st.skip(what, want)
            continue
        print(f"[gpu_suite] study: {what}\n  {' '.join(cmd)}")
        t = time.time()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        log = folder / f"{re.sub(r'[^a-z0-9]+', '_', what.lower()).strip('_')}.log"
        code, output, _ = run_group(cmd, env, max(5, st.left()), merge=True)
        log.write_text(output)
        ok, killed = code == 0, code is None
        secs = time.time() - t
        suite.res.set(("study", "steps", what), {"ok": ok, "wall_s": secs, "command": " ".join(cmd),
                                                 "log": str(log.relative_to(suite.out)),
                                                 **({"killed": "stage budget spent"} if killed else {})})
        if killed:       # not a failure: the seed's training state is kept, and a later run resumes it
            st.note("errors", st.res.get(("stages", st.name, "errors"), []) + [f"{what}: killed, budget spent"])
            collect_study(suite.res, folder)
            return
        if not ok:
            raise RuntimeError(f"study step '{what}' failed or ran out of budget; see {log}:\n"
                               + log.read_text()[-2000:])
        if new_seeds and seed_s is None:
            seed_s = secs
        collect_study(suite.res, folder)
    if st.fits(60 if not suite.dry else 5):
        time_trained_autoattack(suite, folder / "fast" / f"seed{seeds[0]}" / "pgd_at" / "model.pt")


def aa_version(suite) -> str:
    """AutoAttack's version for the study: standard; 'quick' in a dry run, where the standard
    version's Square attack (5000 queries) alone takes tens of seconds for 4 images on a CPU."""
    return "quick" if suite.dry else "standard"


def collect_study(res: Results, folder: Path) -> None:
    """Per-seed accuracies and seconds, the summary over seeds, and fast-vs-plain accuracies."""
    out = {}
    for kind in ("fast", "plain"):
        for m in sorted((folder / kind).glob("seed*/metrics.json")):
            d = json.loads(m.read_text())
            out.setdefault(kind, {})[m.parent.name] = {
                "accuracy": {k: v["accuracy"] for k, v in d["models"].items()}, "seconds": d["seconds"],
                "device": d["device"], "fast": d["settings"]["train"]["fast"]}
        s = folder / kind / "summary.json"
        if s.exists():
            out.setdefault(kind, {})["summary"] = json.loads(s.read_text())
    both = sorted(set(out.get("fast", {})) & set(out.get("plain", {})) - {"summary"})
    for seed in both:          # accuracy on the fast path minus the plain path, same seed and settings
        f, p = out["fast"][seed]["accuracy"], out["plain"][seed]["accuracy"]
        out.setdefault("fast_minus_plain", {})[seed] = {
            m: {a: f[m][a] - p[m][a] for a in p[m] if a in f[m]} for m in p if m in f}
    res.set(("study", "results"), out)


def time_trained_autoattack(suite, model_path: Path) -> None:
    """Seconds of standard AutoAttack on all test images of the study's first PGD-AT model."""
    from clead_edu import data as D
    from clead_edu import evaluate as E
    from clead_edu.checkpoints import load_checkpoint
    if not model_path.exists():
        return
    model = load_checkpoint(model_path, device=suite.device)
    data = D.get_data(f"folder:{suite.data}")
    x, y = D.take(data.test, None, 0)
    x, y = x[: (2 if suite.dry else None)], y[: (2 if suite.dry else None)]
    TP.sync(suite.device)
    t = time.time()
    ok, _ = E.autoattack(model, x, y, eps=8 / 255, version=aa_version(suite), batch_size=500)
    TP.sync(suite.device)
    secs = time.time() - t
    suite.res.set(("throughput", "autoattack_standard_trained"), {
        "images": len(y), "seconds": secs, "version": aa_version(suite), "robust_accuracy": ok.float().mean().item(),
        "model": str(model_path.relative_to(suite.out))})
    print(f"[gpu_suite] AutoAttack (standard) on {len(y)} test images of the trained PGD-AT model: {secs:.1f} s")


# ----------------------------------------------------------------------------- data, bundle, main

def tiny_folder(root: Path, per_class: int = 8, test_per_class: int = 3) -> Path:
    """A 32x32 RGB ImageFolder with train/ and test/, 10 classes told apart by colour (each class
    its own mean colour plus noise), so a small model learns it in one epoch."""
    from PIL import Image
    import numpy as np
    if (root / "test").exists():
        return root
    rng = np.random.default_rng(0)
    colours = rng.integers(30, 226, (10, 3))
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c in range(10):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(colours[c] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype("uint8")
                Image.fromarray(img).save(d / f"{i}.png")
    return root


BUNDLE_MAX = 15 * 2**20     # the device tool brings back files of at most 16 MiB


def bundle(out: Path, stage: str, dest: Path, json_path: Path) -> None:
    """dest/<stage>.tar.gz of out/<stage>/ without checkpoints, and a copy of the JSON. Over
    15 MiB, the executed notebooks' images are left out (their text outputs stay)."""
    dest.mkdir(parents=True, exist_ok=True)
    src, tar_path = out / stage, dest / f"{stage}.tar.gz"
    for keep_images in (True, False):
        if not src.exists():           # the throughput stage writes only the JSON
            break
        with tarfile.open(tar_path, "w:gz") as tar:
            for f in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.endswith((".pt", ".pth"))):
                name = str(f.relative_to(out))
                if f.suffix == ".ipynb" and not keep_images:
                    data = without_images(f)
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(data), int(f.stat().st_mtime)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.add(f, arcname=name)
        if tar_path.stat().st_size <= BUNDLE_MAX:
            break
        print(f"[gpu_suite] {tar_path} is over 15 MiB; writing it again without the notebooks' images")
    if json_path.exists():
        shutil.copy(json_path, dest / json_path.name)


def without_images(notebook: Path) -> bytes:
    """The notebook's JSON with every image output replaced by a note."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            for key in [k for k in o.get("data", {}) if k.startswith("image/")]:
                o["data"][key.replace("image/", "text/x-removed-")] = "image left out to fit 15 MiB"
                del o["data"][key]
    return json.dumps(nb).encode()


def parse_budget(text: str | None) -> dict:
    """'300' -> every stage 300 s; 'throughput=100,study=240' -> those, defaults for the rest."""
    budget = dict(BUDGET_S)
    if text:
        if "=" not in text:
            return {s: float(text) for s in STAGES}
        for part in text.split(","):
            name, _, value = part.partition("=")
            if name.strip() not in STAGES:
                raise SystemExit(f"--budget-s: unknown stage {name!r}")
            budget[name.strip()] = float(value)
    return budget


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="all", help="throughput | notebooks | study | all, or a comma list")
    ap.add_argument("--out", default="artifacts/gpu_suite", help="folder for every output")
    ap.add_argument("--budget-s", help=f"seconds per stage: one number, or name=seconds,... (default {BUDGET_S})")
    ap.add_argument("--dry-run", action="store_true", help="the same stages on the CPU at tiny sizes (seconds each)")
    ap.add_argument("--data", help="ImageFolder tree with train/ and test/ (default local/cifar10-mini; "
                                   "in a dry run, a synthetic tiny one made under --out)")
    ap.add_argument("--device", default="auto", help="auto | cuda | cpu (a dry run uses cpu)")
    ap.add_argument("--seeds", help="study seeds (default 0,1,2; dry run 0)")
    ap.add_argument("--notebooks", help="notebook numbers, e.g. 01,04 (default all; dry run 01)")
    ap.add_argument("--epochs", type=int, help="fix the notebooks' and the study's epochs instead of fitting the budget")
    ap.add_argument("--continue-from", help="an earlier call's JSON: its results are kept, and its measured "
                                           "images/s size the notebooks and study stages")
    ap.add_argument("--bundle", help="after each stage, write <stage>.tar.gz and the JSON here (the device tool's $OUT)")
    args = ap.parse_args(argv)
    stages = list(STAGES) if args.stage == "all" else [s.strip() for s in args.stage.split(",") if s.strip()]
    if not stages or any(s not in STAGES for s in stages):
        ap.error(f"--stage must be one of {STAGES} or all, got {args.stage!r}")
    from clead_edu.device import pick_device
    device_arg = "cpu" if args.dry_run else args.device
    device = pick_device(device_arg)
    if args.dry_run:     # tiny tensors: one thread each, here and in the notebooks' and study's processes
        torch.set_num_threads(1)
        os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve() if args.data else (tiny_folder(out / "tiny-data") if args.dry_run
                                                         else (ROOT / "local" / "cifar10-mini"))
    info = device_info(device)
    res = Results(out / json_name(info["device"]), args.continue_from)
    res.data.update(info)
    res.set(("dry_run",), args.dry_run)
    command = "python benchmarks/gpu_suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res.set(("commands",), res.get(("commands",), []) + [command])
    suite = SimpleNamespace(
        out=out, dry=args.dry_run, device=device, device_arg=device_arg, data=data, res=res, epochs=args.epochs,
        seeds=[int(s) for s in (args.seeds or ("0" if args.dry_run else "0,1,2")).split(",")],
        notebooks=[n.strip() for n in (args.notebooks or ("01" if args.dry_run else "01,02,03,04,05,06,07")).split(",")])
    budget = parse_budget(args.budget_s)
    print(f"[gpu_suite] {info['device']}, torch {info['torch']}, CUDA {info.get('cuda')}, driver {info.get('driver')}; "
          f"data {data}; results {res.path}\n[gpu_suite] plan: " + ", ".join(f"{s} ({budget[s]:.0f} s)" for s in stages)
          + f", about {sum(budget[s] for s in stages) / 60:.1f} min in all; each stage prints its own plan first")
    runners = {"throughput": stage_throughput, "notebooks": stage_notebooks, "study": stage_study}
    failed = []
    for name in stages:
        st = Stage(name, budget[name], res)
        res.set(("stages", name), {"status": "running", "budget_s": budget[name]})   # a rerun starts afresh
        try:
            runners[name](suite, st)
            st.note("status", "ok" if not res.get(("stages", name, "errors")) else "partial")
        except Exception as err:
            failed.append(name)
            st.note("status", "failed")
            st.note("error", "".join(traceback.format_exception_only(type(err), err))[-4000:])
            traceback.print_exc()
        st.note("seconds", st.elapsed())
        print(f"[gpu_suite] stage {name}: {res.get(('stages', name, 'status'))} in {st.elapsed():.0f} s")
        if args.bundle:
            bundle(out, name, Path(args.bundle), res.path)
    print(f"[gpu_suite] results: {res.path}" + (f"; failed stages: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
