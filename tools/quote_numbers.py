"""Write every number the prose quotes from the file it comes from, so the two never disagree.

    python tools/quote_numbers.py            # rewrite the quoted numbers in place
    python tools/quote_numbers.py --check    # exit 1, listing each quote that differs from its source

A quoted number stands between markers that name its source, e.g. in the README

    All eight together: <!-- number:lessons.total -->498 s<!-- /number -->

(Markdown and notebooks show only the number: the markers are HTML comments). The files read:
README.md, docs/*.md, solutions/*.md and the notebooks' Markdown cells. The keys:

- `lessons.total`, `lessons.total_min`, `lessons.NN` ("50 s"), `lessons.NN.s` ("50"),
  `lessons.min`, `lessons.max`, `lessons.longest` ("06"), `lessons.date`: the lesson times in
  benchmarks/results/lessons-cpu.json (`python benchmarks/lessons.py --no-training`, its --out).
- `site.wall_min` ("12.3 minutes"), `site.lessons_s` ("700 s": executing the lessons),
  `site.rss_gib`, `site.mib`, `site.mathjax_mib`, `site.pages`, `site.figures`, `site.threads`,
  `site.load` ("1.0 to 2.0": the load average before and after), `site.date`: the site build
  measured by `python benchmarks/site.py --out benchmarks/results/site-cpu.json`.
- `photos.NAME` (a setting of the quick preset on the lessons' photos, its record's `quick` in data.DATASETS,
  e.g. `photos.aa_n`), `photos.image_points` (one test image in points of accuracy).
- `config.PRESET.DATASET.eval.FIELD` / `.train.FIELD`: a setting as `data.from_preset(PRESET,
  DATASET)` gives it, e.g. `config.quick.digits.eval.aa_n`, `config.full.cifar10.train.epochs`.
- `STUDY.seeds`, `STUDY.eval_n`, `STUDY.acc.MODEL.METRIC` ("22.6 ± 1.8", in %; `.mean`: "22.6"),
  `STUDY.diff.A.B.METRIC` (B − A paired over seeds, "−1.8 ± 1.3"), with `.low` / `.high` for the
  ends of its 95% interval, `.mean` for the mean alone ("−5.4"), `.range` for the smallest
  and largest size of the per-seed differences ("1.5 to 4.0") and `.below` for the seeds on which
  B is below A ("5 of 5"); `STUDY.boot.A.B.METRIC` (the same
  difference with its 95% interval from the bootstrap over seeds and images, "−0.3 [−1.6, +1.0]"),
  `STUDY.spread.A.B.METRIC.KIND` (how the seeds spread: standard deviations, correlation,
  half-widths at other seed counts, unpaired intervals; `spread_number`),
  `STUDY.side.A.B.METRIC` (that interval in words, B against A: "above" or "below" where it
  excludes zero, "level with" where it holds zero); `STUDY.pairval.MODEL.METRIC` (a
  pair metric's mean over seeds, "0.010"), `STUDY.pairint.MODEL.METRIC` (the same with its 95%
  interval, "0.010 ± 0.001"; the nearest-neighbour accuracy in %, "24.8 ± 0.3%"), `STUDY.pairdiff.MODEL.METRIC` (a pair metric of the feature space,
  MODEL − PGD-AT paired over seeds, "−0.0010 ± 0.0008") and `STUDY.pairbelow.MODEL.METRIC`
  ("5 of 5": the seeds on which MODEL's value is below PGD-AT's; `pairabove`, above it): the studies in docs/results/
  (`controls`: cifar10-mini-controls-study.json, `mini`: cifar10-mini-study.json, `digits`:
  digits-study.json, `released`: cifar10-mini-released-study.json, `pairs`:
  cifar10-sample-pairs-study.json, `final`: cifar10-mini-final-study.json). An arm with settings is
  spelled by `slug` (`final.acc.clead-head_dim-128-lam-1-tau-0.1.worst_case`).
- `sweep.ARM.FIELD`: the validation sweep's rows (`sweep_number`; ARM spelled by `slug`).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- number:([\w.\-]+) -->(.*?)<!-- /number -->", re.S)
LESSONS = ROOT / "benchmarks" / "results" / "lessons-cpu.json"
SITE = ROOT / "benchmarks" / "results" / "site-cpu.json"
STUDIES = {"controls": ROOT / "docs/results/cifar10-mini-controls-study.json",
           "mini": ROOT / "docs/results/cifar10-mini-study.json",
           "digits": ROOT / "docs/results/digits-study.json",
           "released": ROOT / "docs/results/cifar10-mini-released-study.json",
           "pairs": ROOT / "docs/results/cifar10-sample-pairs-study.json",
           "final": ROOT / "docs/results/cifar10-mini-final-study.json"}


def signed(x: float, decimals: int = 1) -> str:
    """'+2.1' / '−1.8' (a typographic minus, as the docs write it)."""
    return f"{x:+.{decimals}f}".replace("-", "−")


def lesson_number(parts: list[str]) -> str:
    """A lesson time from LESSONS: parts after 'lessons', e.g. ['total'], ['06', 's']."""
    run = json.loads(LESSONS.read_text())
    seconds = {name[:2]: s for name, s in run["seconds"].items()}
    key = parts[0]
    if key == "total":
        return f"{run['total_s']:.0f} s"
    if key == "total_min":
        return f"{run['total_s'] / 60:.1f} minutes"
    if key in ("min", "max"):
        return f"{(min if key == 'min' else max)(seconds.values()):.0f} s"
    if key == "longest":
        return max(seconds, key=seconds.get)
    if key == "date":
        return run["date"]
    if key in seconds:
        return f"{seconds[key]:.0f}" + ("" if parts[1:] == ["s"] else " s")
    raise KeyError(key)


def site_number(parts: list[str]) -> str:
    """A figure of the site build in SITE: parts after 'site', e.g. ['wall_min']."""
    run, key = json.loads(SITE.read_text()), parts[0]
    text = {"wall_min": lambda: f"{run['wall_s'] / 60:.1f} minutes",
            "lessons_s": lambda: f"{run['lessons_total_s']:,.0f} s",
            "rss_gib": lambda: f"{run['peak_rss_bytes'] / 2**30:.1f} GiB",
            "mib": lambda: f"{run['bytes'] / 2**20:.0f} MiB",
            "mathjax_mib": lambda: f"{run['mathjax_bytes'] / 2**20:.0f} MiB",
            "pages": lambda: str(run["pages"]), "figures": lambda: str(run["figures"]),
            "threads": lambda: str(run["threads"] or "the package's choice"),
            "load": lambda: f"{run['load_before']:.1f} to {run['load_after']:.1f}",
            "date": lambda: run["date"]}[key]
    return text()


def photos_number(parts: list[str]) -> str:
    """A quick-preset setting on the lessons' photos (their record's `quick`, data.DATASETS)."""
    sys.path.insert(0, str(ROOT))
    from clead_edu.data import DATASETS
    values = DATASETS["cifar10-sample"].quick
    if parts == ["image_points"]:
        return f"{100 / values['eval_n']:g}"
    return f"{values[parts[0]]:g}"


def config_number(parts: list[str]) -> str:
    """A setting of `data.from_preset(preset, dataset)`: parts [preset, dataset, 'eval'|'train', field]."""
    sys.path.insert(0, str(ROOT))
    from clead_edu.data import from_preset
    preset, dataset, group, field = parts
    value = getattr(getattr(from_preset(preset, dataset), group), field)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def arm_parts(parts: list[str], arms) -> list[str]:
    """`parts` with each arm written by its `slug` (and so split at its dots, 'tau-0.1') joined
    back into the arm's name; other parts kept."""
    names = {slug(a): a for a in arms}
    out, i = [], 0
    while i < len(parts):
        j = next((j for j in range(len(parts), i, -1) if ".".join(parts[i:j]) in names), None)
        out.append(names[".".join(parts[i:j])] if j else parts[i])
        i = j or i + 1
    return out


def seeds_below(differences: list[float]) -> str:
    """'4 of 5': how many per-seed differences are below zero, of how many seeds."""
    return f"{sum(d < 0 for d in differences)} of {len(differences)}"


def spread_number(study: dict, a: str, b: str, metric: str, kind: str) -> str:
    """How the seeds spread, B against A in points (`STUDY.spread.A.B.METRIC.KIND`), for the
    exercises on seeds and pairing. KIND: `sd` (the paired differences' standard deviation),
    `sda` / `sdb` (A's and B's own), `sdindep` (what the differences' would be if the two were
    independent, sqrt(sda² + sdb²)), `corr` (A's and B's correlation over the seeds), `halfN`
    (the paired 95% half-width that `sd` would give with N seeds, e.g. `half10`), `seeds1` (the
    fewest seeds for a half-width of at most one point), `pooled` / `welch` (the unpaired 95%
    half-widths, pooled and Welch's)."""
    import numpy as np
    from scipy.stats import t
    xa, xb = (100 * np.array(study["accuracy"][m][metric]) for m in (a, b))
    n, sd = len(xa), float(np.std(xb - xa, ddof=1))
    sda, sdb = float(np.std(xa, ddof=1)), float(np.std(xb, ddof=1))
    half = lambda k: t.ppf(0.975, k - 1) * sd / k ** 0.5                      # noqa: E731
    se2 = (sda ** 2 + sdb ** 2) / n                                             # unpaired, squared
    welch_df = se2 ** 2 / ((sda ** 2 / n) ** 2 / (n - 1) + (sdb ** 2 / n) ** 2 / (n - 1))
    if kind.startswith("half"):
        return f"{half(int(kind[4:])):.2f}"
    return {"sd": lambda: f"{sd:.1f}", "sda": lambda: f"{sda:.1f}", "sdb": lambda: f"{sdb:.1f}",
            "sdindep": lambda: f"{(sda ** 2 + sdb ** 2) ** 0.5:.1f}",
            "corr": lambda: f"{np.corrcoef(xa, xb)[0, 1]:.1f}",
            "seeds1": lambda: str(next(k for k in range(2, 1000) if half(k) <= 1)),
            "pooled": lambda: f"{t.ppf(0.975, 2 * n - 2) * se2 ** 0.5:.1f}",
            "welch": lambda: f"{t.ppf(0.975, welch_df) * se2 ** 0.5:.1f}"}[kind]()


def study_number(study: dict, parts: list[str]) -> str:
    """A number of a study summary (docs/results/*-study.json); accuracies in %, mean ± half-width."""
    sys.path.insert(0, str(ROOT))
    from clead_edu.report import interval
    parts = arm_parts(parts, study["accuracy"])
    if parts == ["seeds"]:
        return str(len(study["seeds"]))
    if parts == ["eval_n"]:
        return str(study["settings"]["eval"]["eval_n"])
    if parts[0] == "acc":
        mean, half = interval(study["accuracy"][parts[1]][parts[2]])
        return f"{100 * mean:.1f}" if parts[3:] == ["mean"] else f"{100 * mean:.1f} ± {100 * half:.1f}"
    if parts[0] == "diff":
        pairs = study.get("paired") or {"pgd_at": study["paired_minus_pgd_at"]}     # older summaries: against PGD-AT only
        per_seed = pairs[parts[1]][parts[2]][parts[3]]
        mean, half = interval(per_seed)
        end = parts[4] if len(parts) > 4 else None
        if end == "mean":
            return signed(100 * mean)
        if end == "range":
            sizes = sorted(abs(100 * d) for d in per_seed)
            return f"{sizes[0]:.1f} to {sizes[-1]:.1f}"
        if end == "below":
            return seeds_below(per_seed)
        if end == "low":
            return signed(100 * (mean - half))
        if end == "high":
            return signed(100 * (mean + half))
        return f"{signed(100 * mean)} ± {100 * half:.1f}"
    if parts[0] == "spread":
        return spread_number(study, *parts[1:])
    if parts[0] in ("boot", "side"):
        mean, low, high = study["paired_bootstrap"][parts[1]][parts[2]][parts[3]]
        if parts[0] == "side":                                  # B's place against A, in words
            return "above" if low > 0 else "below" if high < 0 else "level with"
        return f"{signed(100 * mean)} [{signed(100 * low)}, {signed(100 * high)}]"
    if parts[0] == "pairval":
        values = study["feature_space"]["values"][parts[1]][parts[2]]
        return f"{sum(values) / len(values):.3f}"
    if parts[0] == "pairint":
        mean, half = interval(study["feature_space"]["values"][parts[1]][parts[2]])
        if parts[2] == "adv_nn_accuracy":
            return f"{100 * mean:.1f} ± {100 * half:.1f}%"
        return f"{mean:.3f} ± {half:.3f}"
    if parts[0] in ("pairdiff", "pairbelow", "pairabove"):
        diffs = study["feature_space"]["paired"][parts[1]][parts[2]]
        if parts[0] != "pairdiff":
            return seeds_below(diffs if parts[0] == "pairbelow" else [-d for d in diffs])
        mean, half = interval(diffs)
        return f"{signed(mean, 4)} ± {half:.4f}"
    raise KeyError(".".join(parts))


SWEEPS = sorted((ROOT / "docs" / "results").glob("cifar10-mini-sweep-*.jsonl"))


def slug(variant: str) -> str:
    """A sweep arm as a key: 'clead[head_dim=128,lam=1]' -> 'clead-head_dim-128-lam-1'."""
    return re.sub(r"[^\w.]+", "-", variant).strip("-")


def sweep_number(parts: list[str]) -> str:
    """A number of the validation sweep (docs/results/cifar10-mini-sweep-*.jsonl, first seed of
    an arm): parts [*slug split at its dots, field], field 'clean' / 'pgd' (validation accuracy, %), 'supcon',
    'uniform', 'floor' (the last epoch's contrastive term and yardsticks, nats), 'share' (how far
    the term came from uniform to its floor, %), 'n_fit' / 'n_val' (images)."""
    rows = {slug(r["variant"]): r for f in SWEEPS for r in map(json.loads, f.read_text().splitlines())}
    r, field = rows[".".join(parts[:-1])], parts[-1]         # a slug may hold dots (tau-0.1)
    last = r["history"][-1]
    if field in ("clean", "pgd"):
        return f"{100 * r['val_' + field]:.1f}"
    if field in ("n_fit", "n_val"):
        return f"{r[field]:,}"
    if field == "share":
        u, f = last["train_supcon_uniform"], last["train_supcon_floor"]
        return f"{100 * (u - last['train_supcon']) / (u - f):.0f}%"
    return f"{last['train_' + {'supcon': 'supcon', 'uniform': 'supcon_uniform', 'floor': 'supcon_floor'}[field]]:.2f}"


def number(key: str) -> str:
    """The text of the number named `key` (see the module's docstring)."""
    head, *parts = key.split(".")
    try:
        if head == "lessons":
            return lesson_number(parts)
        if head == "site":
            return site_number(parts)
        if head == "photos":
            return photos_number(parts)
        if head == "config":
            return config_number(parts)
        if head == "sweep":
            return sweep_number(parts)
        if head in STUDIES:
            return study_number(json.loads(STUDIES[head].read_text()), parts)
    except (KeyError, IndexError, ValueError, AttributeError):
        pass
    raise ValueError(f"unknown number {key!r} (the keys are listed in tools/quote_numbers.py)")


def requote(text: str) -> str:
    """`text` with every marked number written from its source."""
    return MARK.sub(lambda m: f"<!-- number:{m.group(1)} -->{number(m.group(1))}<!-- /number -->", text)


def differences(text: str) -> list[str]:
    """'key: quoted X, source Y' for each marked number that differs from its source."""
    return [f"{m.group(1)}: quoted {m.group(2)!r}, source {number(m.group(1))!r}"
            for m in MARK.finditer(text) if m.group(2) != number(m.group(1))]


def prose_files(root: Path = ROOT) -> list[Path]:
    """The files whose prose may quote numbers."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "solutions").glob("*.md")),
            *sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def process(path: Path, check: bool) -> list[str]:
    """Check or rewrite one file (a notebook: its Markdown cells, written back with nbformat only if
    one changed, cell ids kept). Returns its differences as 'file: key: ...'."""
    if path.suffix == ".ipynb":
        import nbformat
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "markdown"]
        found = [d for c in cells for d in differences(c.source)]
        if found and not check:
            for c in cells:
                c.source = requote(c.source)
            nbformat.write(nb, path)
    else:
        text = path.read_text(encoding="utf-8")
        found = differences(text)
        if found and not check:
            path.write_text(requote(text), encoding="utf-8")
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [f"{name}: {d}" for d in found]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a quote differs from its source")
    args = ap.parse_args(argv)
    found = [d for path in prose_files() for d in process(path, args.check)]
    for line in found:
        print(line)
    if args.check and found:
        print(f"{len(found)} quoted numbers differ from their source: run python tools/quote_numbers.py")
        return 1
    print(f"{len(found)} quoted numbers {'differ' if args.check else 'rewritten'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
