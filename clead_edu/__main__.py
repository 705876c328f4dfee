"""The main job: `python -m clead_edu run` trains standard, PGD-AT, TRADES and C-LEAD
models with the same data, model and budget, evaluates each, and writes
runs/<name>/report.md, metrics.json and PNG figures.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import torch

from . import data as D
from . import evaluate as E
from . import features as F
from . import plots as P
from . import study as S
from .attacks import pgd
from .models import model_for
from .presets import PRESETS, preset
from .train import TrainConfig, pick_device, seed_everything, train

OBJECTIVES = ("standard", "pgd_at", "trades", "clead")
LABELS = {"standard": "Standard", "pgd_at": "PGD-AT", "trades": "TRADES", "clead": "C-LEAD",
          "fgsm_at": "FGSM-AT"}


def add_run_options(r: argparse.ArgumentParser) -> None:
    """The options shared by `run`, `study` and `ablate`: data, preset, budget, C-LEAD knobs."""
    r.add_argument("--dataset", default="digits",
                   help="digits (offline) | cifar10 | cifar100 | imagenette | folder:PATH")
    r.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                   help="quick: CPU, minutes; full: GPU, paper scale")
    r.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 ...")
    r.add_argument("--epochs", type=int, help="training epochs per model (default: from the preset)")
    r.add_argument("--out", help="output folder (default: runs/<dataset>-<preset>-...)")
    r.add_argument("--overwrite", action="store_true", help="reuse an existing output folder")
    r.add_argument("--resume", action="store_true", help="continue interrupted training in --out")
    r.add_argument("--objectives", default=",".join(OBJECTIVES),
                   help="comma-separated subset of " + ",".join(OBJECTIVES))
    r.add_argument("--data-root", default="data", help="where datasets are downloaded")
    g = r.add_argument_group("threat model and budget (defaults: preset and dataset)")
    g.add_argument("--arch", help="small_cnn | preact_resnet18 | wide_resnet | resnet18")
    g.add_argument("--eps", type=float, help="L-inf radius in pixel units, e.g. 0.0314 (=8/255)")
    g.add_argument("--alpha", type=float, help="PGD step inside training, pixel units (default eps/4)")
    g.add_argument("--train-steps", type=int, help="PGD steps inside adversarial training")
    g.add_argument("--train-n", type=int, help="training images used (subset)")
    g.add_argument("--eval-n", type=int, help="test images for clean/FGSM/PGD")
    g.add_argument("--extra-pgd-steps", type=int, help="also run PGD with this many steps (e.g. 50)")
    g.add_argument("--extra-restarts", type=int, help="restarts of that PGD (robust = survives all)")
    g.add_argument("--autoattack", choices=["standard", "quick", "none"], help="AutoAttack version")
    g.add_argument("--aa-n", type=int, help="test images for AutoAttack (0 = skip)")
    g.add_argument("--umap-n", type=int, help="test images in the UMAP pictures")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    c = r.add_argument_group("C-LEAD knobs (design.md)")
    c.add_argument("--lam", type=float, default=1.0, help="weight of the contrastive term")
    c.add_argument("--tau", type=float, default=0.1, help="SupCon temperature")
    c.add_argument("--mu", type=float, default=0.0, help="weight of the representation term in the attack")
    c.add_argument("--positives", default="class", choices=["class", "pair"])
    c.add_argument("--head-dim", type=int, default=0, help="projection head size (0 = none)")
    r.add_argument("--beta", type=float, default=6.0, help="TRADES beta")
    r.add_argument("--fast", default="auto", choices=["auto", "on", "off"],
                   help="fast path (data on the device, bf16 autocast in training, channels_last); "
                        "auto = on for the full preset on CUDA")
    r.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    r.add_argument("--no-figures", action="store_true", help="skip the example, eps-curve and UMAP figures")
    r.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m clead_edu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    r = sub.add_parser("run", help="train and compare standard / PGD-AT / TRADES / C-LEAD", formatter_class=fmt)
    add_run_options(r)
    r.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("study", help="`run` for several seeds, then means and 95%% intervals", formatter_class=fmt)
    add_run_options(s)
    s.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    a = sub.add_parser("ablate", help="C-LEAD variants on a validation split of the training data",
                       formatter_class=fmt)
    add_run_options(a)
    a.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    a.add_argument("--val-fraction", type=float, default=0.2, help="share of the training images held out")
    a.add_argument("--variants", default=",".join(S.VARIANTS),
                   help="comma-separated subset of " + ",".join(S.VARIANTS))
    return ap


def settings(args) -> dict:
    """The preset for args.dataset, overridden by every option given on the command line."""
    p = preset(args.preset, args.dataset)
    for key in ("arch", "epochs", "train_steps", "train_n", "eval_n", "extra_pgd_steps", "extra_restarts",
                "autoattack", "aa_n", "umap_n", "batch_size", "lr"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    if p["autoattack"] == "none":
        p["autoattack"], p["aa_n"] = None, 0
    if args.eps is not None:
        if not args.eps > 0:
            raise SystemExit(f"error: --eps must be > 0, got {args.eps}")
        if args.eps > 1:
            raise SystemExit(f"error: --eps {args.eps} is in 0-255 units; pass {args.eps / 255:.5f} (= {args.eps:g}/255)")
        p["alpha"] *= args.eps / p["eps"]   # keep the dataset's step/eps ratio (1/4)
        p["eps"] = args.eps
    if args.alpha is not None:
        if not 0 < args.alpha <= 1:
            raise SystemExit(f"error: --alpha must be in (0, 1] (pixel units), got {args.alpha}")
        p["alpha"] = args.alpha
    auto = p["fast"] and pick_device(args.device, verbose=False).type == "cuda"
    p["fast"] = {"on": True, "off": False}.get(args.fast, auto)        # auto: the preset's, on CUDA
    p["compile"] = args.compile
    p.update(seed=getattr(args, "seed", 0), lam=args.lam, tau=args.tau, mu=args.mu, positives=args.positives,
             head_dim=args.head_dim, beta=args.beta)
    return p


def out_dir(args, kind: str | None = None) -> Path:
    """runs/<name>; an existing folder gets a new suffix unless --overwrite or --resume
    (`study` and `ablate` always continue in theirs: see study.claim)."""
    kind = kind or f"seed{args.seed}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{Path(args.dataset).name}-{args.preset}-{kind}")
    out = Path(args.out) if args.out else Path("runs") / name
    if args.overwrite or args.resume or kind in ("study", "ablation"):
        out.mkdir(parents=True, exist_ok=True)
        return out
    first, i = out, 2
    while not claim_dir(out):             # in use, or taken a moment ago by a run started at once
        out, i = Path(f"{first}-{i}"), i + 1
    if out != first:
        print(f"[clead_edu] {first} exists; writing to {out} (use --overwrite to reuse it)")
    return out


def check_grid(eps: float) -> list[float]:
    """The eps values the sanity checks need: 0, eps/2, eps, 2 eps."""
    return [0.0, eps / 2, eps, 2 * eps]


def claim_dir(out: Path) -> bool:
    """Make `out` this run's folder if it is new or empty: creates out/.clead_edu_run with
    O_EXCL, which only one process can do, so two runs started at once never share a folder."""
    out.mkdir(parents=True, exist_ok=True)
    if any(f.name != ".clead_edu_run" for f in out.iterdir()):
        return False
    try:
        fd = os.open(out / ".clead_edu_run", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, f"pid {os.getpid()}\n".encode())
    os.close(fd)
    return True


def evaluate_model(model, x, y, p: dict, eps_grid: list[float]) -> dict:
    """Clean/FGSM/PGD on the eval images, AutoAttack on the first aa_n, worst case, eps curve, checks."""
    res = E.robustness(model, x, y, eps=p["eps"], pgd_steps=p["pgd_steps"], restarts=p["restarts"],
                       extra_pgd_steps=p["extra_pgd_steps"], extra_restarts=p["extra_restarts"],
                       autoattack_version=p["autoattack"],
                       aa_n=p["aa_n"], seed=p["seed"])
    nc = min(p["curve_n"], len(x))
    curve = E.eps_curve(model, x[:nc], y[:nc], eps_grid, steps=p["pgd_steps"])
    at = [curve[eps_grid.index(e)] for e in check_grid(p["eps"])]   # the grid contains 0, eps/2, eps, 2eps
    checks = E.sanity_checks(model, x[:nc], y[:nc], eps=p["eps"], steps=p["pgd_steps"], curve=at)
    checks += E.attack_checks(res)
    return {"accuracy": res["accuracy"], "worst_case_n": res["worst_case_n"], "eps_curve": curve,
            "sanity_checks": checks, "autoattack_flags": res["autoattack_flags"]}


def feature_space(models: dict, x, y, p: dict, data, out: Path) -> dict:
    """Pair metrics for every model; UMAP pictures for standard, PGD-AT and C-LEAD."""
    n = min(p["umap_n"], len(x))
    metrics, panels = {}, {}
    for name, model in models.items():
        torch.manual_seed(p["seed"])
        pairs = F.embed_pairs(model, x[:n], y[:n], eps=p["eps"], steps=p["pgd_steps"])
        m = metrics[name] = F.pair_metrics(pairs)
        if name in ("standard", "pgd_at", "clead"):
            sub = f"pair dist {m['pair_distance']:.3f} (rel. {m['relative_pair_distance']:.2f}), adv NN acc {m['adv_nn_accuracy']:.2f}"
            panels[LABELS[name]] = (F.umap_2d(pairs, seed=p["seed"]), pairs.y.numpy(), sub)
    if panels:
        P.umap_side_by_side(panels, data.classes).savefig(out / "umap_pairs.png", dpi=110)
    return metrics


def example_figures(models: dict, x, y, p: dict, data, out: Path) -> list[str]:
    files = []
    for name in [k for k in ("standard", "clead") if k in models]:
        model = models[name]
        torch.manual_seed(p["seed"])
        x_adv = E.attack_all(model, x[:8], y[:8], pgd, eps=p["eps"], steps=p["pgd_steps"])
        fig = P.adversarial_examples(x[:8], x_adv, y[:8], E.predict(model, x[:8]), E.predict(model, x_adv),
                                     data.classes, title=f"{LABELS[name]} model under PGD-{p['pgd_steps']}, eps {p['eps']:.4g}")
        fig.savefig(out / f"adversarial_examples_{name}.png", dpi=110)
        files.append(f"adversarial_examples_{name}.png")
    return files


def write_report(out: Path, p: dict, results: dict, feats: dict, figures: list[str], times: dict) -> None:
    """report.md: settings, results table, sanity-check warnings, feature numbers, figures."""
    cols = list(next(iter(results.values()))["accuracy"])
    lines = [f"# clead_edu run: {p['dataset']}, preset {p['preset']}", "",
             f"Model {p['arch']}, {p['epochs']} epochs, L-inf eps {p['eps']:.4g} "
             f"({p['eps'] * 255:.1f}/255), training PGD-{p['train_steps']}, seed {p['seed']}. "
             f"C-LEAD: lam {p['lam']}, tau {p['tau']}, mu {p['mu']}, positives {p['positives']}, "
             f"head {p['head_dim'] or 'none'}. AutoAttack: {p['autoattack']} version on {p['aa_n']} images; "
             f"worst case = per-example minimum over all attacks on those images.", "",
             "## Accuracy (%)", "", "| model | " + " | ".join(cols) + " | train time (s) |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for name, r in results.items():
        cells = [f"{100 * r['accuracy'][c]:.1f}" for c in cols]
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + f" | {times[name]:.0f} |")
    lines += ["", "## Sanity checks", ""]
    for name, r in results.items():
        for c in r["sanity_checks"]:
            mark = "ok" if c["passed"] else "**WARNING: failed**"
            lines.append(f"- {LABELS[name]}: {c['check']}: {mark} ({c['detail']})")
    lines += ["", "## Feature space (clean vs adversarial twins)", "",
              "| model | pair distance | relative to class centroids | adv. nearest-clean-neighbour acc. |",
              "|---|---:|---:|---:|"]
    for name, m in feats.items():
        lines.append(f"| {LABELS[name]} | {m['pair_distance']:.3f} | {m['relative_pair_distance']:.3f} | "
                     f"{100 * m['adv_nn_accuracy']:.1f}% |")
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    lines += ["", f"Total time: {times['total']:.0f} s."]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def run(args) -> Path:
    t0 = time.time()
    p = settings(args)
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad:
        raise SystemExit(f"error: unknown objective(s) {bad}; choose from {','.join(OBJECTIVES)}")
    device = pick_device(args.device)
    data = D.get_data(args.dataset, args.data_root, seed=p["seed"])
    out = out_dir(args)
    print(f"[clead_edu] {p['dataset']} ({len(data.train)} train / {len(data.test)} test images, "
          f"{data.num_classes} classes), preset {p['preset']}, writing to {out}")
    train_set = D.subset(data.train, p["train_n"], p["seed"])
    x, y = D.take(data.test, p["eval_n"], p["seed"])
    eps_grid = check_grid(p["eps"]) if args.no_figures else [p["eps"] * i / 4 for i in range(9)]  # 0 .. 2 eps
    models, results, times = {}, {}, {}
    for obj in objectives:
        seed_everything(p["seed"])
        model = model_for(data, p["arch"]).to(device)
        t = time.time()
        hist = train(model, train_set, TrainConfig.from_preset(obj, p), test_set=D.subset(data.test, p["eval_n"], p["seed"]),
                     out_dir=out / obj, resume=args.resume, progress=not args.no_progress)
        times[obj] = time.time() - t
        print(f"[clead_edu] evaluating {LABELS[obj]} ...")
        results[obj] = evaluate_model(model, x, y, p, eps_grid) | {"history": hist, "train_seconds": times[obj]}
        print(f"[clead_edu] {LABELS[obj]}: " + ", ".join(
            f"{k} {100 * v:.1f}%" for k, v in results[obj]["accuracy"].items()))
        models[obj] = model
    figures, feats = [], {}
    if not args.no_figures:
        figures = example_figures(models, x, y, p, data, out)
        P.eps_curves(eps_grid, {LABELS[k]: r["eps_curve"] for k, r in results.items()},
                     train_eps=p["eps"], attack=f"PGD-{p['pgd_steps']}").savefig(out / "accuracy_vs_eps.png", dpi=110)
        figures.append("accuracy_vs_eps.png")
        feats = feature_space(models, x, y, p, data, out)
        if (out / "umap_pairs.png").exists():
            figures.append("umap_pairs.png")
    times["total"] = time.time() - t0
    metrics = {"settings": p, "device": str(device), "torch": torch.__version__, "eps_grid": eps_grid,
               "models": results, "feature_space": feats, "seconds": times}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    write_report(out, p, results, feats, figures, times)
    print(f"[clead_edu] done in {times['total']:.0f} s: {out / 'report.md'}")
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    try:
        if args.command == "run":
            run(args)
        elif args.command == "study":
            out = S.claim(out_dir(args, "study"), settings(args), args.overwrite)
            text = S.write_summary(out, S.seed_metrics(args, run, settings, out), LABELS,
                                   "python -m clead_edu " + " ".join(sys.argv[1:] if argv is None else argv))
            print(text + f"[clead_edu] written: {out / 'summary.md'}")
        else:
            p = settings(args)
            out = S.claim(out_dir(args, "ablation"), p | {"val_fraction": args.val_fraction}, args.overwrite)
            print(S.ablate(args, p, out) + f"[clead_edu] written: {out / 'ablation.md'}")
    except (D.DatasetUnavailable, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
