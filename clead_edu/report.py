"""The report writers: report.md of one run, summary.md of a study, ablation.md; `table`
for the notebooks' plain-text tables.

Each takes the settings as a `config.RunConfig` and the numbers as plain dicts
(the contents of metrics.json), and writes Markdown with the command beside it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .config import DEFENSE, REFERENCE, RunConfig, parse_arm
from .objectives import get, label

def table(rows: dict, formats: dict | None = None) -> str:
    """rows {name: {column: value}} as aligned plain text, one line per name (the notebooks'
    tables). `formats` {column: format} picks the columns and writes their values; default:
    every column of the first row as a percentage ('{:.1%}': 0.453 -> '45.3%')."""
    formats = formats or dict.fromkeys(next(iter(rows.values())), "{:.1%}")
    cells = {name: [f.format(r[c]) for c, f in formats.items()] for name, r in rows.items()}
    first = max(len(n) for n in [*rows, "model"])
    widths = [max(len(c), *(len(v[i]) for v in cells.values())) for i, c in enumerate(formats)]
    lines = [[f"{'model':<{first}}", *formats], *([name, *v] for name, v in cells.items())]
    return "\n".join(f"{line[0]:<{first}}" + "".join(f"  {v:>{w}}" for v, w in zip(line[1:], widths))
                     for line in lines)


def interval(values: list[float], conf: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (nan with one value)."""
    from scipy.stats import t
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t.ppf(0.5 + conf / 2, n - 1) * sd / math.sqrt(n)


def fmt(values: list[float], scale: float = 100.0, decimals: int = 1) -> str:
    """'mean ± half' in percent (or '± n/a' for a single value); scale 1, decimals 3 for distances."""
    m, h = interval(values)
    return f"{scale * m:.{decimals}f} ± " + (f"{scale * h:.{decimals}f}" if not math.isnan(h) else "n/a")


def describe(cfg: RunConfig, images: dict | None = None) -> str:
    """One paragraph: model, budget, threat model, C-LEAD knobs (those an arm's name does not set:
    'clead[head_dim=128]' has a head whatever this says), AutoAttack. `images`: the numbers
    of images actually used ({'train': n, 'eval': n}, from metrics.json), else the settings."""
    t, e = cfg.train, cfg.eval
    n_train = images["train"] if images else (cfg.train_n or "all")
    used = f" and {images['eval']} test images" if images else ""
    return (f"Model {cfg.arch}, {t.epochs} epochs, {n_train} training images{used}, L-inf eps "
            f"{t.eps:.4g} ({t.eps * 255:.1f}/255), training PGD-{t.train_steps} (step {t.alpha:.4g}), seed "
            f"{t.seed}. C-LEAD, unless an arm's name changes it: lam {t.lam}{f' (ramped over {t.lam_ramp} epochs)' if t.lam_ramp else ''}, tau "
            f"{t.tau}, mu {t.mu}, positives {t.positives}, head {t.head_dim or 'none'}; clean and adversarial "
            f"views {'in one BatchNorm batch' if t.joint_bn else 'through BatchNorm separately'}"
            f"{' (running statistics from the adversarial view only)' if t.bn_stats_adv_only else ''}"
            f"{'; the released head reads the logits' if t.head_input == 'logits' else ''}"
            f". {autoattack_words(e)}; worst case = per-example minimum over every attack"
            f"{' on the AutoAttack images' if e.autoattack and e.aa_n else ''}. "
            f"Every column of a row uses the same images.")


def autoattack_words(e) -> str:
    """The AutoAttack part of `describe`: which version on how many images, or that it was not run."""
    if not e.autoattack or not e.aa_n:
        return "AutoAttack: not run"
    check = f", checked by the standard version on the first {e.aa_check_n}" if e.aa_check_n else ""
    return f"AutoAttack: {e.autoattack} version on the first {e.aa_n} test images (all of them if fewer){check}"


def write_report(out: Path, cfg: RunConfig, results: dict, feats: dict, figures: list[str], times: dict,
                 images: dict | None = None) -> None:
    """report.md: settings, results table, sanity-check warnings, feature numbers, figures."""
    cols = list(next(iter(results.values()))["accuracy"])
    lines = [f"# clead_edu run: {cfg.dataset}, preset {cfg.preset}", "", describe(cfg, images), "",
             "## Accuracy (%)", "", "| model | " + " | ".join(cols) + " | train time (s) |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for name, r in results.items():
        cells = [f"{100 * r['accuracy'][c]:.1f}" for c in cols]
        lines.append(f"| {label(name)} | " + " | ".join(cells) + f" | {times[name]:.0f} |")
    lines += eval_table(results) + aa_check_table({k: [r] for k, r in results.items()})
    lines += term_lines(results)
    lines += ["", "## Sanity checks", ""] + check_lines(results)
    lines += ["", "## Feature space (clean vs adversarial twins)", ""] + feature_lines(feats, cfg, images)
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    lines += ["", f"Total time: {times['total']:.0f} s."]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def term_lines(results: dict) -> list[str]:
    """The last training epoch's cross-entropy and contrastive term of each model that logged
    them, against the term's yardsticks for a batch ([] when none did)."""
    last = {name: r["history"][-1] for name, r in results.items()
            if r.get("history") and "train_supcon" in r["history"][-1]}
    if not last:
        return []
    lines = ["", "## The contrastive term in training", "",
             "Last epoch, means over its batches, in nats. Uniform: the term when every similarity is "
             "equal (ln(2B - 1) with class positives); floor: its lowest possible value for the batch "
             "(mean ln of the number of positives). Share trained: how far the term has come from "
             "uniform towards its floor. (A lam-0 control measures the term without training it.)", "",
             "| model | cross-entropy | SupCon | uniform | floor | share trained |", "|---|---:|---:|---:|---:|---:|"]
    for name, h in last.items():
        share = (h["train_supcon_uniform"] - h["train_supcon"]) / (h["train_supcon_uniform"] - h["train_supcon_floor"])
        lines.append(f"| {label(name)} | {h['train_ce']:.3f} | {h['train_supcon']:.3f} | "
                     f"{h['train_supcon_uniform']:.3f} | {h['train_supcon_floor']:.3f} | {100 * share:.0f}% |")
    return lines


def feature_lines(feats: dict, cfg: RunConfig, images: dict | None = None) -> list[str]:
    """The pair-metric table (`features.pair_metrics` of each model), or one sentence saying
    why there is none: never a table without rows."""
    n = min(cfg.eval.umap_n, images["eval"]) if images else cfg.eval.umap_n
    if not feats:
        return [f"Not measured in this run: the pair metrics use the first umap_n test images, "
                f"and umap_n was {cfg.eval.umap_n}."]
    lines = [f"On the first {n} evaluation images, attacked with PGD-{cfg.eval.pgd_steps} at eps "
             f"{cfg.eps:.4g} against each model. Pair distance: mean 1 - cos between an image's embedding and "
             f"its adversarial twin's; the nearest-neighbour accuracy looks for each adversarial embedding's "
             f"nearest clean embedding among the other {n - 1} images (its own twin left out).", "",
             "| model | pair distance | relative to class centroids | adv. nearest-clean-neighbour acc. |",
             "|---|---:|---:|---:|"]
    return lines + [f"| {label(name)} | {m['pair_distance']:.3f} | {m['relative_pair_distance']:.3f} | "
                    f"{100 * m['adv_nn_accuracy']:.1f}% |" for name, m in feats.items()]


def eval_table(results: dict) -> list[str]:
    """When AutoAttack ran on fewer images than the rest: a second table with the attacks other
    than AutoAttack on all the evaluation images (the first table keeps one image set per row)."""
    r0 = next(iter(results.values()))
    if "accuracy_eval" not in r0 or r0["worst_case_n"] >= r0["eval_n"]:
        return []
    cols = list(r0["accuracy_eval"])
    lines = ["", f"The table above uses the first {r0['worst_case_n']} evaluation images (those AutoAttack "
             f"ran on) in every column. Without AutoAttack, on all {r0['eval_n']} evaluation images:", "",
             "| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    return lines + [f"| {label(name)} | " + " | ".join(f"{100 * r['accuracy_eval'][c]:.1f}" for c in cols)
                    + " |" for name, r in results.items()]


def aa_check_table(runs: dict) -> list[str]:
    """runs {model: [result of each seed]}: when the standard AutoAttack ran as a check of the
    version used (`evaluate.standard_check`), a table of both on the same images and their
    difference (mean ± 95% interval over seeds); [] otherwise."""
    rows = {name: [r["autoattack_check"] for r in rs if "autoattack_check" in r] for name, rs in runs.items()}
    rows = {name: c for name, c in rows.items() if c}
    if not rows:
        return []
    n = sorted({c["n"] for cs in rows.values() for c in cs})
    lines = ["", f"AutoAttack check: the standard AutoAttack on the first {'/'.join(map(str, n))} of the "
             "AutoAttack images (per seed) beside the version in the table, on the same images, in %:", "",
             "| model | standard | version used | version − standard |", "|---|---:|---:|---:|"]
    return lines + [f"| {label(name)} | {fmt([c['standard'] for c in cs])} | {fmt([c['version'] for c in cs])} | "
                    f"{fmt([c['version'] - c['standard'] for c in cs])} |" for name, cs in rows.items()]


def check_lines(results: dict) -> list[str]:
    """One Markdown bullet per sanity check of every model; failures marked as warnings."""
    return [f"- {label(name)}: {c['check']}: {'ok' if c['passed'] else '**WARNING: failed**'} ({c['detail']})"
            for name, r in results.items() for c in r["sanity_checks"]]


# ----------------------------------------------------------------------------- several seeds

def paired_with(name: str, present=()) -> tuple[str, ...]:
    """The arms of `present` a study subtracts from arm `name`: its objective's references
    (`Objective.paired`, e.g. PGD-AT; C-LEAD's own lam=0 control), never itself. A reference of
    the same objective keeps the arm's other changes, lam and tau aside: the control of
    'clead[head_dim=128,lam=1,tau=0.1]' is 'clead[head_dim=128,lam=0]'. Spellings are compared
    as parsed, so the order of the changes does not matter."""
    objective, changes = parse_arm(name)
    wanted = []
    for ref in get(objective).paired:
        ref_objective, ref_changes = parse_arm(ref)
        if ref_objective == objective:
            ref_changes = {k: v for k, v in changes.items() if k not in ("lam", "tau")} | ref_changes
        wanted.append((ref_objective, ref_changes))
    return tuple(p for w in wanted for p in present if parse_arm(p) == w and p != name)


def summarize(metrics: list[dict]) -> dict:
    """{'accuracy': {arm: {attack: [per-seed values]}}, 'paired': {reference: {arm: {attack:
    [arm - reference per seed]}}} (`paired_with`), 'paired_bootstrap': {reference: {arm: {attack:
    (mean, low, high)}}} (`paired_bootstrap`, where per-example correctness was kept),
    'paired_minus_pgd_at' (its PGD-AT entry) and 'clead_minus_pgd_at' (C-LEAD's entry there: the
    numbers lesson 08 reads), 'failed_checks': [str], 'feature_space' (`summarize_features`)} from
    the per-seed metrics.json."""
    acc, failed = {}, []
    for m in metrics:
        for name, r in m["models"].items():
            for attack, v in r["accuracy"].items():
                acc.setdefault(name, {}).setdefault(attack, []).append(v)
            failed += [f"seed {m['settings']['train']['seed']}, {name}: {c['check']} ({c['detail']})"
                       for c in r["sanity_checks"] if not c["passed"]]
    paired = {}
    for name in acc:
        for ref in paired_with(name, acc):
            paired.setdefault(ref, {})[name] = {k: [a - b for a, b in zip(acc[name][k], acc[ref][k])] for k in acc[name]}
    vs_pgd = paired.get(REFERENCE, {})
    boot = {ref: {name: b for name in rows if (b := paired_bootstrap(metrics, name, ref))}
            for ref, rows in paired.items()}
    return {"accuracy": acc, "paired": paired, "paired_bootstrap": {r: b for r, b in boot.items() if b},
            "clead_minus_pgd_at": vs_pgd.get(DEFENSE, {}),
            "paired_minus_pgd_at": vs_pgd, "failed_checks": failed, "feature_space": summarize_features(metrics)}


def paired_bootstrap(metrics: list[dict], name: str, ref: str, reps: int = 2000, seed: int = 0) -> dict:
    """{attack: (mean, low, high)}: `name` minus `ref` in accuracy, mean over seeds, with a 95%
    percentile interval from a two-level bootstrap that resamples the seeds and, within each
    seed, its evaluation images (the same images for both models: paired), so the interval
    holds both the training noise and the image sampling. From the per-example correctness
    kept in metrics.json ('correct'); {} when a seed lacks it."""
    import numpy as np
    rng = np.random.default_rng(seed)
    pairs = [(m["models"][name].get("correct"), m["models"][ref].get("correct")) for m in metrics]
    if any(a is None or b is None for a, b in pairs):
        return {}
    out = {}
    for attack in pairs[0][0]:
        diffs = [np.array(list(a[attack]), dtype=float) - np.array(list(b[attack]), dtype=float) for a, b in pairs]
        stats = []
        for _ in range(reps):
            chosen = rng.integers(len(diffs), size=len(diffs))
            stats.append(np.mean([diffs[s][rng.integers(len(diffs[s]), size=len(diffs[s]))].mean() for s in chosen]))
        out[attack] = (float(np.mean([d.mean() for d in diffs])), *map(float, np.percentile(stats, [2.5, 97.5])))
    return out


PAIR_METRICS = {"pair_distance": "pair distance", "relative_pair_distance": "relative to class centroids",
                "adv_nn_accuracy": "adv. nearest-clean-neighbour acc. (%)"}


def summarize_features(metrics: list[dict]) -> dict:
    """{'values': {model: {metric: [per-seed value]}}, 'paired': {model: {metric: [model - PGD-AT
    per seed]}}} of the pair metrics (`features.pair_metrics`, metrics.json's 'feature_space');
    {} unless every seed measured them."""
    vals = {}
    for m in metrics:
        for name, f in (m.get("feature_space") or {}).items():
            for k in PAIR_METRICS:
                vals.setdefault(name, {}).setdefault(k, []).append(f[k])
    if not vals or any(len(v["pair_distance"]) != len(metrics) for v in vals.values()):
        return {}
    ref = vals.get(REFERENCE)
    paired = {name: {k: [a - b for a, b in zip(v[k], ref[k])] for k in PAIR_METRICS}
              for name, v in vals.items() if ref and REFERENCE in paired_with(name, vals)}
    return {"values": vals, "paired": paired}


def feature_summary_lines(fs: dict, cfg: RunConfig, n: int) -> list[str]:
    """summary.md's feature-space section: the pair metrics, mean ± 95% interval over seeds, and
    each model minus PGD-AT (paired); one sentence when they were not measured."""
    if not fs:
        return ["Not measured on every seed (umap_n 0, or seeds run before the pair metrics were recorded)."]
    def cells(v):
        return " | ".join(fmt(v[k]) if k == "adv_nn_accuracy" else fmt(v[k], 1, 3) for k in PAIR_METRICS)
    lines = [f"On the first {n} evaluation images of each seed, attacked with PGD-{cfg.eval.pgd_steps} at eps "
             f"{cfg.eps:.4g} against each model (`features.pair_metrics`; the nearest-neighbour accuracy leaves "
             "each image's own twin out): mean ± half-width of the 95% interval over seeds; the paired rows "
             "subtract PGD-AT seed by seed.", "",
             "| model | " + " | ".join(PAIR_METRICS.values()) + " |", "|---|" + "---:|" * len(PAIR_METRICS)]
    lines += [f"| {label(name)} | {cells(v)} |" for name, v in fs["values"].items()]
    return lines + [f"| **{label(name)} − {label(REFERENCE)}** (paired) | {cells(v)} |" for name, v in fs["paired"].items()]


def paired_lines(paired: dict, cols: list[str]) -> list[str]:
    """The summary table's paired rows: every model minus PGD-AT, then minus the lam=0 control."""
    return [f"| **{label(name)} − {label(ref)}** (paired) | " + " | ".join(fmt(diff[c]) for c in cols) + " |"
            for ref, rows in paired.items() for name, diff in rows.items()]


def bootstrap_lines(boot: dict, cols: list[str]) -> list[str]:
    """The paired differences again with intervals that also resample the images
    (`paired_bootstrap`): 'mean [low, high]' in points; [] when per-example correctness was not kept."""
    if not boot:
        return []
    lines = ["", "The paired rows again, with 95% intervals from a bootstrap over seeds and, within each "
             "seed, over the evaluation images (per-example correctness kept in metrics.json), in points:", "",
             "| paired difference | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    return lines + [f"| {label(name)} − {label(ref)} | " + " | ".join(
        f"{100 * d[c][0]:.1f} [{100 * d[c][1]:.1f}, {100 * d[c][2]:.1f}]" if c in d else "n/a" for c in cols) + " |"
        for ref, rows in boot.items() for name, d in rows.items()]


def train_time(result: dict) -> float | None:
    """Seconds one model took to train: the sum of its epochs' recorded times (kept through a
    resume, so a seed continued from a finished training state is not counted as 0 s), else, for
    runs made before epochs were timed, the seconds its training took in the run that wrote it;
    None (not known) when that run took under a second: it read back a finished training state."""
    epochs = [h.get("seconds") for h in result.get("history") or []]
    if epochs and None not in epochs:
        return sum(epochs)
    return result["train_seconds"] if result["train_seconds"] >= 1.0 else None


def mean_train_time(results: list[dict]) -> str:
    """Mean of `train_time` over the seeds that know it, e.g. '340' or '340 (2 of 3 seeds)';
    'not recorded' when none does."""
    known = [t for t in map(train_time, results) if t is not None]
    if not known:
        return "not recorded (read back from a finished training state)"
    part = f" ({len(known)} of {len(results)} seeds)" if len(known) < len(results) else ""
    return f"{sum(known) / len(known):.0f}{part}"


def mean_job_time(metrics: list[dict]) -> str:
    """Mean seconds of a whole seed's job over the seeds whose job did the work, e.g. '7003' or
    '7003 (1 of 2 seeds)': a seed summarised from models trained by earlier processes took less
    time than its models' training, and is left out rather than averaged in."""
    known = [m["seconds"]["total"] for m in metrics
             if m["seconds"]["total"] >= sum(train_time(r) or 0.0 for r in m["models"].values())]
    if not known:
        return "not recorded (summarised from finished work)"
    part = f" ({len(known)} of {len(metrics)} seeds)" if len(known) < len(metrics) else ""
    return f"{sum(known) / len(known):.0f}{part}"


def write_summary(out: Path, metrics: list[dict], command: str) -> str:
    """summary.md and summary.json in `out`; returns the markdown."""
    s, cfg = summarize(metrics), RunConfig.from_dict(metrics[0]["settings"])
    seeds = [m["settings"]["train"]["seed"] for m in metrics]
    cols = list(next(iter(s["accuracy"].values())))
    n_checks = sum(len(r["sanity_checks"]) for m in metrics for r in m["models"].values())
    lines = [f"# {cfg.dataset}, preset {cfg.preset}: {len(seeds)} seeds ({', '.join(map(str, seeds))})", "",
             f"Command: `{command}`", "", describe(cfg, metrics[0].get("images")).replace(f", seed {cfg.seed}.", "."), "",
             "Accuracy in %, mean ± half-width of the 95% Student-t interval over seeds.", "",
             "| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, a in s["accuracy"].items():
        lines.append(f"| {label(name)} | " + " | ".join(fmt(a[c]) for c in cols) + " |")
    lines += paired_lines(s["paired"], cols)
    lines += bootstrap_lines(s["paired_bootstrap"], cols)
    lines += aa_check_table({k: [m["models"][k] for m in metrics] for k in s["accuracy"]})
    lines += ["", f"Sanity checks: {n_checks - len(s['failed_checks'])} of {n_checks} passed."]
    lines += [f"- **WARNING: failed**: {f}" for f in s["failed_checks"]]
    lines += ["", "Training time per seed (s): " + ", ".join(
        f"{label(k)} {mean_train_time([m['models'][k] for m in metrics])}"
        for k in s["accuracy"]) + f"; whole job {mean_job_time(metrics)} per seed, on {metrics[0]['device']} (torch {metrics[0]['torch']})."]
    n_feat = min(cfg.eval.umap_n, (metrics[0].get("images") or {}).get("eval", cfg.eval.umap_n))
    lines += ["", "## Feature space (clean vs adversarial twins)", ""] + feature_summary_lines(s["feature_space"], cfg, n_feat)
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"seeds": seeds, "settings": cfg.to_dict(), **s}, indent=1))
    return text


# ----------------------------------------------------------------------------- ablation

def write_ablation(out: Path, cfg: RunConfig, rows: list[dict], variants: dict, seeds: list[int],
                   val_fraction: float) -> str:
    """ablation.md: one row per variant, with its validation PGD accuracy minus its reference's
    (the first of the ablated objective's `paired`, PGD-AT for C-LEAD) on the same seed and split,
    when that arm was run with the run's settings, and the contrastive term at the last epoch
    against its yardsticks. `variants`: name -> changes ({'objective': ..., setting: value}); the
    ablated objective is the first variant's, and the choice is among its arms."""
    by = {v: [r for r in rows if r["variant"] == v] for v in variants}
    base = next(iter(variants.values()))["objective"]          # the ablated objective: the first variant's
    among = [v for v in variants if variants[v]["objective"] == base and by[v]]
    best = max(among, key=lambda v: interval([r["val_pgd"] for r in by[v]])[0]) if among else None
    reference = [{"objective": o} | c for o, c in map(parse_arm, get(base).paired[:1])]   # e.g. PGD-AT
    ref = {r["seed"]: r["val_pgd"] for r in rows if variants.get(r["variant"]) in reference}
    t, k = cfg.train, cfg.eval.pgd_steps
    sizes = sorted({(r["n_fit"], r["n_val"]) for r in rows if "n_fit" in r})
    counts = f" ({', '.join(f'{a} training and {b} validation images' for a, b in sizes)})" if sizes else ""
    lines = [f"# C-LEAD ablation: {cfg.dataset}, preset {cfg.preset}", "",
             f"Trained on {100 * (1 - val_fraction):.0f}% of the training images, scored on the held-out "
             f"{100 * val_fraction:.0f}%{counts} (validation; the test split is not used; each seed draws its "
             f"own split of its own training images). Seeds "
             f"{','.join(map(str, seeds))}; every variant starts from lam {t.lam}, tau {t.tau}, mu {t.mu}, "
             f"positives {t.positives}, head {t.head_dim or 'none'}, batch {t.batch_size}; {t.epochs} epochs, "
             f"eps {t.eps:.4g}, training PGD-{t.train_steps}; scored at eps {t.eps:.4g} whatever eps an arm "
             f"trains at. Accuracy in %, mean ± 95% interval over seeds; the PGD-AT column is paired "
             f"(same seed, same split). SupCon: the contrastive term in the last epoch (nats, mean over "
             f"seeds), with the batch's uniform-similarity value and floor.", "",
             f"| variant | val clean | val PGD-{k} | val PGD-{k} minus PGD-AT | SupCon (uniform / floor) "
             f"| train time (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for v in [v for v in variants if by[v]]:
        r, mark = by[v], " **(chosen)**" if v == best else ""
        diff = [x["val_pgd"] - ref[x["seed"]] for x in r if x["seed"] in ref]
        lines.append(f"| {v}{mark} | {fmt([x['val_clean'] for x in r])} | {fmt([x['val_pgd'] for x in r])} "
                     f"| {fmt(diff) if diff else 'n/a'} | {supcon_words(r)} "
                     f"| {sum(x['train_seconds'] for x in r) / len(r):.0f} |")
    lines += ["", f"Chosen by mean validation PGD-{k} accuracy: **{best}** ({variants.get(best) or 'no change'})."]
    text = "\n".join(lines) + "\n"
    (out / "ablation.md").write_text(text)
    return text


def supcon_words(rows: list[dict]) -> str:
    """'3.10 (4.84 / 2.51)': the last epoch's SupCon term, uniform value and floor, means over
    the rows that logged one; 'n/a' otherwise."""
    last = [r["history"][-1] for r in rows if r.get("history") and "train_supcon" in r["history"][-1]]
    if not last:
        return "n/a"
    mean = {k: sum(h[k] for h in last) / len(last) for k in ("train_supcon", "train_supcon_uniform", "train_supcon_floor")}
    return f"{mean['train_supcon']:.2f} ({mean['train_supcon_uniform']:.2f} / {mean['train_supcon_floor']:.2f})"
