"""The main job: train every compared model with the same budget, evaluate, draw, write.

    cfg = data.from_preset("quick", "digits")
    out = pipeline.run(cfg, pipeline.out_dir(cfg, None))    # runs/digits-quick-seed0/

`run` trains every arm asked for (by default the preset's: standard, PGD-AT, TRADES and
C-LEAD) with the same data, model, schedule and attack budget, evaluates each
(`evaluate_model`), draws the figures and writes metrics.json and report.md
(`report.write_report`). An arm is an objective with changed settings, 'clead[lam=0]'.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import torch

from . import data as D
from . import evaluate as E
from . import features
from . import plots as P
from .attacks import pgd
from .checkpoints import atomic_write
from .config import COMPARED, RunConfig
from .device import pick_device, pick_precision
from .objectives import arm, arm_key, get, label
from .report import write_report
from .threads import set_threads
from .train import train_arm


def run(cfg: RunConfig, out: Path, *, objectives=COMPARED, device: str = "auto", data_root="data",
        resume: bool = False, figures: bool = True, progress: bool = True, threads=None) -> Path:
    """Train and evaluate every objective in `objectives` into `out`; returns `out`.
    `threads`: CPU threads (default: `threads.set_threads` sizes them)."""
    t0, dev = time.time(), pick_device(device)
    set_threads(threads)
    data = D.get_data(cfg.dataset, data_root, seed=cfg.seed)
    print(f"[clead_edu] {cfg.dataset} ({len(data.train)} train / {len(data.test)} test images, "
          f"{data.num_classes} classes), preset {cfg.preset}, writing to {out}")
    train_set = D.subset(data.train, cfg.train_n, cfg.seed)
    x, y, ids = evaluation_images(data, cfg)
    eps_grid = check_grid(cfg.eps) if not figures else [cfg.eps * i / 4 for i in range(9)]  # 0 .. 2 eps
    test_set = D.subset(data.test, cfg.eval.eval_n, cfg.seed)    # clean test accuracy per epoch
    models, results, times = {}, {}, {}
    for key in order(objectives):
        t, folder = time.time(), out / key
        models[key], hist = train_arm(arm_config(cfg, key), data, cfg.arch, train_set, dev, start_from=models.get,
                                      out_dir=folder, resume=resume, progress=progress, test_set=test_set)
        times[key] = time.time() - t
        results[key] = evaluate_kept(models[key], x, y, cfg, eps_grid, folder, label(key)) | {
            "history": hist, "train_seconds": times[key]}
        print(f"[clead_edu] {label(key)}: " + ", ".join(
            f"{k} {100 * v:.1f}%" for k, v in results[key]["accuracy"].items()))
    feats = feature_space(models, x, y, cfg, data, out, umap=figures)   # the pair metrics, always
    pictures = draw_figures(models, results, x, y, cfg, data, out, eps_grid) if figures else []
    times["total"] = time.time() - t0
    images = {"train": len(train_set), "eval": len(y), "eval_ids": ids}
    metrics = {"settings": cfg.to_dict(), "images": images, "device": str(dev), "torch": torch.__version__,
               "precision": pick_precision(cfg.train.precision, dev, cfg.train.fast), "eps_grid": eps_grid,
               "models": results, "feature_space": feats, "seconds": times}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    write_report(out, cfg, results, feats, pictures, times, images)
    print(f"[clead_edu] done in {times['total']:.0f} s: {out / 'report.md'}")
    return out


def evaluation_images(data, cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The eval_n test images, in a class-balanced random order (`data.balanced_order`), so the
    first curve_n (eps curve, sanity checks), aa_n (AutoAttack) and umap_n images are
    class-balanced random subsets, also when the test set is a class-sorted folder; and each
    one's index in the test set (the same image keeps its index across seeds)."""
    x, y = D.take(data.test, cfg.eval.eval_n, cfg.seed)
    ids = D.subset_ids(len(data.test), cfg.eval.eval_n, cfg.seed)
    order = D.balanced_order(y, cfg.seed)
    return x[order], y[order], ids[order].tolist()


def arm_config(cfg: RunConfig, key: str):
    """The TrainConfig of arm `key` in this run: the run's settings changed by the arm's."""
    objective, changes = arm(key)
    return cfg.for_objective(objective, **changes)


def order(objectives) -> list[str]:
    """The arms (checked, in their one spelling) in training order: the objectives others start
    from (`objectives.start_of`) first, added if they were not asked for (and reported too),
    then the rest as given. ValueError for an unknown objective or setting, before anything trains."""
    keys = [arm_key(o) for o in objectives]
    sources = [arm(k)[1].get("start") or get(arm(k)[0]).starts_from for k in keys]
    return list(dict.fromkeys([*filter(None, sources), *keys]))


def check_grid(eps: float) -> list[float]:
    """The eps values the sanity checks need: 0, eps/2, eps, 2 eps."""
    return [0.0, eps / 2, eps, 2 * eps]


def evaluate_kept(model, x, y, cfg: RunConfig, eps_grid: list[float], folder: Path, label: str) -> dict:
    """`evaluate_model`, kept in folder/evaluation.json with what it depends on (the weights'
    SHA-256, the settings, the eps grid, the images' SHA-256): a resumed or repeated run reads
    it back instead of attacking the same model again (an AutoAttack evaluation can take an hour)."""
    key = {"weights_sha256": weights_sha256(model), "settings": cfg.to_dict(), "eps_grid": eps_grid,
           "images_sha256": hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()}
    path = folder / "evaluation.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("key") == key:
            print(f"[clead_edu] {label}: evaluation read back from {path} (same weights, settings and images)")
            return kept["result"]
    print(f"[clead_edu] evaluating {label} ...")
    result = evaluate_model(model, x, y, cfg, eps_grid)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps({"key": key, "result": result}, indent=1)))
    return result


def weights_sha256(model) -> str:
    """SHA-256 of the model's state (every tensor's name, shape, dtype and bytes, in order)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def bits(correct: torch.Tensor) -> str:
    """(N,) bool -> '0110...': which evaluation images (in `evaluation_images` order) survived."""
    return "".join("1" if c else "0" for c in correct.tolist())


def evaluate_model(model, x, y, cfg: RunConfig, eps_grid: list[float]) -> dict:
    """Every attack on the first aa_n eval images ('accuracy'), clean/FGSM/PGD on all of them
    ('accuracy_eval'), per-example correctness under each ('correct', `bits`, for intervals
    that resample images), worst case, eps curve, checks."""
    ev = cfg.eval
    res = E.robustness(model, x, y, eps=cfg.eps, pgd_steps=ev.pgd_steps, restarts=ev.restarts,
                       extra_pgd_steps=ev.extra_pgd_steps, extra_restarts=ev.extra_restarts,
                       autoattack=ev.autoattack, aa_n=ev.aa_n, aa_check_n=ev.aa_check_n, seed=cfg.seed)
    nc = min(ev.curve_n, len(x))
    curve = E.eps_curve(model, x[:nc], y[:nc], eps_grid, steps=ev.pgd_steps)
    at = [curve[eps_grid.index(e)] for e in check_grid(cfg.eps)]   # the grid contains 0, eps/2, eps, 2eps
    checks = E.sanity_checks(model, x[:nc], y[:nc], eps=cfg.eps, steps=ev.pgd_steps, curve=at)
    checks += E.attack_checks(res)
    return {"accuracy": res["accuracy"], "accuracy_eval": res["accuracy_eval"],
            "correct": {k: bits(v) for k, v in res["correct"].items()},
            "worst_case_n": res["worst_case_n"], "eval_n": res["eval_n"], "eps_curve": curve,
            "sanity_checks": checks, "autoattack_flags": res["autoattack_flags"]} | (
        {"autoattack_check": res["autoattack_check"]} if "autoattack_check" in res else {})


def draw_figures(models: dict, results: dict, x, y, cfg: RunConfig, data, out: Path, eps_grid) -> list[str]:
    """The example and eps-curve figures in `out` (and the UMAP one, drawn by `feature_space`);
    returns their file names."""
    files = example_figures(models, x, y, cfg, data, out)
    P.eps_curves(eps_grid, {label(k): r["eps_curve"] for k, r in results.items()}, train_eps=cfg.eps,
                 attack=f"PGD-{cfg.eval.pgd_steps}").savefig(out / "accuracy_vs_eps.png", dpi=110)
    files.append("accuracy_vs_eps.png")
    logged = {label(k): r["history"] for k, r in results.items() if any("train_supcon" in h for h in r["history"])}
    if logged:
        P.contrastive_term(logged).savefig(out / "contrastive_term.png", dpi=110)
        files.append("contrastive_term.png")
    if (out / "umap_pairs.png").exists():
        files.append("umap_pairs.png")
    return files


def feature_space(models: dict, x, y, cfg: RunConfig, data, out: Path, umap: bool = True) -> dict:
    """Pair metrics for every model on the first umap_n images ({} when umap_n is 0); with
    `umap`, also the UMAP pictures of the objectives whose record asks for figures."""
    n = min(cfg.eval.umap_n, len(x))
    if n == 0:
        return {}
    metrics, panels = {}, {}
    for name, model in models.items():
        torch.manual_seed(cfg.seed)
        pairs = features.embed_pairs(model, x[:n], y[:n], eps=cfg.eps, steps=cfg.eval.pgd_steps)
        m = metrics[name] = features.pair_metrics(pairs)
        if umap and with_figures(name):
            sub = (f"pair dist {m['pair_distance']:.3f} (rel. {m['relative_pair_distance']:.2f}), "
                   f"adv NN acc {m['adv_nn_accuracy']:.2f}")
            panels[label(name)] = (features.umap_2d(pairs, seed=cfg.seed), pairs.y.numpy(), sub)
    if panels:
        P.umap_side_by_side(panels, data.classes).savefig(out / "umap_pairs.png", dpi=110)
    return metrics


def with_figures(key: str) -> bool:
    """Whether the main job draws arm `key`'s figures: its objective's record asks for them
    (`Objective.figures`) and the arm changes no setting."""
    objective, changes = arm(key)
    return get(objective).figures and not changes


def example_figures(models: dict, x, y, cfg: RunConfig, data, out: Path) -> list[str]:
    """Clean image, perturbation, adversarial image for 8 test images, for each model whose
    record asks for figures."""
    files = []
    for name in filter(with_figures, models):
        model = models[name]
        torch.manual_seed(cfg.seed)
        x_adv = E.attack_all(model, x[:8], y[:8], pgd, eps=cfg.eps, steps=cfg.eval.pgd_steps)
        fig = P.adversarial_examples(x[:8], x_adv, y[:8], E.predict(model, x[:8]), E.predict(model, x_adv),
                                     data.classes, title=f"{label(name)} model under "
                                     f"PGD-{cfg.eval.pgd_steps}, eps {cfg.eps:.4g}")
        fig.savefig(out / f"adversarial_examples_{name}.png", dpi=110)
        files.append(f"adversarial_examples_{name}.png")
    return files


# ----------------------------------------------------------------------------- output folders

def out_dir(cfg: RunConfig, out: str | None, kind: str | None = None, *, reuse: bool = False) -> Path:
    """The output folder: `out`, or runs/<dataset>-<preset>-<kind>. An existing folder gets a
    new suffix (-2, -3, ...) unless `reuse` (--overwrite, --resume, or a study/ablation, which
    continue in theirs)."""
    kind = kind or f"seed{cfg.seed}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{Path(cfg.dataset).name}-{cfg.preset}-{kind}")
    first = Path(out) if out else Path("runs") / name
    if reuse:
        first.mkdir(parents=True, exist_ok=True)
        return first
    path, i = first, 2
    while not claim_dir(path):             # in use, or taken a moment ago by a run started at once
        path, i = Path(f"{first}-{i}"), i + 1
    if path != first:
        print(f"[clead_edu] {first} exists; writing to {path} (use --overwrite to reuse it)")
    return path


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
