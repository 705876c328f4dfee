"""Interactive explorers (ipywidgets), each with a static fallback figure.

A notebook read without a kernel (on a course page, on GitHub) shows no live
widget, so every explorer here has a `*_static` twin that draws the same point
as an ordinary matplotlib figure.

    ce.widgets.eps_explorer(model, x, y, data.classes, eps_max=0.3)       # live
    ce.widgets.eps_explorer_static(model, x[0], y[0], data.classes, [0, .1, .2, .3])
"""
from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import features as F
from .attacks import eval_mode, fgsm, pgd
from .plots import OKABE_ITO, RIGHT, WRONG, to_image, umap_pairs, verdict

ATTACK_CHOICES = {
    "FGSM": lambda m, x, y, e, s: fgsm(m, x, y, eps=e),
    "PGD (L-inf)": lambda m, x, y, e, s: pgd(m, x, y, eps=e, steps=s),
    "PGD targeted (-> next class)": lambda m, x, y, e, s: pgd(m, x, (y + 1) % _num_classes(m), eps=e,
                                                             steps=s, targeted=True),
}


def _png(fig) -> bytes:
    """The figure as PNG bytes for an ipywidgets Image, then closed (no duplicate, no leak).

    An Image widget whose value changes, rather than an Output widget that is cleared and
    redrawn: executing a notebook headless (papermill, nbconvert) now and then hung for
    good on a figure drawn inside an Output widget (jupyter/nbclient#312, nbconvert#1921)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    plt.close(fig)
    return buf.getvalue()


def _num_classes(model) -> int:
    return model.fc.out_features


@torch.no_grad()
def _probs(model, x) -> np.ndarray:
    with eval_mode(model):
        return model(x).softmax(1)[0].cpu().numpy()


def _attack_one(model, x1, y1, eps, attack: str, steps: int):
    """x1 (C,H,W), y1 int -> (x_adv (C,H,W), class probabilities (K,)) under `attack`."""
    dev = next(model.parameters()).device
    x, y = x1[None].to(dev), torch.tensor([int(y1)], device=dev)
    torch.manual_seed(0)
    x_adv = ATTACK_CHOICES[attack](model, x, y, eps, steps) if eps > 0 else x
    return x_adv[0].cpu(), _probs(model, x_adv)


def draw_attack(model, x1, y1, classes, eps: float, attack: str = "PGD (L-inf)", steps: int = 10,
                axes=None) -> plt.Figure:
    """Three panels for one image: adversarial image, perturbation (magnified), class probabilities."""
    x_adv, p = _attack_one(model, x1, y1, eps, attack, steps)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2)) if axes is None else (axes[0].figure, axes)
    pred = int(p.argmax())
    mark, color = verdict(pred, y1)
    axes[0].imshow(to_image(x_adv), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"eps {eps:.3f} ({eps * 255:.0f}/255): {mark} {classes[pred]}", color=color)
    delta = x_adv - x1
    scale = float(delta.abs().max().clamp_min(1e-12))
    axes[1].imshow(to_image(0.5 + 0.5 * delta / scale), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"perturbation x{1 / scale:.0f}" if eps > 0 else "no perturbation")
    colors = [RIGHT if i == int(y1) else WRONG if i == pred else "0.7" for i in range(len(p))]
    hatches = ["" if i == int(y1) else "//" if i == pred else "" for i in range(len(p))]
    axes[2].bar(range(len(p)), p, color=colors, hatch=hatches, edgecolor=OKABE_ITO["black"], linewidth=0.5)
    axes[2].set(ylim=(0, 1), ylabel="probability", title="probabilities (true: blue, wrong: hatched)")
    axes[2].set_xticks(range(len(p)), [str(c)[:6] for c in classes], rotation=45, fontsize=7)
    for ax in axes[:2]:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def eps_explorer(model, x, y, classes, *, eps_max: float, steps: int = 10):
    """Live explorer: sliders for epsilon and the image, a dropdown for the attack.

    x (N, C, H, W) in [0,1], y (N,). The image, the perturbation and the predicted
    class probabilities are redrawn on every change; the line of text above them
    states the prediction. Returns the ipywidgets box (display it, or leave it last in a cell).
    """
    import ipywidgets as W
    eps = W.FloatSlider(value=0.0, min=0.0, max=eps_max, step=eps_max / 20, description="epsilon",
                        readout_format=".3f", continuous_update=False)
    attack = W.Dropdown(options=list(ATTACK_CHOICES), value="PGD (L-inf)", description="attack")
    index = W.IntSlider(value=0, min=0, max=len(x) - 1, description="image", continuous_update=False)
    status, out = W.HTML(), W.Image(format="png")

    def redraw(_=None):
        _, p = _attack_one(model, x[index.value], y[index.value], eps.value, attack.value, steps)
        pred = int(p.argmax())
        status.value = (f"<b>prediction: {classes[pred]}</b> ({100 * p[pred]:.0f}%), "
                        f"true class: {classes[int(y[index.value])]}")
        out.value = _png(draw_attack(model, x[index.value], y[index.value], classes, eps.value,
                                     attack.value, steps))
    for w in (eps, attack, index):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([eps, attack, index]), status, out])


def eps_explorer_static(model, x1, y1, classes, eps_values, attack: str = "PGD (L-inf)",
                        steps: int = 10) -> plt.Figure:
    """Static fallback of `eps_explorer`: one row of `draw_attack` per eps value."""
    fig, axes = plt.subplots(len(eps_values), 3, figsize=(10, 3 * len(eps_values)), squeeze=False)
    for row, e in zip(axes, eps_values):
        draw_attack(model, x1, y1, classes, e, attack, steps, axes=row)
    return fig


# ----------------------------------------------------------------------------- feature space

def feature_explorer(models: dict, x, y, classes, *, eps_values, steps: int = 10, seed: int = 0):
    """Live UMAP explorer: pick the model, the class to highlight, and epsilon.

    Embeddings and UMAP are computed once per (model, eps) and cached, so the first
    view of each takes a few seconds and later ones are instant.
    """
    import ipywidgets as W

    @lru_cache(maxsize=None)
    def layout(name: str, eps: float):
        torch.manual_seed(seed)
        pairs = F.embed_pairs(models[name], x, y, eps=eps, steps=steps)
        return F.umap_2d(pairs, seed=seed), pairs.y.numpy(), F.pair_metrics(pairs)

    model_w = W.Dropdown(options=list(models), description="model")
    class_w = W.Dropdown(options=[("all", -1)] + [(str(c), i) for i, c in enumerate(classes)],
                         description="class")
    eps_w = W.SelectionSlider(options=[float(e) for e in eps_values], value=float(eps_values[-1]),
                              description="epsilon", continuous_update=False)
    status, out = W.HTML(), W.Image(format="png")

    def redraw(_=None):
        xy, labels, m = layout(model_w.value, eps_w.value)
        status.value = (f"pair distance {m['pair_distance']:.3f}, relative {m['relative_pair_distance']:.2f}, "
                        f"adversarial nearest-neighbour accuracy {100 * m['adv_nn_accuracy']:.0f}%")
        out.value = _png(draw_feature_view(xy, labels, classes, class_w.value,
                                           f"{model_w.value}, eps {eps_w.value:.3f}"))
    for w in (model_w, class_w, eps_w):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([model_w, class_w, eps_w]), status, out])


def draw_feature_view(xy, labels, classes, highlight: int = -1, title: str = "") -> plt.Figure:
    """`plots.umap_pairs`, with every class but `highlight` greyed out (-1 = show all)."""
    fig, ax = plt.subplots(figsize=(6.5, 6))
    if highlight < 0:
        return umap_pairs(xy, labels, classes, ax=ax, title=title)
    n = len(labels)
    keep = labels == highlight
    ax.scatter(xy[:n][~keep, 0], xy[:n][~keep, 1], c="lightgray", s=8)
    ax.scatter(xy[n:][~keep, 0], xy[n:][~keep, 1], c="lightgray", s=8, marker="x")
    sel = np.concatenate([keep, keep])
    umap_pairs(xy[sel], labels[keep], classes, ax=ax, title=f"{title}, class {classes[highlight]}")
    return fig
