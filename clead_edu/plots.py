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


# ----------------------------------------------------------------------------- the lessons' figures

def image_grid(x, classes, y, pred=None, *, cols: int = 8, title: str = "") -> plt.Figure:
    """Images x (N, C, H, W) in [0,1] with their class as title; with `pred`, the title is the
    prediction, marked ✓ (right) or ✗ (wrong), so not by colour alone."""
    rows = -(-len(x) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, img) in enumerate(zip(axes.flat, x)):
        ax.imshow(to_image(img), cmap="gray", vmin=0, vmax=1)
        if pred is None:
            ax.set_title(classes[int(y[i])], fontsize=9)
        else:
            mark, color = verdict(pred[i], y[i])
            ax.set_title(f"{mark} {classes[int(pred[i])]}", color=color, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion(y, pred, classes) -> plt.Figure:
    """Confusion matrix: rows the true class, columns the predicted one (counts)."""
    from sklearn.metrics import confusion_matrix
    cm = confusion_matrix(np.asarray(y), np.asarray(pred), labels=range(len(classes)))
    fig, ax = plt.subplots(figsize=(5, 4))
    sns.heatmap(cm, annot=len(classes) <= 10, fmt="d", cmap="Blues", cbar=False,
                xticklabels=classes, yticklabels=classes, ax=ax)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.tight_layout()
    return fig


def accuracy_bars(results: dict[str, dict], columns: dict[str, str], *, title: str = "") -> plt.Figure:
    """Grouped bars: one group per model of `results` ({model: {key: accuracy in [0,1]}}),
    one bar per entry of `columns` ({key: legend label}), labelled with the percentage."""
    names, w = list(results), 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    for j, ((key, label), hatch) in enumerate(zip(columns.items(), ["", "//", "..", "xx"])):
        vals = [100 * results[n][key] for n in names]
        bars = ax.bar(np.arange(len(names)) + (j - (len(columns) - 1) / 2) * w, vals, w, label=label, hatch=hatch)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(np.arange(len(names)), names, rotation=15 if len(names) > 4 else 0)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 110), title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def epoch_logs(logs: dict[str, dict[str, list[float]]], *, ylabel: str, title: str = "") -> plt.Figure:
    """Side-by-side panels, one per run: {run: {quantity: per-epoch accuracy in [0,1]}}."""
    fig, axes = plt.subplots(1, len(logs), figsize=(5.5 * len(logs), 4), sharey=True, squeeze=False)
    for ax, (name, log) in zip(axes[0], logs.items()):
        for (key, values), style in zip(log.items(), ["s:", "o-", "^-", "D--"]):
            ax.plot(np.arange(1, len(values) + 1), 100 * np.asarray(values), style, label=f"{key} accuracy")
        ax.set(title=name, xlabel="epoch", ylim=(-3, 103))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(loc="center right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def steps_curve(steps: list[int], acc_by_restarts: dict[int, list[float]], *, title: str = "") -> plt.Figure:
    """Robust accuracy versus the number of PGD steps (log axis), one line per number of restarts."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for (r, accs), m in zip(acc_by_restarts.items(), "osD^"):
        ax.plot(steps, [100 * a for a in accs], f"{m}-", label=f"PGD, {r} restart{'s' * (r > 1)}")
    ax.set(xscale="log", xlabel="PGD steps k (log scale)", ylabel="robust accuracy (%)", title=title)
    ax.set_xticks(steps, [str(k) for k in steps])
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def cosine_histograms(cosines: dict[str, torch.Tensor], *, title: str = "") -> plt.Figure:
    """Histograms of per-image cosine similarities in [0,1], one per model, means in the legend."""
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 41)
    for (name, c), hatch in zip(cosines.items(), ["", "//", "..", "xx"]):
        ax.hist(c.numpy(), bins=bins, alpha=0.6, hatch=hatch, label=f"{name} (mean {c.mean():.2f})")
    ax.set(xlabel="cosine similarity of z(x) and z(x_adv)", ylabel="number of test images", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def softmax_geometry(anchor, views, names, is_pos, p, q, tau: float) -> plt.Figure:
    """Left: 2-D unit vectors, the anchor and its views (solid = positive, dashed = negative).
    Right: the anchor's softmax over the views, p = softmax(cos/tau), against the target q."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    t = np.linspace(0, 2 * np.pi, 200)
    ax1.plot(np.cos(t), np.sin(t), color="lightgray", lw=1)
    ax1.annotate("", xy=list(map(float, anchor)), xytext=(0, 0), arrowprops=dict(arrowstyle="->", lw=2))
    ax1.text(1.05, -0.12, "anchor", fontsize=9)
    for name, v, pos, pi in zip(names, views, is_pos, p):
        c, ls = ("#009E73", "-") if pos else ("#D55E00", "--")
        ax1.annotate("", xy=list(map(float, v)), xytext=(0, 0),
                     arrowprops=dict(arrowstyle="->", color=c, lw=1.5, linestyle=ls))
        ax1.text(1.12 * v[0] - 0.15, 1.12 * v[1], f"{name}{' +' if pos else ''}\np={pi:.2f}", fontsize=7.5, color=c)
    ax1.set(xlim=(-1.5, 1.6), ylim=(-1.4, 1.4), aspect="equal", xlabel="z[0]", ylabel="z[1]",
            title="2-D unit embeddings (+ solid = positive, dashed = negative)")
    xs = np.arange(len(names))
    ax2.bar(xs - 0.2, p, 0.4, label="p = softmax(cos/τ)")
    ax2.bar(xs + 0.2, q, 0.4, hatch="//", label="target q (uniform over positives)")
    ax2.set_xticks(xs, list(names), rotation=25, ha="right", fontsize=8)
    ax2.set(ylabel="probability", title=f"the anchor's softmax versus its target (τ = {tau})")
    ax2.legend()
    fig.tight_layout()
    return fig


def supcon_mask_grid(labels: torch.Tensor, names: list[str], masks: dict) -> plt.Figure:
    """The positive and denominator masks of SupCon for each mode: masks = {mode: (pos, denom)},
    each (2B, 2B) over clean views then adversarial views with class `labels` (2B,)."""
    fig, axes = plt.subplots(1, 2 * len(masks), figsize=(8 * len(masks), 4.4))
    ticks = [f"{n} ({l})" for n, l in zip(names, labels.tolist())]
    half = len(labels) / 2 - 0.5
    for col, (mode, pair) in enumerate(masks.items()):
        for ax, m, what in zip(axes[2 * col:2 * col + 2], pair, ("positives", "denominator")):
            ax.imshow(m.numpy(), cmap="Greens" if what == "positives" else "Blues", vmin=0, vmax=1.3)
            ax.set_xticks(range(len(ticks)), [t.replace(" ", "\n") for t in ticks], fontsize=7)
            ax.set_yticks(range(len(ticks)), ticks, fontsize=7)
            ax.axhline(half, color="gray", lw=0.8), ax.axvline(half, color="gray", lw=0.8)
            ax.set(title=f"positives={mode!r}: {what}", xlabel="view (class)", ylabel="anchor (class)")
    fig.tight_layout()
    return fig


def temperature_sweep(sim: torch.Tensor, labels: list[str], is_pos, taus=None) -> plt.Figure:
    """The anchor's softmax weights softmax(sim / tau) over its views as tau varies (log axis);
    sim (V,) cosines, labels (V,) legend entries, is_pos (V,) solid = positive, dashed = negative."""
    taus = np.logspace(-2, 0.5, 60) if taus is None else taus
    shares = np.stack([(sim / t).softmax(0).numpy() for t in taus])
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for j, label in enumerate(labels):
        ax.plot(taus, shares[:, j], "-" if is_pos[j] else "--", lw=2, label=label)
    for t in (0.05, 0.2, 1.0):
        ax.axvline(t, color="gray", lw=0.6, ls=":")
    ax.set(xscale="log", xlabel="temperature τ (log scale)", ylabel="softmax weight p_a",
           title="the anchor's softmax weights versus τ (solid = positive, dashed = negative)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def unit_embeddings(panels: dict[str, np.ndarray], labels: np.ndarray, *, rows: int, title: str = "") -> plt.Figure:
    """2-D unit embeddings on the circle, one panel per entry of `panels` ({subtitle: z (N, 2)}),
    coloured and shaped by class `labels` (N,)."""
    k = int(labels.max()) + 1
    colors, markers = np.array(sns.color_palette("colorblind", k)), "os^DvP*X"
    fig, axes = plt.subplots(rows, -(-len(panels) // rows), figsize=(12, 4.5 * rows), squeeze=False)
    circle = np.linspace(0, 2 * np.pi, 200)
    for ax, (sub, z) in zip(axes.flat, panels.items()):
        ax.plot(np.cos(circle), np.sin(circle), color="lightgray", lw=1)
        for c in range(k):
            ax.scatter(z[labels == c, 0], z[labels == c, 1], color=colors[c], marker=markers[c % 8],
                       s=45, alpha=0.7, label=f"class {c}")
        ax.set(aspect="equal", xlim=(-1.2, 1.2), ylim=(-1.2, 1.2), xlabel="z[0]", ylabel="z[1]", title=sub)
    axes[0, 0].legend(fontsize=8, loc="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def frontier(points: dict[str, list[tuple[float, float, str]]], *, joined=None, zoom=None,
             xlabel: str = "clean accuracy (%)", ylabel: str = "robust accuracy (%)",
             title: str = "") -> plt.Figure:
    """The clean/robust trade-off: {group: [(clean, robust, label), ...]} with accuracies in
    [0, 1]; one marker style per group, each point labelled. `joined`: the groups whose points
    are joined by a line in order of clean accuracy (one knob turned, e.g. PGD-AT's training eps;
    default all). `zoom` (x0, x1, y0, y1) in %: a second panel showing that region."""
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(12 if zoom else 6.5, 5), squeeze=False)
    for ax in axes[0]:
        for i, (group, pts) in enumerate(points.items()):
            pts = sorted(pts)
            xs, ys = 100 * np.array([p[0] for p in pts]), 100 * np.array([p[1] for p in pts])
            style = line_style(i) | ({} if joined is None or group in joined else {"linestyle": "none"})
            ax.plot(xs, ys, **style, label=group)
            for x, y, (_, _, text) in zip(xs, ys, pts):
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    axes[0][0].set_title(title)
    if zoom:
        axes[0][1].set(xlim=zoom[:2], ylim=zoom[2:], title="zoom")
    fig.tight_layout()
    return fig


def contrastive_term(histories: dict[str, list[dict]], *, title: str = "") -> plt.Figure:
    """The contrastive term per epoch (nats) of each run that logged one ({run: train.train's
    history}), with its batch's uniform-similarity value and floor as dashed and dotted lines."""
    fig, ax = plt.subplots(figsize=(8.5, 4))
    for i, (name, rows) in enumerate(histories.items()):
        rows = [r for r in rows if "train_supcon" in r]
        epochs = [r["epoch"] for r in rows]
        line, = ax.plot(epochs, [r["train_supcon"] for r in rows], "o-", label=name)
        ax.plot(epochs, [r["train_supcon_uniform"] for r in rows], "--", color=line.get_color(), alpha=0.5)
        ax.plot(epochs, [r["train_supcon_floor"] for r in rows], ":", color=line.get_color(), alpha=0.5)
    ax.set(xlabel="epoch", ylabel="SupCon term (nats)", title=title or
           "contrastive term (dashed: uniform similarities, dotted: floor)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig
