"""The lessons' pretrained models: which ones, and the one command that rebuilds their bundle.

    python -m clead_edu pretrained                          # cifar10-sample, quick preset
    python -m clead_edu pretrained --jobs 2 --threads 1     # two models at a time, one thread each

Training every photo model that lessons 01-08 use takes longer on a CPU than the lessons
themselves, so the package ships them: clead_edu/assets/pretrained/<dataset>-<preset>.zip,
in the `export` format (every file's SHA-256 in a manifest), which `Lesson.model` loads
(`lesson.py`). The build trains each model exactly as `L.model` would (same settings, same
seeds), in --run-dir (resumable: run it again after an interruption), with the clean test
accuracy of every epoch in its model.json; then it measures each model on every test image
(clean and PGD-20 at the dataset's eps) into accuracy.json and writes the archive.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..attacks import pgd
from ..bundle import export
from ..config import COMPARED
from ..evaluate import accuracy
from ..launch import process_pool
from ..lesson import checkpoint_name, pretrained_archive, setup
from ..objectives import arm, get

# Lesson 05's one-knob arms of C-LEAD (its notebook lists the same arms; a test checks).
ABLATION = ["clead", "clead[lam=0.3]", "clead[lam=3]", "clead[tau=0.5]", "clead[positives=pair]", "clead[mu=1]",
            "clead[head_dim=64]"]
MAIN = 5                                                       # lesson_models: 5 main models, then the ablation


def lesson_models(cfg) -> list[tuple[str, dict]]:
    """(objective, changes) of every model `L.model` loads in lessons 01-08 with settings `cfg`:
    the preset's arms (`config.COMPARED`), standard with a second seed (06's transfer surrogate,
    08's seed comparison), and 05's ablation arms (half the epochs in the quick preset)."""
    half = {"epochs": max(1, cfg.train.epochs // 2)} if cfg.preset == "quick" else {}
    main = [arm(a) for a in COMPARED] + [(COMPARED[0], {"seed": cfg.seed + 1})]
    models = main + [(o, {**c, **half}) for o, c in map(arm, ABLATION)]
    return [m for i, m in enumerate(models) if m not in models[:i]]     # without repeats


def add_parser(sub) -> None:
    """The `pretrained` subcommand of `python -m clead_edu`."""
    p = sub.add_parser("pretrained", help="train the lessons' models and write the pretrained bundle")
    p.add_argument("--dataset", default="cifar10-sample")
    p.add_argument("--preset", default="quick")
    p.add_argument("--run-dir", default="runs/pretrained", help="where the models are trained (resumable)")
    p.add_argument("--out", help="the archive (default: the package's clead_edu/assets/pretrained/<dataset>-<preset>.zip)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the preset's)")
    p.add_argument("--jobs", type=int, default=1, help="models trained at once, in separate processes")
    p.add_argument("--threads", help="CPU threads per job (default: what each process may use)")
    p.set_defaults(func=build_command)


def build_command(args) -> int:
    if args.jobs < 1:
        raise SystemExit("--jobs must be at least 1")
    out = build(args.dataset, args.preset, args.run_dir, args.out, args.jobs, args.threads, epochs=args.epochs)
    print(f"[clead_edu] written: {out}")
    return 0


def build(dataset: str = "cifar10-sample", preset: str = "quick", run_dir="runs/pretrained", out=None,
          jobs: int = 1, threads=None, data_root="data", epochs: int | None = None) -> Path:
    """Train (or find, when already trained) every lesson model, measure them, write the archive."""
    where = dict(run_dir=run_dir, data_root=data_root, threads=threads, epochs=epochs)
    L = setup(preset, dataset, **where)
    models = lesson_models(L.cfg)        # the main models first (the lessons' first cells need them), shortest first
    todo = sorted(models, key=lambda m: (models.index(m) >= MAIN, get(m[0]).cost * m[1].get("epochs", L.cfg.train.epochs)))
    if jobs == 1:
        for objective, changes in todo:
            train_one(preset, dataset, where, objective, changes)
    else:
        with process_pool(jobs) as pool:
            for f in [pool.submit(train_one, preset, dataset, where, o, c) for o, c in todo]:
                f.result()
    measure(L, todo)
    return export(L.ckpt, out or pretrained_archive(L.ckpt.name))


def train_one(preset: str, dataset: str, where: dict, objective: str, changes: dict) -> None:
    """One lesson model, trained as `L.model` trains it (in its own process when jobs > 1);
    `where`: setup's run_dir, data_root, threads and epochs."""
    L = dataclasses.replace(setup(preset, dataset, **where), building=True)
    L.model(objective, progress=False, **changes)


def measure(L, todo) -> list[dict]:
    """Clean and PGD-20 accuracy (%) of each model on every test image, printed as a table and
    written to <checkpoint folder>/accuracy.json."""
    L = dataclasses.replace(L, building=True)
    x, y = L.test_images(len(L.data.test))
    rows = []
    for objective, changes in todo:
        model, _ = L.model(objective, progress=False, **changes)
        name = checkpoint_name(L.cfg.for_objective(objective, **changes), changes)
        rows.append({"model": name, "n": len(y), "clean": 100 * accuracy(model, x, y),
                     "pgd20": 100 * accuracy(model, x, y, pgd, eps=L.cfg.eps, steps=20)})
        print(f"{name:>34}: clean {rows[-1]['clean']:5.1f}%, PGD-20 {rows[-1]['pgd20']:5.1f}% ({len(y)} test images)")
    (L.ckpt / "accuracy.json").write_text(json.dumps(rows, indent=1))
    return rows
