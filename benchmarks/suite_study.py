"""The GPU suite's study stage: `python -m clead_edu study` on the real-image folder, preset
full, the package's compared objectives, several seeds on the fast path and one seed on the
plain path (to compare their accuracies), then AutoAttack's time on a trained model."""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import throughput as TP            # benchmarks/throughput.py: sync() around the timed AutoAttack
from suite_core import GUESS, MINI_TRAIN, Results, Stage, check_ready, package_env, run_group
from suite_throughput import measured_rates

DRY_SIZES = ["--arch", "small_cnn", "--train-n", "40", "--eval-n", "8", "--aa-n", "8", "--batch-size", "16",
             "--train-steps", "2", "--extra-pgd-steps", "3", "--extra-restarts", "2"]


def study_objectives() -> list[str]:
    """The package's compared objectives (`config.COMPARED`), and clead_released when this version
    of the package has it."""
    from clead_edu.config import COMPARED
    from clead_edu.objectives import OBJECTIVES
    return list(COMPARED) + [o for o in ("clead_released",) if o in OBJECTIVES and o not in COMPARED]


def study_epochs(objectives, seeds: int, budget_s: float, rates: dict, train_n: int = MINI_TRAIN) -> tuple[int, dict]:
    """Epochs (1..30) for `seeds` seeds on the fast path plus seed 0 on the plain path, so that
    the estimate fits budget_s. Returns (epochs, the estimate's parts in seconds)."""
    epoch = sum(train_n / rates.get(o, GUESS["img_s"][o]) for o in objectives)
    plain = rates.get("plain_factor", GUESS["plain_factor"])
    fixed_fast = GUESS["process_s"] + len(objectives) * GUESS["eval_s_per_model"]
    fixed_plain = GUESS["process_s"] + len(objectives) * GUESS["eval_s_per_model"] / 3   # no AutoAttack
    epochs = int(max(1, min(30, (budget_s - seeds * fixed_fast - fixed_plain) // (epoch * (seeds + plain)))))
    return epochs, {"train_epoch_fast_s": epoch, "plain_factor": plain, "fixed_fast_s": fixed_fast,
                    "fixed_plain_s": fixed_plain,
                    "total_s": seeds * (fixed_fast + epochs * epoch) + fixed_plain + epochs * epoch * plain}


def aa_version(suite) -> str:
    """AutoAttack's version for the study: standard; 'quick' in a dry run, where the standard
    version's Square attack (5000 queries) alone takes tens of seconds for 4 images on a CPU."""
    return "quick" if suite.dry else "standard"


def study_sizes(suite, st: Stage, objectives: list[str]) -> tuple[int, dict, list[str]]:
    """(epochs, estimate, extra command-line sizes): tiny in a dry run, else fitted to the budget."""
    if suite.dry:
        return suite.epochs or 1, {"total_s": 10.0 * (len(suite.seeds) + 1)}, DRY_SIZES
    rates = {**GUESS["img_s"], **measured_rates(suite.res)}
    epochs, est = study_epochs(objectives, len(suite.seeds), st.budget_s, rates)
    return suite.epochs or epochs, est, []


def study_steps(suite, folder: Path, objectives: list[str], epochs: int, sizes: list[str]) -> list[tuple]:
    """(what, command, 1 for a fast-path step or None for the plain one) in the order they run:
    the first two seeds fast, the first seed plain (no AutoAttack), then the other seeds fast."""
    base = [sys.executable, "-m", "clead_edu", "study", "--dataset", f"folder:{suite.data}", "--preset", "full",
            "--epochs", str(epochs), "--objectives", ",".join(objectives), "--no-figures", "--no-progress",
            "--device", suite.device_arg, *sizes]
    fast = base + ["--autoattack", aa_version(suite), "--fast", "on", "--out", str(folder / "fast")]
    plain = base + ["--autoattack", "none", "--fast", "off", "--out", str(folder / "plain")]
    seeds = suite.seeds

    def fast_step(k):
        listed = ",".join(map(str, seeds[:k]))
        return (f"fast, seeds {listed}", fast + ["--seeds", listed], 1)
    return ([fast_step(k) for k in range(1, min(2, len(seeds)) + 1)]
            + [(f"plain (--fast off), seed {seeds[0]}", plain + ["--seeds", str(seeds[0])], None)]
            + [fast_step(k) for k in range(3, len(seeds) + 1)])


def run_step(suite, st: Stage, folder: Path, what: str, cmd: list[str]) -> tuple[bool, bool, float]:
    """Run one study command until the stage's budget ends; log and record it. Returns (ok,
    killed at the budget's end, seconds)."""
    print(f"[gpu_suite] study: {what}\n  {' '.join(cmd)}")
    t = time.time()
    log = folder / f"{re.sub(r'[^a-z0-9]+', '_', what.lower()).strip('_')}.log"
    code, output, _ = run_group(cmd, package_env(), max(5, st.left()), merge=True)
    log.write_text(output)
    ok, killed, secs = code == 0, code is None, time.time() - t
    suite.res.set(("study", "steps", what), {"ok": ok, "wall_s": secs, "command": " ".join(cmd),
                                             "log": str(log.relative_to(suite.out)),
                                             **({"killed": "stage budget spent"} if killed else {})})
    if not ok and not killed:
        raise RuntimeError(f"study step '{what}' failed or ran out of budget; see {log}:\n" + output[-2000:])
    return ok, killed, secs


def stage_study(suite, st: Stage) -> None:
    """The study's steps while their estimate (scaled from the first seed's time) fits."""
    check_ready(suite, ["pyautoattack"])
    folder = suite.out / "study"
    folder.mkdir(parents=True, exist_ok=True)
    objectives = study_objectives()
    epochs, est, sizes = study_sizes(suite, st, objectives)
    steps = study_steps(suite, folder, objectives, epochs, sizes)
    st.note("plan", {"objectives": objectives, "epochs": epochs, "seeds": suite.seeds, "estimate": est,
                     "commands": [" ".join(c) for _, c, _ in steps]})
    print(f"[gpu_suite] study plan: {','.join(objectives)}, {epochs} epochs, seeds {suite.seeds} on the fast path "
          f"(standard AutoAttack on all test images) and seed {suite.seeds[0]} with --fast off (no AutoAttack); "
          f"estimated {est['total_s']:.0f} s of {st.budget_s:.0f} s")
    plain_factor = measured_rates(suite.res).get("plain_factor", GUESS["plain_factor"])
    seed_s = None
    for what, cmd, new_seeds in steps:
        want = seed_s * (plain_factor if new_seeds is None else 1) if seed_s else 0
        if seed_s and not st.fits(want):
            st.skip(what, want)
            continue
        _, killed, secs = run_step(suite, st, folder, what, cmd)
        collect_study(suite.res, folder)
        if killed:       # not a failure: the seed's training state is kept, and a later run resumes it
            st.error(f"{what}: killed, budget spent")
            return
        seed_s = seed_s or (secs if new_seeds else None)
    if st.fits(60 if not suite.dry else 5):
        time_trained_autoattack(suite, folder / "fast" / f"seed{suite.seeds[0]}" / "pgd_at" / "model.pt")


def read_runs(folder: Path) -> dict:
    """{'fast'|'plain': {'seedN': accuracies, seconds, device, fast flag; 'summary': ...}}."""
    out = {}
    for kind in ("fast", "plain"):
        for m in sorted((folder / kind).glob("seed*/metrics.json")):
            d = json.loads(m.read_text())
            out.setdefault(kind, {})[m.parent.name] = {
                "accuracy": {k: v["accuracy"] for k, v in d["models"].items()}, "seconds": d["seconds"],
                "device": d["device"], "fast": d["settings"]["train"]["fast"]}
        s = folder / kind / "summary.json"
        if s.exists():
            out.setdefault(kind, {})["summary"] = json.loads(s.read_text())
    return out


def collect_study(res: Results, folder: Path) -> None:
    """Per-seed accuracies and seconds, the summary over seeds, and fast-vs-plain accuracies."""
    out = read_runs(folder)
    both = sorted(set(out.get("fast", {})) & set(out.get("plain", {})) - {"summary"})
    for seed in both:          # accuracy on the fast path minus the plain path, same seed and settings
        f, p = out["fast"][seed]["accuracy"], out["plain"][seed]["accuracy"]
        out.setdefault("fast_minus_plain", {})[seed] = {
            m: {a: f[m][a] - p[m][a] for a in p[m] if a in f[m]} for m in p if m in f}
    res.set(("study", "results"), out)


def time_trained_autoattack(suite, model_path: Path) -> None:
    """Seconds of standard AutoAttack on all test images of the study's first PGD-AT model."""
    from clead_edu import data as D
    from clead_edu import evaluate as E
    from clead_edu.checkpoints import load_checkpoint
    if not model_path.exists():
        return
    model = load_checkpoint(model_path, device=suite.device)
    x, y = D.take(D.get_data(f"folder:{suite.data}").test, None, 0)
    x, y = x[: (2 if suite.dry else None)], y[: (2 if suite.dry else None)]
    TP.sync(suite.device)
    t = time.time()
    ok, _ = E.run_autoattack(model, x, y, eps=8 / 255, version=aa_version(suite), batch_size=500)
    TP.sync(suite.device)
    secs = time.time() - t
    suite.res.set(("throughput", "autoattack_standard_trained"), {
        "images": len(y), "seconds": secs, "version": aa_version(suite), "robust_accuracy": ok.float().mean().item(),
        "model": str(model_path.relative_to(suite.out))})
    print(f"[gpu_suite] AutoAttack (standard) on {len(y)} test images of the trained PGD-AT model: {secs:.1f} s")
