"""Robustness evaluation: clean, FGSM, PGD-k, AutoAttack, the per-example worst case.

Robust accuracy is computed per example: an image counts as robust only if it is
classified correctly under *every* attack run (`worst_case`). Averaging the
attacks' accuracies instead would overstate robustness.

    res = robustness(model, x, y, eps=8/255, pgd_steps=20, restarts=1, autoattack="quick")
    res["accuracy"]    # {'clean': .., 'fgsm': .., 'pgd20': .., 'autoattack': .., 'worst_case': ..}
"""
from __future__ import annotations

import logging
from functools import partial

import torch
from tqdm.auto import tqdm

from .attacks import ce_loss, eval_mode, fgsm, input_grad, pgd
from .config import AUTOATTACK_VERSIONS
from .guards import check_logits, quiet_large_eps
from .progress import enabled


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted classes (N,) for images x (N, C, H, W) in [0,1], in eval mode, batched."""
    dev, out = _device(model), []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            logits = model(x[i:i + batch_size].to(dev))
            if i == 0:
                check_logits(logits)
            out.append(logits.argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def attack_all(model, x, y, attack=None, batch_size: int = 256, desc: str | None = None,
               **kwargs) -> torch.Tensor:
    """Run `attack(model, x, y, **kwargs)` batch by batch; returns x_adv (N, C, H, W) on the CPU."""
    if attack is None:
        return x
    dev, out = _device(model), []
    starts = range(0, len(x), batch_size)
    for i in tqdm(starts, desc=desc, leave=False, disable=desc is None or len(starts) < 2 or not enabled()):
        out.append(attack(model, x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev), **kwargs).cpu())
    return torch.cat(out) if out else x


def correct(model, x, y, attack=None, batch_size: int = 256, **kwargs) -> torch.Tensor:
    """Per-example correctness (N,) bool under `attack` (None = clean)."""
    x_adv = attack_all(model, x, y, attack, batch_size, **kwargs)
    return predict(model, x_adv, batch_size) == y.cpu()


def accuracy(model, x, y, attack=None, batch_size: int = 256, **kwargs) -> float:
    """Accuracy in [0,1] of `model` on (x, y), under `attack` with `kwargs` if given."""
    return correct(model, x, y, attack, batch_size, **kwargs).float().mean().item()


# ----------------------------------------------------------------------------- AutoAttack

class _FlagCollector(logging.Handler):
    """Collects AutoAttack's own warnings (its checks for randomness, masking...)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _autoattack(model, eps: float, version: str, norm: str, seed: int):
    from pyautoattack import AutoAttack
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    norm_aa = {"linf": "Linf", "l2": "L2"}[norm]
    dev = _device(model)
    if version in ("standard", "apgd"):
        aa = AutoAttack(model, eps=eps, norm=norm_aa, version="standard", seed=seed, device=dev)
        if version == "apgd":                     # the standard's first two attacks, its settings
            aa.attacks_to_run = ["apgd-ce", "apgd-t"]
        return aa
    # quick: APGD-CE and APGD-T (3 target classes), 20 iterations each, no FAB/Square
    aa = AutoAttack(model, eps=eps, norm=norm_aa, version="custom", seed=seed, device=dev,
                    attacks=["apgd-ce", "apgd-t"])
    aa.apgd = APGDAttack(model, n_restarts=1, n_iter=20, eps=eps, norm=norm_aa, seed=seed,
                         device=dev, logger=aa.logger)
    aa.apgd_targeted = APGDAttack_targeted(model, n_restarts=1, n_iter=20, eps=eps, norm=norm_aa,
                                           seed=seed, device=dev, logger=aa.logger, n_target_classes=3)
    return aa


def run_autoattack(model, x, y, *, eps: float, version: str = "standard", norm: str = "linf",
                   seed: int = 0, batch_size: int = 250) -> tuple[torch.Tensor, list[str]]:
    """AutoAttack (Croce & Hein, ICML 2020) through the official code (`pyautoattack`).

    version 'standard': APGD-CE, APGD-T (9 targets), FAB-T, Square (5000 queries), the
    published protocol. 'apgd': the standard's APGD-CE and APGD-T (9 targets, 100 iterations)
    without FAB-T and Square, for many images on a CPU (check it against 'standard' on some:
    `robustness(..., aa_check_n=...)`). 'quick': APGD-CE and APGD-T (3 targets), 20 iterations
    each - a reduced version for CPU lessons. Both can only overestimate robustness.
    Returns per-example correctness (N,) bool and AutoAttack's own warning flags.
    """
    if version not in AUTOATTACK_VERSIONS:
        raise ValueError(f"AutoAttack version must be one of {AUTOATTACK_VERSIONS}, got {version!r}")
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.bool), []
    collector = _FlagCollector()
    logger = logging.getLogger("auto-attack")
    logger.addHandler(collector)
    try:
        with eval_mode(model):
            aa = _autoattack(model, eps, version, norm, seed)
            x_adv, _ = aa.run_standard_evaluation(x.to(_device(model)), y.to(_device(model)),
                                                  batch_size=batch_size)
    finally:
        logger.removeHandler(collector)
    flags = list(dict.fromkeys(m.strip() for m in collector.messages))  # once each, in order
    return predict(model, x_adv.cpu()) == y.cpu(), flags


# ----------------------------------------------------------------------------- full report

def robustness(model, x, y, *, eps: float, pgd_steps: int = 20, restarts: int = 1,
               extra_pgd_steps: int | None = None, extra_restarts: int = 1,
               autoattack: str | None = "quick", aa_n: int | None = None,
               aa_check_n: int = 0, batch_size: int = 256, seed: int = 0) -> dict:
    """Clean, FGSM, PGD-k (restarts), optional PGD with more steps, AutoAttack; and their worst case.

    x (N, C, H, W) in [0,1], y (N,); eps in pixel units (L-inf). PGD uses step size
    2.5*eps/k and a random start. The extra PGD (e.g. PGD-50) runs `extra_restarts`
    times; an image counts as robust only if it survives every restart (later restarts
    attack only the survivors). AutoAttack runs on the first `aa_n` images (all if
    None, skipped if aa_n is 0 or `autoattack`, the version, is None); the worst case is taken per example over every
    attack, on those images. So that one row never mixes image sets, 'accuracy' gives
    every attack on those same first `worst_case_n` images; 'accuracy_eval' gives the
    attacks other than AutoAttack on all N images. Returns {'accuracy': {name: float},
    'accuracy_eval': {name: float}, 'correct': {name: (N,) or (worst_case_n,) bool},
    'pgd_names': [the PGD columns' names], 'worst_case_n': int, 'eval_n': N,
    'autoattack_flags': [str]}. With `aa_check_n`, the
    standard AutoAttack also runs on the first aa_check_n of the AutoAttack images, as a check
    of the version used (not a column): 'autoattack_check' {'n', 'standard', 'version'} holds
    both accuracies on those images.
    """
    torch.manual_seed(seed)
    runs = {"clean": None, "fgsm": partial(fgsm, eps=eps),
            f"pgd{pgd_steps}": partial(pgd, eps=eps, steps=pgd_steps, restarts=restarts)}
    ok = {name: correct(model, x, y, attack, batch_size) for name, attack in runs.items()}
    pgd_names = [f"pgd{pgd_steps}"]
    if extra_pgd_steps:
        name = f"pgd{extra_pgd_steps}" + (f"x{extra_restarts}" if extra_restarts > 1 else "")
        pgd_names.append(name)
        ok[name] = correct_restarts(model, x, y, partial(pgd, eps=eps, steps=extra_pgd_steps),
                                    extra_restarts, batch_size)
    on_all = {k: v.float().mean().item() for k, v in ok.items()}   # before AutoAttack
    n, flags = len(x), []
    if autoattack and aa_n != 0:
        n = len(x) if aa_n is None else min(aa_n, len(x))
        ok["autoattack"], flags = run_autoattack(model, x[:n], y[:n], eps=eps, version=autoattack, seed=seed)
    ok["worst_case"] = worst_case({k: v[:n] for k, v in ok.items()})
    return {"accuracy": {k: v[:n].float().mean().item() for k, v in ok.items()},
            "accuracy_eval": on_all, "correct": ok, "pgd_names": pgd_names, "worst_case_n": n,
            "eval_n": len(x), "autoattack_flags": flags} | standard_check(model, x, y, ok, aa_check_n, eps, seed)


def standard_check(model, x, y, ok: dict, n: int, eps: float, seed: int) -> dict:
    """{'autoattack_check': {'n', 'standard', 'version'}}: the standard AutoAttack's accuracy on the
    first n images beside that of the version run (ok['autoattack'], (N',) bool); {} if n is 0
    or AutoAttack did not run."""
    n = min(n, len(ok.get("autoattack", ())))
    if n == 0:
        return {}
    standard, _ = run_autoattack(model, x[:n], y[:n], eps=eps, version="standard", seed=seed)
    return {"autoattack_check": {"n": n, "standard": standard.float().mean().item(),
                                 "version": ok["autoattack"][:n].float().mean().item()}}


def correct_restarts(model, x, y, attack, restarts: int, batch_size: int = 256) -> torch.Tensor:
    """Per-example correctness (N,) bool under `restarts` independent runs of `attack`: an
    image is correct only if no run fools it. Each run attacks only the images still correct."""
    ok = correct(model, x, y, None, batch_size)
    for _ in range(restarts):
        idx = ok.nonzero().flatten()
        if len(idx) == 0:
            break
        ok[idx] = correct(model, x[idx], y[idx], attack, batch_size)
    return ok


def worst_case(correct_by_attack: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-example AND over attacks (N,) bool: robust only if correct under every attack."""
    masks = list(correct_by_attack.values())
    out = masks[0].clone()
    for m in masks[1:]:
        out &= m
    return out


def eps_curve(model, x, y, eps_values, *, attack=pgd, batch_size: int = 256, **kwargs) -> list[float]:
    """Accuracy under `attack` at each eps in `eps_values` (pixel units); kwargs go to the attack.
    A curve may go past 0.5 on purpose, so the "did you mean /255" warning is silenced here."""
    with quiet_large_eps():
        return [accuracy(model, x, y, attack, batch_size, eps=e, **kwargs) if e > 0 else
                accuracy(model, x, y, batch_size=batch_size) for e in eps_values]


def sanity_checks(model, x, y, *, eps: float, steps: int = 10, tol: float = 0.02,
                  curve: list[float] | None = None, attack=pgd, long_steps: int = 100,
                  converge_tol: float = 0.03) -> list[dict]:
    """Checks that catch broken evaluations, weak attacks and gradient masking; each
    {'check', 'passed', 'detail'}. `attack(model, x, y, eps=, steps=)` is the PGD under test.

    - at eps 0 the attack changes no prediction (per example, not only the accuracy);
    - accuracy does not rise as eps grows (0, eps/2, eps, 2 eps);
    - PGD is not weaker than FGSM;
    - PGD-`steps` has converged: PGD-`long_steps` is at most `converge_tol` lower;
    - a very large eps (0.5) drives accuracy to (near) zero;
    - input gradients do not vanish (`gradient_check`).
    `attack_checks` adds the checks that need AutoAttack's result. `curve`: PGD-`steps`
    accuracies at eps 0, eps/2, eps, 2 eps on these images if already computed.
    x, y should be a class-balanced random subset (`data.balanced_order`), not the first
    images of a class-sorted folder.
    """
    curve = curve or eps_curve(model, x, y, [0, eps / 2, eps, 2 * eps], attack=attack, steps=steps)
    clean_pred = predict(model, x)
    pred0 = predict(model, attack_all(model, x, y, attack, eps=0.0, steps=steps))
    changed = (pred0 != clean_pred).sum().item()
    acc_fgsm, acc_pgd = accuracy(model, x, y, fgsm, eps=eps), curve[2]
    acc_long = accuracy(model, x, y, attack, eps=eps, steps=long_steps)
    big = accuracy(model, x, y, attack, eps=0.5, steps=max(steps, 20))
    return [
        {"check": "eps=0 equals clean", "passed": changed == 0,
         "detail": f"{changed} of {len(x)} predictions changed by the attack at eps 0"},
        {"check": "accuracy non-increasing in eps",
         "passed": all(b <= a + tol for a, b in zip(curve, curve[1:])),
         "detail": "eps 0, eps/2, eps, 2eps: " + ", ".join(f"{a:.3f}" for a in curve)},
        {"check": "PGD not weaker than FGSM", "passed": acc_pgd <= acc_fgsm + tol,
         "detail": f"FGSM {acc_fgsm:.3f}, PGD-{steps} {acc_pgd:.3f}"},
        {"check": f"PGD-{steps} converged (vs PGD-{long_steps})", "passed": acc_pgd - acc_long <= converge_tol,
         "detail": f"PGD-{steps} {acc_pgd:.3f}, PGD-{long_steps} {acc_long:.3f} (tolerance {converge_tol})"},
        {"check": "very large eps reaches ~0", "passed": big <= 0.05,
         "detail": f"PGD at eps 0.5: {big:.3f}"},
        gradient_check(model, x, y),
    ]


def gradient_check(model, x, y, *, max_zero: float = 0.05, batch_size: int = 256) -> dict:
    """Input gradients must not vanish: the fraction of images whose cross-entropy gradient
    with respect to the input is exactly zero must be at most `max_zero` (masking sign)."""
    dev, zero = _device(model), 0
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            g, _ = input_grad(model, ce_loss, x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev), False)
            zero += (g.flatten(1).abs().amax(1) == 0).sum().item()
    frac = zero / max(len(x), 1)
    return {"check": "input gradients not vanishing", "passed": frac <= max_zero,
            "detail": f"{100 * frac:.1f}% of images have an all-zero input gradient"}


def attack_checks(res: dict) -> list[dict]:
    """Checks on a `robustness` result: AutoAttack not weaker than PGD on the same images, and
    AutoAttack's own warning flags (none expected)."""
    ok, n = res["correct"], res["worst_case_n"]
    if "autoattack" not in ok:
        return []
    acc_pgd = min(ok[k][:n].float().mean().item() for k in res["pgd_names"])
    acc_aa = ok["autoattack"].float().mean().item()
    flags = res["autoattack_flags"]
    return [{"check": "AutoAttack not weaker than PGD", "passed": acc_aa <= acc_pgd + 0.02,
             "detail": f"on {n} images: AutoAttack {acc_aa:.3f}, strongest PGD {acc_pgd:.3f}"},
            {"check": "no AutoAttack flags", "passed": not flags,
             "detail": "; ".join(flags) or "AutoAttack raised no warning"}] + agreement_check(res)


def agreement_check(res: dict, tol: float = 0.01) -> list[dict]:
    """With a standard AutoAttack check (`standard_check`): the version run is within `tol`
    (one point) of the standard version on the same images."""
    c = res.get("autoattack_check")
    if not c:
        return []
    return [{"check": "AutoAttack version agrees with the standard one", "passed": c["version"] - c["standard"] <= tol + 1e-9,
             "detail": f"on the first {c['n']} images: standard {c['standard']:.3f}, this version {c['version']:.3f}"}]
