"""The GPU suite: one command that measures every GPU path of clead_edu and keeps every figure.

    python tools/make_cifar10_mini.py                  # once: the real images, data/cifar10-mini
    python benchmarks/gpu_suite.py --stage all --out artifacts/gpu_suite --bundle artifacts/gpu_bundle
    python benchmarks/gpu_suite.py --dry-run --stage all --out /tmp/suite_dry     # the same, tiny, on a CPU

Stages (`--stage throughput|notebooks|study|all`, or a comma list):

  throughput  PreAct ResNet-18, CIFAR-shaped synthetic data, batch 128 and 512, with and without
              --compile (fast path only): images/s and projected seconds per 50,000-image epoch for
              standard, PGD-10 AT, C-LEAD training and PGD-20 evaluation, fast path against the
              plain baseline (benchmarks/throughput.py does each measurement), AutoAttack (standard)
              time on 1,000 images of an untrained model (a lower bound; the study stage times it
              on a trained model).
  notebooks   notebooks 01-07 with papermill, preset full, dataset folder:<--data>, epochs cut to
              fit the budget; wall time and peak memory of each (below); executed notebooks kept.
  study       `python -m clead_edu study` on folder:<--data>, preset full (PreAct ResNet-18), the
              objectives the package compares (clead_edu.config.COMPARED: standard, pgd_at, trades,
              clead) and clead_released, standard AutoAttack on all test images (517 in
              cifar10-mini), seeds 0,1,2 with epochs cut to fit, and seed 0 again with --fast off
              (AutoAttack skipped there) to compare fast against plain.

Every stage first prints its plan (sizes, estimated seconds). `--budget-s` is each stage's time
(one number for all, or `throughput=90,notebooks=220,study=180`, the defaults: about 8 minutes in
all): the sizes (timed batches, epochs) are chosen to fit it, from the throughput stage's measured
images/s when that stage ran earlier into the same --out (or into the JSON given with
--continue-from), else from the planning guesses in suite_core.GUESS (guesses, never reported as
measurements); a step whose estimate no longer fits what is left is skipped and recorded as
skipped. `--dry-run` runs the same code on the CPU at tiny sizes (small CNN, batches of 2/4,
torch.compile with the 'eager' backend, a synthetic 32x32 ImageFolder of 10 colour-coded classes
unless --data is given, notebook 01 only in the quick preset, one epoch, one seed, AutoAttack
'quick'); tests/test_gpu_suite.py runs it.

Outputs, all under --out: <gpu>.json (e.g. h200.json; cpu.json on a CPU), rewritten after every
measurement, so a failing or killed stage loses nothing measured before (the throughput stage
writes only there); notebooks/ (executed .ipynb, parameters, memory records), study/ (the study
folders). With --bundle DIR, each finished stage (ok or failed) also leaves DIR/<stage>.tar.gz
(checkpoints left out; over 15 MiB, the notebooks' images too) and a copy of the JSON: the few
files to copy back from the GPU machine.

Peak memory of a notebook, two ways: nvidia-smi polled every 0.5 s while it runs (the device's
memory in use minus what was in use before it started: the CUDA context, the caching allocator's
reserve and anything else on the GPU), and an IPython start-up file, put in a private IPYTHONDIR
for the kernel, that registers a post_run_cell hook writing torch.cuda.max_memory_allocated() and
max_memory_reserved() (and the kernel's peak RSS) to notebooks/<name>.memory.json after every cell.
The notebooks themselves are not changed.

On a GPU machine (docs/benchmarks.md, "Running the GPU suite", has every step): put the
repository and data/cifar10-mini there (git clone and tools/make_cifar10_mini.py, or rsync from
your own machine), install the package with its notebook extras (pip install -e '.[notebooks]';
without internet there, from the wheels benchmarks/gpu_wheels.sh downloads), run the second
command above, and copy artifacts/gpu_bundle back.

The code: suite_core.py (results file, clocks, processes), suite_throughput.py,
suite_notebooks.py, suite_study.py (one stage each), suite_bundle.py (the tarballs).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))     # the suite_* modules beside this file
from suite_bundle import bundle  # noqa: E402
from suite_core import BUDGET_S, ROOT, STAGES, Results, Stage, device_info, json_name, parse_budget  # noqa: E402
from suite_notebooks import stage_notebooks  # noqa: E402
from suite_study import stage_study  # noqa: E402
from suite_throughput import stage_throughput  # noqa: E402

RUNNERS = {"throughput": stage_throughput, "notebooks": stage_notebooks, "study": stage_study}
DEFAULT_DATA = ROOT / "data" / "cifar10-mini"        # what tools/make_cifar10_mini.py writes


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


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="all", help="throughput | notebooks | study | all, or a comma list")
    ap.add_argument("--out", default="artifacts/gpu_suite", help="folder for every output")
    ap.add_argument("--budget-s", help=f"seconds per stage: one number, or name=seconds,... (default {BUDGET_S})")
    ap.add_argument("--dry-run", action="store_true", help="the same stages on the CPU at tiny sizes (seconds each)")
    ap.add_argument("--data", help="ImageFolder tree with train/ and test/ (default data/cifar10-mini, built by "
                                   "tools/make_cifar10_mini.py; in a dry run, a synthetic tiny one made under --out)")
    ap.add_argument("--device", default="auto", help="auto | cuda | cpu (a dry run uses cpu)")
    ap.add_argument("--seeds", help="study seeds (default 0,1,2; dry run 0)")
    ap.add_argument("--notebooks", help="notebook numbers, e.g. 01,04 (default all; dry run 01)")
    ap.add_argument("--epochs", type=int, help="fix the notebooks' and the study's epochs instead of fitting the budget")
    ap.add_argument("--continue-from", help="an earlier run's JSON: its results are kept, and its measured "
                                           "images/s size the notebooks and study stages")
    ap.add_argument("--bundle", help="after each stage, write <stage>.tar.gz (no checkpoints) and a copy of the "
                                     "JSON into this folder: the few files to copy back from the GPU machine")
    return ap


def make_suite(args, argv) -> SimpleNamespace:
    """The run's settings, device, data folder and results file (its header written)."""
    from clead_edu.device import pick_device
    device_arg = "cpu" if args.dry_run else args.device
    device = pick_device(device_arg)
    if args.dry_run:     # tiny tensors: one thread each, here and in the notebooks' and study's processes
        torch.set_num_threads(1)
        os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve() if args.data else (tiny_folder(out / "tiny-data") if args.dry_run else DEFAULT_DATA)
    info = device_info(device)
    res = Results(out / json_name(info["device"]), args.continue_from)
    res.data.update(info)
    res.set(("dry_run",), args.dry_run)
    command = "python benchmarks/gpu_suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res.set(("commands",), res.get(("commands",), []) + [command])
    return SimpleNamespace(
        out=out, dry=args.dry_run, device=device, device_arg=device_arg, data=data, res=res, epochs=args.epochs,
        seeds=[int(s) for s in (args.seeds or ("0" if args.dry_run else "0,1,2")).split(",")],
        notebooks=[n.strip() for n in (args.notebooks or ("01" if args.dry_run else "01,02,03,04,05,06,07")).split(",")])


def run_stage(suite, name: str, budget_s: float) -> bool:
    """One stage, its status and seconds recorded whatever happens; True if it did not fail."""
    res, st = suite.res, Stage(name, budget_s, suite.res)
    res.set(("stages", name), {"status": "running", "budget_s": budget_s})   # a rerun starts afresh
    ok = True
    try:
        RUNNERS[name](suite, st)
        st.note("status", "ok" if not res.get(("stages", name, "errors")) else "partial")
    except Exception as err:
        ok = False
        st.note("status", "failed")
        st.note("error", "".join(traceback.format_exception_only(type(err), err))[-4000:])
        traceback.print_exc()
    st.note("seconds", st.elapsed())
    print(f"[gpu_suite] stage {name}: {res.get(('stages', name, 'status'))} in {st.elapsed():.0f} s")
    return ok


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    stages = list(STAGES) if args.stage == "all" else [s.strip() for s in args.stage.split(",") if s.strip()]
    if not stages or any(s not in STAGES for s in stages):
        ap.error(f"--stage must be one of {STAGES} or all, got {args.stage!r}")
    suite = make_suite(args, argv)
    budget = parse_budget(args.budget_s)
    info = suite.res.data
    print(f"[gpu_suite] {info['device']}, torch {info['torch']}, CUDA {info.get('cuda')}, driver {info.get('driver')}; "
          f"data {suite.data}; results {suite.res.path}\n[gpu_suite] plan: "
          + ", ".join(f"{s} ({budget[s]:.0f} s)" for s in stages)
          + f", about {sum(budget[s] for s in stages) / 60:.1f} min in all; each stage prints its own plan first")
    failed = []
    for name in stages:
        if not run_stage(suite, name, budget[name]):
            failed.append(name)
        if args.bundle:
            bundle(suite.out, name, Path(args.bundle), suite.res.path)
    print(f"[gpu_suite] results: {suite.res.path}" + (f"; failed stages: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
