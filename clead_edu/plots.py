"""Figures (matplotlib + seaborn). Each function returns a matplotlib Figure.

Colours come from one colour-blind-safe palette (Okabe & Ito), defined below, and no
distinction that matters is carried by colour alone: a right or wrong prediction is also
marked with a tick or a cross in its title, clean and adversarial points differ in marker
(circle / cross), and the lines of one figure differ in marker and line style too.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

# ----------------------------------------------------------------------------- palette
# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common form of
# colour blindness. PALETTE is the order used for lines and bars; RIGHT/WRONG for predictions.
OKABE_ITO = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
             "purple": "#CC79A7", "sky_blue": "#56B4E9", "yellow": "#F0E442", "black": "#000000"}
PALETTE = list(OKABE_ITO.values())
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]          # one per line, with the colour
LINESTYLES = ["-", "--", "-.", ":"]
RIGHT, WRONG = OKABE_ITO["blue"], OKABE_ITO["vermillion"]
CLEAN_MARKER, ADV_MARKER = "o", "x"
CLASS_COLORS = "colorblind"     # seaborn's colour-blind palette for the (up to 10) classes


def verdict(pred, label) -> tuple[str, str]:
    """(mark, colour) for a prediction: ('\u2713', RIGHT) when pred == label, else ('\u2717', WRONG)."""
    return ("\u2713", RIGHT) if int(pred) == int(label) else ("\u2717", WRONG)


def line_style(i: int) -> dict:
    """Colour, marker and line style of the i-th line of a figure (distinct without colour)."""
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def to_image(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0,1] -> array for imshow (H, W) grey or (H, W, 3)."""
    x = x.detach().cpu().clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def adversarial_examples(x, x_adv, y, pred_clean, pred_adv, classes, n: int = 8,
                         title: str = "") -> plt.Figure:
    """Three rows for n examples: clean image, perturbation (magnified to fill the range), adversarial.

    x, x_adv: (N, C, H, W) in [0,1]; y, pred_clean, pred_adv: (N,) class indices.
    Titles are the predicted class with a tick (right, blue) or a cross (wrong, vermillion).
    """
    n = min(n, len(x))
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    for i in range(n):
        delta = x_adv[i] - x[i]
        scale = delta.abs().max().clamp_min(1e-12)
        cells = [(x[i], pred_clean[i]), (0.5 + 0.5 * delta / scale, None), (x_adv[i], pred_adv[i])]
        for row, (im, pred) in enumerate(cells):
            ax = axes[row, i]
            ax.imshow(to_image(im), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if pred is not None:
                mark, color = verdict(pred, y[i])
                ax.set_title(f"{mark} {classes[int(pred)]}", color=color, fontsize=9)
            else:
                ax.set_title(f"x{1 / scale.item():.0f}", fontsize=8, color="gray")
    for row, label in enumerate(["clean", "perturbation\n(magnified)", "adversarial"]):
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(title or "Adversarial examples (title = prediction; \u2713 right, \u2717 wrong)")
    fig.tight_layout()
    return fig


def eps_curves(eps_values, curves: dict[str, list[float]], *, train_eps: float | None = None,
               attack: str = "PGD", ax=None) -> plt.Figure:
    """Accuracy versus epsilon, one line per model. eps in pixel units, shown as k/255."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    ticks = np.asarray(eps_values) * 255
    for i, (name, acc) in enumerate(curves.items()):
        ax.plot(ticks, np.asarray(acc) * 100, label=name, **line_style(i))
    if train_eps is not None:
        ax.axvline(train_eps * 255, ls=(0, (1, 3)), color="gray", lw=1.5, label="training eps")
    ax.set(xlabel="epsilon (x/255, L-inf)", ylabel=f"accuracy under {attack} (%)", ylim=(-2, 102),
           title=f"Accuracy versus epsilon ({attack})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def umap_pairs(xy: np.ndarray, y, classes, *, ax=None, title: str = "", max_lines: int = 400) -> plt.Figure:
    """A joint UMAP of clean (circles) and adversarial (crosses) points, each pair joined by a line.

    xy: (2N, 2) from `features.umap_2d` (clean rows first); y: (N,) labels.
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 6))
    y = np.asarray(y)
    n = len(y)
    clean, adv = xy[:n], xy[n:]
    colors = np.array(sns.color_palette(CLASS_COLORS, max(10, len(classes))))
    for i in range(min(n, max_lines)):
        ax.plot([clean[i, 0], adv[i, 0]], [clean[i, 1], adv[i, 1]], color=colors[y[i]], lw=0.5, alpha=0.35)
    ax.scatter(clean[:, 0], clean[:, 1], c=colors[y], s=14, marker=CLEAN_MARKER, edgecolors="none", label="clean")
    ax.scatter(adv[:, 0], adv[:, 1], c=colors[y], s=18, marker=ADV_MARKER, linewidths=0.8, label="adversarial")
    for c in np.unique(y):
        ax.scatter([], [], color=colors[c], s=20, label=str(classes[c]))
    ax.set(title=title, xlabel="UMAP 1", ylabel="UMAP 2", xticks=[], yticks=[])
    ax.legend(fontsize=7, loc="best", markerscale=1.2, ncol=2)
    return fig


def umap_side_by_side(panels: dict[str, tuple[np.ndarray, np.ndarray, str]], classes) -> plt.Figure:
    """Several `umap_pairs` side by side: panels = {name: (xy, y, subtitle)}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6), squeeze=False)
    for ax, (name, (xy, y, sub)) in zip(axes[0], panels.items()):
        umap_pairs(xy, y, classes, ax=ax, title=f"{name}\n{sub}")
    fig.suptitle("Clean (o) and adversarial (x) embeddings; a line joins each twin")
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, list[dict]], key: str = "train_loss") -> plt.Figure:
    """One line per model of a per-epoch quantity from `train.train`'s history."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, hist) in enumerate(histories.items()):
        ax.plot([r["epoch"] for r in hist], [r[key] for r in hist], label=name, **line_style(i))
    ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title=key.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
