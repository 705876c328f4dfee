"""Several seeds and the C-LEAD ablation: the numbers in docs/results.md.

    python -m clead_edu study --dataset digits --seeds 0,1,2    # runs/digits-quick-study/summary.md
    python -m clead_edu study --dataset digits --seeds 0,1,2 --jobs 3   # the seeds side by side
    python -m clead_edu ablate --dataset digits --seeds 0,1,2   # runs/digits-quick-ablation/ablation.md

`study` runs the main job once per seed (each seed in its own folder, reused if it
is complete and has the same settings) and reports the mean and a 95% Student-t
interval over seeds of every accuracy, plus the paired differences against PGD-AT
and against the lam=0 control; `--jobs`/`--launcher` run the seeds side by side
(`launch.py`). `ablate` trains C-LEAD variants on a split of the *training* images and
scores them on the held-out part, so the test images never choose a setting.
Both raise ValueError for bad arguments; only the command line exits.

`published(name)` reads a study shipped with the package (its summary.json, with the command
that produced it), for a lesson on a machine where running the study would take too long.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from . import data as D
from . import evaluate as E
from . import plots as P
from .attacks import pgd
from .config import COMPARED, RunConfig, update
from .device import pick_device
from .launch import Launch, run_all
from .objectives import OLD_NAMES, arm, arm_key
from .pipeline import run
from .report import write_ablation, write_summary
from .threads import set_threads
from .train import train_arm

# The ablation's named variants, each an arm: C-LEAD with one knob changed from the command
# line's settings (the choice is among the arms of the first variant's objective), then
# controls and other readings (never chosen): lam=0 with PGD-AT's BatchNorm updates (= PGD-AT),
# the contrastive term in the attack too, pair-only cosine alignment of clean and adversarial z.
VARIANTS = {
    "default": "clead", "lam=0.5": "clead[lam=0.5]", "lam=2": "clead[lam=2]",
    "tau=0.05": "clead[tau=0.05]", "tau=0.5": "clead[tau=0.5]", "positives=pair": "clead[positives=pair]",
    "mu=1": "clead[mu=1]", "head=128": "clead[head_dim=128]",
    "lam=4": "clead[lam=4]", "ramp=3": "clead[lam_ramp=3]", "lam=2 ramp=3": "clead[lam=2,lam_ramp=3]",
    "joint-bn": "clead[joint_bn=true]",     # both views in one BatchNorm batch
    "lam=0": "clead[lam=0]",                # control: C-LEAD's attack and views without the contrastive term
    "lam=0 bn-adv-only": "clead[lam=0,bn_stats_adv_only=true]",
    "joint-perturbation": "clead_joint", "align": "align", "align lam=2": "align[lam=2]",
    "PGD-AT (reference)": "pgd_at",
}

# The studies shipped in assets/studies/<name>-study.json (copies of docs/results/) and the
# commands that produced them (docs/results.md; the seeds ran side by side, then this command
# summarised them).
STUDIES = Path(__file__).parent / "assets" / "studies"
PUBLISHED = {
    "cifar10-mini": "python -m clead_edu study --dataset folder:data/cifar10-mini --epochs 8 --train-steps 3 "
                    "--alpha 0.0157 --eval-n 200 --extra-pgd-steps 50 --extra-restarts 2 --autoattack standard "
                    "--aa-n 200 --objectives standard,pgd_at,trades,clead,clead_released "
                    "--no-figures --no-progress --seeds 0,1,2 --out runs/results/c10mini-v2",
    "cifar10-mini-controls": "python -m clead_edu study --dataset folder:data/cifar10-mini --epochs 8 "
                             "--train-steps 3 --alpha 0.0157 --eval-n 517 --extra-pgd-steps 50 --extra-restarts 2 "
                             "--autoattack apgd --aa-n 517 --aa-check-n 200 --objectives "
                             "pgd_at,clead,clead_lam0,clead_joint --no-figures --no-progress --seeds 0,1,2,3,4 "
                             "--jobs 2 --threads 1 --out runs/results/c10mini-controls",
    # C-LEAD with the recipe of its field beside PGD-AT, TRADES and its lam-0 control (docs/results.md
    # section 11); its seeds are summarised as they finish, so --seeds names the finished ones
    "cifar10-mini-final": "python -m clead_edu study --dataset folder:data/cifar10-mini --epochs 15 --train-steps 3 "
                          "--alpha 0.0157 --batch-size 128 --lr 0.1 --eval-n 517 --autoattack apgd --aa-n 517 "
                          "--aa-check-n 200 --objectives pgd_at,trades[beta=6],clead[head_dim=128,lam=1,tau=0.1],"
                          "clead[head_dim=128,lam=0] --no-figures --no-progress --seeds 0,1,2,3,4 --threads 1 "
                          "--out runs/results/c10mini-final",
}


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; ValueError unless distinct integers."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs distinct integers, got {text!r}")
    return seeds


def published(name: str = "cifar10-mini") -> dict:
    """The study `name` shipped with the package: its summary.json as a dict, with the command
    that produced it added under 'command'. Keys: 'seeds' [int]; 'settings' (RunConfig.to_dict);
    'accuracy' {arm: {attack: [accuracy in [0, 1] per seed]}}, attacks 'clean', 'fgsm',
    'pgd20', 'pgd50x2', 'autoattack', 'worst_case' (per-example minimum over all of them);
    'paired' {reference: {arm: {attack: [arm - reference per seed]}}} (same seed, same test
    images); 'paired_minus_pgd_at' (its PGD-AT entry), 'clead_minus_pgd_at' (C-LEAD's entry
    there); 'failed_checks' [str]. Arms the file names by an old objective name are named as
    arms (`objectives.OLD_NAMES`: 'clead_lam0' is read as 'clead[lam=0]')."""
    if name not in PUBLISHED:
        raise ValueError(f"no published study {name!r}; there is {', '.join(PUBLISHED)}")
    return renamed(json.loads((STUDIES / f"{name}-study.json").read_text())) | {"command": PUBLISHED[name]}


def renamed(found):
    """`found` (a summary's JSON) with every dict key that is an old objective name replaced by
    its arm (`objectives.OLD_NAMES`)."""
    if isinstance(found, dict):
        return {OLD_NAMES.get(k, k): renamed(v) for k, v in found.items()}
    return [renamed(v) for v in found] if isinstance(found, list) else found


def claim(out: Path, settings: dict, overwrite: bool = False) -> Path:
    """Record the settings in out/settings.json, or check they equal the recorded ones, so
    that a study or ablation continues only with the settings it was started with."""
    f = out / "settings.json"
    if f.exists() and not overwrite and json.loads(f.read_text()) != json.loads(json.dumps(settings)):
        raise ValueError(f"{out} holds a study with other settings ({f}); pass another --out, "
                         f"or --overwrite to start it again")
    if overwrite:
        for old in ("ablation.jsonl", "summary.md", "summary.json", "ablation.md"):
            (out / old).unlink(missing_ok=True)
    f.write_text(json.dumps(settings, indent=1))
    return out


def study(cfg: RunConfig, seeds: list[int], out: Path, command: str, *, overwrite: bool = False,
          launch: Launch | None = None, **job) -> str:
    """The main job for every seed under out/seed<k>, then summary.md; returns its text.
    `job`: keyword arguments of `pipeline.run` (objectives, device, data_root, figures, progress).
    `launch`: run the seeds side by side (`launch.run_all`: processes here, or submitit jobs);
    default one after the other in this process."""
    settings = cfg.to_dict()
    settings["train"]["seed"] = None       # every seed of the study shares the other settings
    claim(out, settings, overwrite)
    if launch is None or not launch.parallel:
        metrics = [seed_metrics(update(cfg, seed=s), out / f"seed{s}", overwrite, **job) for s in seeds]
    else:
        job = job | {"progress": False}    # the bars of several processes would garble each other
        tasks = [(f"seed {s}", (update(cfg, seed=s), out / f"seed{s}", overwrite), job, out / f"seed{s}")
                 for s in seeds]
        metrics = run_all(seed_metrics, tasks, launch, out)
    return write_summary(out, metrics, command)


def seed_metrics(cfg: RunConfig, folder: Path, overwrite: bool, **job) -> dict:
    """metrics.json of one seed: reused if the folder holds a finished run with the same
    settings and every objective asked for (so an interrupted study continues); other
    settings or missing objectives raise ValueError."""
    done = folder / "metrics.json"
    if done.exists() and overwrite:
        done.unlink()
    if done.exists():
        found = json.loads(done.read_text())
        if found["settings"] != json.loads(json.dumps(cfg.to_dict())):
            raise ValueError(f"{done} was made with other settings; pass another --out or delete {folder}")
        missing = [o for o in map(arm_key, job.get("objectives", COMPARED)) if o not in found["models"]]
        if missing:
            raise ValueError(f"{done} has no {', '.join(missing)} (it has {', '.join(found['models'])}); "
                             f"pass another --out for these objectives")
        print(f"[clead_edu] seed {cfg.seed}: reusing {done}")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        run(cfg, folder, resume=True, **job)   # an interrupted seed continues from its last epoch
    return json.loads(done.read_text())


# ----------------------------------------------------------------------------- ablation

def ablate(cfg: RunConfig, seeds: list[int], variants: list[str], out: Path, *, val_fraction: float = 0.2,
           device: str = "auto", data_root="data", overwrite: bool = False, threads=None) -> str:
    """Every variant x seed (rows appended to out/ablation.jsonl, so an interrupted ablation
    continues); writes out/ablation.md and returns it. Choice: highest mean validation PGD accuracy."""
    variants = list(dict.fromkeys(variants))                   # each variant once
    changes = {v: variant_changes(v) for v in variants}        # ValueError for a bad name or arm
    if not 0 < val_fraction < 1:
        raise ValueError(f"--val-fraction {val_fraction} not in (0, 1)")
    claim(out, cfg.to_dict() | {"val_fraction": val_fraction}, overwrite)
    log = out / "ablation.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    rows = list({(r["variant"], r["seed"]): r for r in rows}.values())   # one row per variant and seed
    done, dev = {(r["variant"], r["seed"]) for r in rows}, pick_device(device)
    set_threads(threads)
    for seed in seeds:
        data = D.get_data(cfg.dataset, data_root, seed=seed)   # the same train/test split as `run` with this seed
        for v in [v for v in variants if (v, seed) not in done]:
            row = ablation_run(update(cfg, seed=seed), data, v, val_fraction, dev)
            print(f"[clead_edu] {v}, seed {seed}: val clean {100 * row['val_clean']:.1f}%, "
                  f"val PGD-{cfg.eval.pgd_steps} {100 * row['val_pgd']:.1f}%")
            rows.append(row)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
    draw_sweep(out, rows, changes)
    return write_ablation(out, cfg, rows, changes, seeds, val_fraction)


def draw_sweep(out: Path, rows: list[dict], changes: dict) -> None:
    """out/frontier.png (validation clean against PGD accuracy, means over seeds, one marker per
    objective and one for its lam-0 controls; a group whose arms turn one knob, e.g. PGD-AT's eps,
    is joined by a line, the others are zoomed on) and out/contrastive_term.png (the term per
    epoch of each arm that logged it, first seed)."""
    points, knobs = {}, {}
    for v, change in changes.items():
        r = [x for x in rows if x["variant"] == v]
        if r:
            group = change["objective"] + (" (lam 0 control)" if change.get("lam") == 0 else "")
            points.setdefault(group, []).append(
                (sum(x["val_clean"] for x in r) / len(r), sum(x["val_pgd"] for x in r) / len(r), short(change)))
            knobs.setdefault(group, set()).update(k for k in change if k != "objective")
    if points:
        joined = [g for g, k in knobs.items() if len(k) <= 1]      # one knob turned: a frontier line
        near = [p for g, pts in points.items() if g not in joined for p in pts]
        zoom = (100 * min(p[0] for p in near) - 1.5, 100 * max(p[0] for p in near) + 2.5,
                100 * min(p[1] for p in near) - 1, 100 * max(p[1] for p in near) + 0.7) if near else None
        P.frontier(points, joined=joined, zoom=zoom, xlabel="validation clean accuracy (%)",
                   ylabel="validation PGD accuracy (%)",
                   title="Clean/robust trade-off (validation)").savefig(out / "frontier.png", dpi=110)
    first = {}
    for r in rows:
        if r.get("history") and "train_supcon" in r["history"][-1]:
            first.setdefault(r["variant"], r["history"])
    logged = {short(changes[v]): first[v] for v in changes if v in first}
    if logged:
        P.contrastive_term(logged).savefig(out / "contrastive_term.png", dpi=110)


def short(change: dict) -> str:
    """A point's label in the frontier figure: what its arm changes, without the objective and the
    head, e.g. 'eps 4/255', 'beta 6', 'lam 1, tau 0.1, joint BN'; 'as run' for no change."""
    def word(k, v):
        if k == "eps" and abs(v * 255 - round(v * 255)) < 1e-6:
            return f"eps {v * 255:.0f}/255"
        if k == "joint_bn":
            return "joint BN" if v else ""
        if k == "positives":
            return f"{v} positives"
        return f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
    words = [word(k, v) for k, v in change.items() if k not in ("objective", "head_dim")]
    return ", ".join(w for w in words if w) or "as run"


def variant_changes(variant: str) -> dict:
    """What a variant changes, {'objective': name, setting: value, ...}: a name of VARIANTS
    or an arm, 'pgd_at[eps=4/255]' (`objectives.arm`)."""
    try:
        objective, changes = arm(VARIANTS.get(variant, variant))
    except ValueError as err:
        raise ValueError(f"{err}; a variant is an arm or one of: {', '.join(VARIANTS)}") from None
    return {"objective": objective} | changes


def ablation_run(cfg: RunConfig, data, variant: str, val_fraction: float, device) -> dict:
    """Train one variant on the training part of a seeded split of the training images; score it
    on the held-out part, always at the run's eps (an arm may train at another). Returns
    {'variant', 'seed', 'n_fit', 'n_val', 'val_clean', 'val_pgd', 'train_seconds', 'history'}."""
    fit, val = D.split(D.subset(data.train, cfg.train_n, cfg.seed), val_fraction, cfg.seed)
    x, y = D.take(val, cfg.eval.eval_n, cfg.seed)
    train_cfg = update(cfg, **variant_changes(variant)).train    # a changed eps brings its step along
    t = time.time()
    model, history = train_arm(train_cfg, data, cfg.arch, fit, device, progress=False, start_from=lambda source: (
        train_arm(cfg.for_objective(source), data, cfg.arch, fit, device, progress=False)[0]))
    seconds = time.time() - t
    torch.manual_seed(cfg.seed)
    return {"variant": variant, "seed": cfg.seed, "n_fit": len(fit), "n_val": len(y), "val_clean": E.accuracy(model, x, y),
            "val_pgd": E.accuracy(model, x, y, pgd, eps=cfg.eps, steps=cfg.eval.pgd_steps),
            "train_seconds": seconds, "history": history}
