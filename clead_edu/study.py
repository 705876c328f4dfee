"""Several seeds and the C-LEAD ablation: the numbers in docs/results.md.

    python -m clead_edu study --dataset digits --seeds 0,1,2    # runs/digits-quick-study/summary.md
    python -m clead_edu ablate --dataset digits --seeds 0,1,2   # runs/digits-quick-ablation/ablation.md

`study` runs the main job once per seed (each seed in its own folder, reused if it
is complete and has the same settings) and reports the mean and a 95% Student-t
interval over seeds of every accuracy, plus the paired C-LEAD minus PGD-AT
difference. `ablate` trains C-LEAD variants on a split of the *training* images and
scores them on the held-out part, so the test images never choose a setting.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import torch

from . import data as D
from . import evaluate as E
from .attacks import pgd
from .models import model_for
from .train import TrainConfig, pick_device, seed_everything, train

# C-LEAD variants for the ablation: changes from the command line's settings.
VARIANTS = {
    "default": {}, "lam=0.5": {"lam": 0.5}, "lam=2": {"lam": 2.0},
    "tau=0.05": {"tau": 0.05}, "tau=0.5": {"tau": 0.5}, "positives=pair": {"positives": "pair"},
    "mu=1": {"mu": 1.0}, "head=128": {"head_dim": 128},
    "lam=0": {"lam": 0.0},   # control: C-LEAD's batch (clean + adversarial views) without the contrastive term
    "PGD-AT (reference)": {"objective": "pgd_at"},
}


def interval(values: list[float], conf: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (nan with one value)."""
    from scipy.stats import t
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t.ppf(0.5 + conf / 2, n - 1) * sd / math.sqrt(n)


def fmt(values: list[float], scale: float = 100.0) -> str:
    """'mean ± half' in percent (or '± n/a' for a single value)."""
    m, h = interval(values)
    return f"{scale * m:.1f} ± {scale * h:.1f}" if not math.isnan(h) else f"{scale * m:.1f} ± n/a"


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"error: --seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"error: --seeds needs distinct integers, got {text!r}")
    return seeds


def claim(out: Path, p: dict, overwrite: bool = False) -> Path:
    """Record the settings in out/settings.json, or check they equal the recorded ones, so
    that a study or ablation continues only with the settings it was started with."""
    p = {k: v for k, v in p.items() if k != "seed"}
    f = out / "settings.json"
    if f.exists() and not overwrite and json.loads(f.read_text()) != json.loads(json.dumps(p)):
        raise SystemExit(f"error: {out} holds a study with other settings ({f}); pass another --out, "
                         f"or --overwrite to start it again")
    if overwrite:
        for old in ("ablation.jsonl", "summary.md", "summary.json", "ablation.md"):
            (out / old).unlink(missing_ok=True)
    f.write_text(json.dumps(p, indent=1))
    return out


def seed_metrics(args, run, settings, base: Path) -> list[dict]:
    """metrics.json of `run` (the main job) for every seed in args.seeds, under base/seed<k>.

    A seed whose folder already holds metrics.json with the same settings is reused
    (so an interrupted study continues); different settings stop with an error."""
    out = []
    for seed in parse_seeds(args.seeds):
        a = copy.copy(args)
        a.seed, a.out = seed, str(base / f"seed{seed}")
        done = Path(a.out) / "metrics.json"
        if done.exists() and args.overwrite:
            done.unlink()
        a.overwrite = True
        if done.exists():
            old = json.loads(done.read_text())
            if old["settings"] != json.loads(json.dumps(settings(a))):
                raise SystemExit(f"error: {done} was made with other settings; pass another --out "
                                 f"or delete {a.out}")
            print(f"[clead_edu] seed {seed}: reusing {done}")
        else:
            a.resume = True   # an interrupted seed continues from its last epoch
            run(a)
        out.append(json.loads(done.read_text()))
    return out


def summarize(metrics: list[dict]) -> dict:
    """{'accuracy': {model: {attack: [per-seed values]}}, 'clead_minus_pgd_at': {attack: [..]},
    'failed_checks': [str]} from the per-seed metrics.json contents."""
    acc, failed = {}, []
    for m in metrics:
        for name, r in m["models"].items():
            for attack, v in r["accuracy"].items():
                acc.setdefault(name, {}).setdefault(attack, []).append(v)
            failed += [f"seed {m['settings']['seed']}, {name}: {c['check']} ({c['detail']})"
                       for c in r["sanity_checks"] if not c["passed"]]
    diff = {}
    if "clead" in acc and "pgd_at" in acc:
        diff = {k: [a - b for a, b in zip(acc["clead"][k], acc["pgd_at"][k])] for k in acc["clead"]}
    return {"accuracy": acc, "clead_minus_pgd_at": diff, "failed_checks": failed}


def write_summary(out: Path, metrics: list[dict], labels: dict, command: str) -> str:
    """summary.md and summary.json in `out`; returns the markdown."""
    s, p = summarize(metrics), metrics[0]["settings"]
    seeds = [m["settings"]["seed"] for m in metrics]
    cols = list(next(iter(s["accuracy"].values())))
    n_checks = sum(len(r["sanity_checks"]) for m in metrics for r in m["models"].values())
    lines = [f"# {p['dataset']}, preset {p['preset']}: {len(seeds)} seeds ({', '.join(map(str, seeds))})", "",
             f"Command: `{command}`", "",
             f"Model {p['arch']}, {p['epochs']} epochs, {p['train_n'] or 'all'} training images, L-inf eps "
             f"{p['eps']:.4g} ({p['eps'] * 255:.1f}/255), training PGD-{p['train_steps']} (step "
             f"{p['alpha']:.4g}). C-LEAD: lam {p['lam']}, tau {p['tau']}, mu {p['mu']}, positives "
             f"{p['positives']}, head {p['head_dim'] or 'none'}. AutoAttack: {p['autoattack']} version "
             f"on the first {p['aa_n']} test images; worst case = per-example minimum over every "
             f"attack on those images.", "",
             "Accuracy in %, mean ± half-width of the 95% Student-t interval over seeds.", "",
             "| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, a in s["accuracy"].items():
        lines.append(f"| {labels[name]} | " + " | ".join(fmt(a[c]) for c in cols) + " |")
    if s["clead_minus_pgd_at"]:
        lines.append("| **C-LEAD − PGD-AT** (paired) | " +
                     " | ".join(fmt(s["clead_minus_pgd_at"][c]) for c in cols) + " |")
    lines += ["", f"Sanity checks: {n_checks - len(s['failed_checks'])} of {n_checks} passed."]
    lines += [f"- **WARNING: failed**: {f}" for f in s["failed_checks"]]
    lines += ["", f"Training time per seed (s): " + ", ".join(
        f"{labels[k]} {sum(m['models'][k]['train_seconds'] for m in metrics) / len(metrics):.0f}"
        for k in s["accuracy"]) + f"; whole job {sum(m['seconds']['total'] for m in metrics) / len(metrics):.0f} "
        f"per seed, on {metrics[0]['device']} (torch {metrics[0]['torch']})."]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"seeds": seeds, "settings": p, **s}, indent=1))
    return text


# ----------------------------------------------------------------------------- ablation

def ablation_run(p: dict, data, variant: str, seed: int, val_fraction: float, device) -> dict:
    """Train one variant on the training part of a seeded split; score it on the held-out part.

    Returns {'variant', 'seed', 'val_clean', 'val_pgd', 'train_seconds'} (accuracies in [0, 1])."""
    fit, val = D.split(D.subset(data.train, p["train_n"], seed), val_fraction, seed)
    x, y = D.take(val, p["eval_n"], seed)
    change = dict(VARIANTS[variant])
    objective = change.pop("objective", "clead")
    seed_everything(seed)
    model = model_for(data, p["arch"]).to(device)
    t = time.time()
    train(model, fit, TrainConfig.from_preset(objective, {**p, "seed": seed}, **change), progress=False)
    seconds = time.time() - t
    torch.manual_seed(seed)
    return {"variant": variant, "seed": seed, "val_clean": E.accuracy(model, x, y),
            "val_pgd": E.accuracy(model, x, y, pgd, eps=p["eps"], steps=p["pgd_steps"]),
            "train_seconds": seconds}


def ablate(args, p: dict, out: Path) -> str:
    """Every variant x seed (results appended to out/ablation.jsonl, so an interrupted ablation
    continues); writes out/ablation.md and returns it. Choice: highest mean validation PGD accuracy."""
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not 0 < args.val_fraction < 1:
        raise SystemExit(f"error: unknown variants {bad} (choose from {', '.join(VARIANTS)}) "
                         f"or --val-fraction {args.val_fraction} not in (0, 1)")
    log = out / "ablation.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["variant"], r["seed"]) for r in rows}
    device = pick_device(args.device)
    data = D.get_data(args.dataset, args.data_root)
    for seed in parse_seeds(args.seeds):
        for v in variants:
            if (v, seed) in done:
                continue
            row = ablation_run(p, data, v, seed, args.val_fraction, device)
            print(f"[clead_edu] {v}, seed {seed}: val clean {100 * row['val_clean']:.1f}%, "
                  f"val PGD-{p['pgd_steps']} {100 * row['val_pgd']:.1f}%")
            rows.append(row)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
    return write_ablation(out, p, args, rows, variants)


def write_ablation(out: Path, p: dict, args, rows: list[dict], variants: list[str]) -> str:
    """ablation.md: one row per variant, with its validation PGD accuracy minus PGD-AT's on the
    same seed and split (paired), when the PGD-AT reference was run."""
    by = {v: [r for r in rows if r["variant"] == v] for v in variants}
    clead = [v for v in variants if "objective" not in VARIANTS[v] and by[v]]
    best = max(clead, key=lambda v: interval([r["val_pgd"] for r in by[v]])[0]) if clead else None
    ref = {r["seed"]: r["val_pgd"] for r in rows if r["variant"] == "PGD-AT (reference)"}
    k = p["pgd_steps"]
    lines = [f"# C-LEAD ablation: {p['dataset']}, preset {p['preset']}", "",
             f"Trained on {100 * (1 - args.val_fraction):.0f}% of the training images, scored on the held-out "
             f"{100 * args.val_fraction:.0f}% (validation; the test split is not used). Seeds {args.seeds}; "
             f"every variant starts from lam {p['lam']}, tau {p['tau']}, mu {p['mu']}, positives "
             f"{p['positives']}, head {p['head_dim'] or 'none'}; {p['epochs']} epochs, eps {p['eps']:.4g}, "
             f"training PGD-{p['train_steps']}. Accuracy in %, mean ± 95% interval over seeds; the last "
             f"column is paired (same seed, same split).", "",
             f"| variant | val clean | val PGD-{k} | val PGD-{k} minus PGD-AT | train time (s) |",
             "|---|---:|---:|---:|---:|"]
    for v in [v for v in variants if by[v]]:
        r, mark = by[v], " **(chosen)**" if v == best else ""
        diff = [x["val_pgd"] - ref[x["seed"]] for x in r if x["seed"] in ref]
        lines.append(f"| {v}{mark} | {fmt([x['val_clean'] for x in r])} | {fmt([x['val_pgd'] for x in r])} "
                     f"| {fmt(diff) if diff else 'n/a'} | {sum(x['train_seconds'] for x in r) / len(r):.0f} |")
    lines += ["", f"Chosen by mean validation PGD-{k} accuracy: **{best}** ({VARIANTS.get(best) or 'no change'})."]
    text = "\n".join(lines) + "\n"
    (out / "ablation.md").write_text(text)
    return text
