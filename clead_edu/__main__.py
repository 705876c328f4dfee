"""The main job: `python -m clead_edu run` trains standard, PGD-AT, TRADES and C-LEAD
models with the same data, model and budget, evaluates each, and writes
runs/<name>/report.md, metrics.json and PNG figures.

This file only parses the command line into a `config.RunConfig` and calls
`pipeline.run`, `study.study` or `study.ablate`; `export` and `import` are defined (and
carried out) in `bundle.py`, and the course-building commands `site`, `editions` and
`pretrained`, with `grade` (marking students' notebooks), in `course/` (imported only when one of them runs; `site` and `editions` need
the repository: its notebooks, docs and mkdocs.yml).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import config as C
from . import data as D
from . import launch as L
from . import objectives as O
from . import bundle, pipeline
from . import study as S
from .device import pick_device

# The course-building commands (clead_edu/course/<name>.py): name -> (help, needs the repository).
COURSE = {"site": ("execute the lessons and build the course site (MkDocs)", True),
          "editions": ("build the student and teacher editions of the lessons (otter assign)", True),
          "pretrained": ("train the lessons' models and write the pretrained bundle", False),
          "grade": ("grade students' submitted notebooks: a CSV of points and a feedback file each", False)}
REPO = Path(__file__).resolve().parents[1]

# Options that set the field of RunConfig/TrainConfig/EvalConfig of the same name (--train-n sets
# train_n): (flag, type, help).
SETTINGS = [
    ("--arch", str, "small_cnn | preact_resnet18 | wide_resnet | resnet18"),
    ("--epochs", int, "training epochs per model"),
    ("--eps", float, "L-inf radius in pixel units, e.g. 0.0314 (=8/255)"),
    ("--alpha", float, "PGD step inside training, pixel units (default: keeps the preset's step/eps)"),
    ("--train-steps", int, "PGD steps of the attack inside adversarial training"),
    ("--train-n", int, "training images used (subset)"),
    ("--eval-n", int, "test images for clean/FGSM/PGD"),
    ("--extra-pgd-steps", int, "also run PGD with this many steps (e.g. 50)"),
    ("--extra-restarts", int, "restarts of that PGD (robust = survives all)"),
    ("--aa-n", int, "test images for AutoAttack (0 = skip)"),
    ("--aa-check-n", int, "also the standard AutoAttack on the first N of those, as a check of --autoattack"),
    ("--umap-n", int, "test images for the feature-space numbers and UMAP pictures"),
    ("--batch-size", int, "training batch size"), ("--lr", float, "peak learning rate"),
    ("--lam", float, "C-LEAD: weight of the contrastive term"),
    ("--lam-ramp", int, "C-LEAD/align: lam grows linearly from 0 over this many epochs"), ("--tau", float, "C-LEAD: SupCon temperature"),
    ("--mu", float, "C-LEAD: weight of the representation term in the attack"),
    ("--head-dim", int, "C-LEAD: projection head size (0 = none)"), ("--beta", float, "TRADES beta"),
]


def add_run_options(r: argparse.ArgumentParser) -> None:
    """The options shared by `run`, `study` and `ablate` (defaults: the preset and dataset)."""
    r.add_argument("--dataset", default=C.RunConfig.dataset, help=" | ".join(D.DATASETS) + " (see data.DATASETS)")
    r.add_argument("--preset", default="quick", choices=sorted(C.PRESETS), help="quick: CPU, minutes; full: GPU, paper scale")
    r.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 ...")
    r.add_argument("--out", help="output folder (default: runs/<dataset>-<preset>-...)")
    r.add_argument("--overwrite", action="store_true", help="reuse an existing output folder")
    r.add_argument("--resume", action="store_true", help="continue interrupted training in --out")
    r.add_argument("--objectives", default=",".join(C.COMPARED), help="comma-separated arms, e.g. "
                   "pgd_at,clead[lam=0]; objectives: " + ",".join(O.OBJECTIVES))
    r.add_argument("--data-root", default="data", help="where datasets are downloaded")
    r.add_argument("--threads", help="CPU threads (default: $CLEAD_EDU_THREADS, else what this process may use)")
    for flag, kind, text in SETTINGS:
        r.add_argument(flag, type=kind, help=text)
    r.add_argument("--positives", choices=C.POSITIVES, help="C-LEAD positives")
    r.add_argument("--joint-bn", action="store_true", default=None,
                   help="TRADES/C-LEAD: clean and adversarial views in one BatchNorm batch (default: separate)")
    r.add_argument("--bn-stats-adv-only", action="store_true", default=None,
                   help="TRADES/C-LEAD: the clean view does not move the BatchNorm running statistics "
                        "(then C-LEAD at lam 0 is PGD-AT exactly)")
    r.add_argument("--head-input", choices=C.HEAD_INPUTS,
                   help="released reading: its head reads the penultimate features (default) or the logits")
    r.add_argument("--autoattack", choices=[*C.AUTOATTACK_VERSIONS, "none"],
                   help="AutoAttack version: standard | apgd (its APGD-CE and APGD-T only) | quick (reduced)")
    r.add_argument("--fast", default="auto", choices=["auto", "on", "off"],
                   help="GPU fast path (data on the device, mixed precision, channels_last); auto = the preset's, on CUDA")
    r.add_argument("--precision", choices=C.PRECISIONS,
                   help="training steps: auto (fast path on CUDA: bf16 from compute capability 8.0, fp16 with a "
                        "gradient scaler below; fp32 elsewhere) | bf16 | fp16 | fp32")
    r.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    r.add_argument("--no-figures", action="store_true", help="skip the example, eps-curve and UMAP figures")
    r.add_argument("--no-progress", action="store_true", help="hide progress bars (drawn on a terminal only) and epoch lines")


def add_launch_options(s: argparse.ArgumentParser) -> None:
    """`study`: how many seeds at once, and where (`launch.py`)."""
    g = s.add_argument_group("running seeds side by side")
    g.add_argument("--jobs", type=int, default=1, help="seeds run at once (each with CPUs/jobs threads here)")
    g.add_argument("--launcher", default="processes", choices=L.LAUNCHERS,
                   help="processes: on this machine; local: submitit's local executor; slurm: one SLURM job per seed")
    g.add_argument("--partition", help="slurm: the partition")
    g.add_argument("--time", type=int, default=600, help="slurm/local: minutes a seed may take")
    g.add_argument("--cpus-per-job", type=int, default=4, help="slurm: CPUs per seed")
    g.add_argument("--gpus-per-job", type=int, default=0, help="slurm: GPUs per seed")


def launch_of(args) -> L.Launch:
    return L.Launch(jobs=args.jobs, launcher=args.launcher, partition=args.partition, time=args.time,
                    cpus_per_job=args.cpus_per_job, gpus_per_job=args.gpus_per_job)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m clead_edu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and compare standard / PGD-AT / TRADES / C-LEAD")
    add_run_options(r)
    r.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("study", help="`run` for several seeds, then means and 95%% intervals")
    a = sub.add_parser("ablate", help="C-LEAD variants on a validation split of the training data")
    for p in (s, a):
        add_run_options(p)
        p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    add_launch_options(s)
    a.add_argument("--val-fraction", type=float, default=0.2, help="share of the training images held out")
    a.add_argument("--variants", default=",".join(S.VARIANTS),
                   help="comma-separated arms, e.g. clead[lam=0.3,head_dim=128],pgd_at[eps=4/255], or names from "
                        + ",".join(S.VARIANTS))
    bundle.add_parsers(sub)
    for name, (text, _) in COURSE.items():        # listed here; parsed by `course_command`
        sub.add_parser(name, help=text, add_help=False)
    return ap


def course_command(argv: list[str]) -> int:
    """Run the course-building command argv[0] (`COURSE`): its module is imported only now; one
    line, exit status 2, when it needs the repository and this is an installed package."""
    name = argv[0]
    if COURSE[name][1] and not ((REPO / "notebooks").is_dir() and (REPO / "mkdocs.yml").is_file()):
        print(f"error: `python -m clead_edu {name}` needs the repository (its notebooks/, docs/ and mkdocs.yml), "
              f"not found beside {Path(__file__).parent}; run it in a clone of the course", file=sys.stderr)
        return 2
    ap = argparse.ArgumentParser(prog="python -m clead_edu")
    importlib.import_module(f"{__package__}.course.{name}").add_parser(ap.add_subparsers(required=True))
    args = ap.parse_args(argv)
    return args.func(args)


def to_config(args) -> C.RunConfig:
    """The preset for args.dataset, changed by every setting given on the command line."""
    named = {f.lstrip("-").replace("-", "_") for f, _, _ in SETTINGS} | {
        "positives", "seed", "precision", "joint_bn", "bn_stats_adv_only", "head_input"}
    changes = {k: v for k, v in vars(args).items() if v is not None and k in named}
    if args.autoattack is not None:
        changes.update(autoattack=None, aa_n=0) if args.autoattack == "none" else changes.update(autoattack=args.autoattack)
    cfg = D.from_preset(args.preset, args.dataset, **changes)
    on_cuda = pick_device(args.device, verbose=False).type == "cuda"
    fast = {"on": True, "off": False}.get(args.fast, cfg.train.fast and on_cuda)
    return C.update(cfg, fast=fast, compile=args.compile)


def objectives(text: str) -> list[str]:
    """--objectives: the arms, checked (`objectives.arm_key`), in their one spelling."""
    return [O.arm_key(a) for a in C.split_arms(text)]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    course = bool(argv) and argv[0] in COURSE
    args = None if course else build_parser().parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    command = "python -m clead_edu " + " ".join(argv)
    try:
        if course:                         # site, editions, pretrained, grade
            return course_command(argv)
        if hasattr(args, "func"):          # export, import
            return args.func(args)
        cfg = to_config(args)
        job = dict(objectives=objectives(args.objectives), device=args.device, data_root=args.data_root,
                   figures=not args.no_figures, progress=not args.no_progress, threads=args.threads)
        if args.command == "run":
            out = pipeline.out_dir(cfg, args.out, reuse=args.overwrite or args.resume)
            pipeline.run(cfg, out, resume=args.resume, **job)
        elif args.command == "study":
            out = pipeline.out_dir(cfg, args.out, "study", reuse=True)
            print(S.study(cfg, S.parse_seeds(args.seeds), out, command, overwrite=args.overwrite,
                          launch=launch_of(args), **job)
                  + f"[clead_edu] written: {out / 'summary.md'}")
        else:
            out = pipeline.out_dir(cfg, args.out, "ablation", reuse=True)
            variants = C.split_arms(args.variants)
            print(S.ablate(cfg, S.parse_seeds(args.seeds), variants, out, val_fraction=args.val_fraction,
                           device=args.device, data_root=args.data_root, overwrite=args.overwrite,
                           threads=args.threads)
                  + f"[clead_edu] written: {out / 'ablation.md'}")
    except (D.DatasetUnavailable, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
