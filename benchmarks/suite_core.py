"""What every stage of benchmarks/gpu_suite.py shares: the results file, a stage's clock and
budget, child processes, the GPU's description, and the planning guesses."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("throughput", "notebooks", "study")
BUDGET_S = {"throughput": 90, "notebooks": 220, "study": 180}     # seconds per stage by default
EPOCH_IMAGES = 50_000          # a CIFAR-10 training epoch, for the projected seconds per epoch
MINI_TRAIN = 5085              # training images in cifar10-mini

# Planning guesses for a GPU of the H100/H200 class, used only to size a stage before anything
# is measured (the throughput stage's images/s replace the training rates when it ran first).
# None of these is a measurement, and none is written to the results as one.
GUESS = {
    "img_s": {"standard": 15000, "fgsm_at": 8000, "pgd_at": 3000, "trades": 2700, "clead": 2500,
              "clead_released": 2500},      # fast path, batch 128, PreAct ResNet-18, 32x32
    "plain_factor": 2.5,                    # plain path is this many times slower
    "eval_s_per_model": 30,                 # study: PGD-20, PGD-50 x3, FGSM, AutoAttack on 517 images
    "process_s": 15,                        # one python/kernel start with torch and the data
    "notebook_fixed_s": {"01": 10, "02": 15, "03": 30, "04": 15, "05": 70, "06": 110, "07": 30,
                         "08": 300},        # 08: its study evaluates six models (a guess, not measured)
    "compile_s": 60,                        # torch.compile of one model (train and eval graphs)
}


class Results:
    """The suite's JSON record (<out>/<gpu>.json), rewritten atomically after every change, so
    that whatever was measured before a failure or a kill survives."""

    def __init__(self, path: Path, continue_from: str | None = None):
        """Starts from the file at `path` if there is one, else from `continue_from` (the JSON
        an earlier run of the suite wrote), else empty."""
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

    def error(self, message: str) -> None:
        """Record a problem that does not stop the stage (it ends 'partial')."""
        self.note("errors", self.res.get(("stages", self.name, "errors"), []) + [message])

    def skip(self, what: str, estimate_s: float) -> None:
        print(f"[gpu_suite] {self.name}: skipping {what} (estimated {estimate_s:.0f} s, {self.left():.0f} s left)")
        self.note("skipped", self.res.get(("stages", self.name, "skipped"), []) + [what])


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


def package_env(**extra) -> dict:
    """The environment of a child process that imports clead_edu from this checkout."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


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


def check_ready(suite, modules: list[str]) -> None:
    """Raise at once, before any time is spent, if the data or a module the stage needs is missing."""
    if not (suite.data / "train").is_dir() or not (suite.data / "test").is_dir():
        raise FileNotFoundError(f"{suite.data} has no train/ and test/: build it with "
                                f"`python tools/make_cifar10_mini.py {suite.data}` (data/README.md), "
                                f"or pass --data with an ImageFolder tree")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"missing {', '.join(missing)}: pip install -e '.[notebooks]', or, on a "
                                  f"machine without internet, the wheels of benchmarks/gpu_wheels.sh "
                                  f"(docs/benchmarks.md, 'Running the GPU suite')")
