"""Interactive explorers (ipywidgets), each with a twin that needs no kernel.

A notebook read without a kernel (on the course site, on GitHub) shows no live
widget, so every explorer here has a twin that works without one: a strip of
pictures computed once, one per epsilon, with a slider in plain HTML and
JavaScript (`eps_strip`, `feature_strip`).

    ce.widgets.eps_explorer(model, x, y, data.classes, eps_max=0.3)       # live, digits
    ce.widgets.eps_explorer(model, x, y, data.classes, eps_max=16/255, unit=1/255)   # photos
    ce.widgets.eps_strip(model, x[0], y[0], data.classes, [0, 2/255, 4/255, 8/255])  # no kernel
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import features
from .attacks import eval_mode, fgsm, pgd
from .evaluate import predict
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


def slider_html(frames: list[tuple[str, bytes]], *, start: int = 0, title: str = "") -> str:
    """One picture per slider position, switched in the browser: no kernel, no server.

    frames [(label, PNG bytes)], e.g. [("0/255", png), ("4/255", png)]; the picture of
    frames[start] shows first. Plain HTML: a range input whose `oninput` shows the picture of
    its position and writes its label; each picture's alt text is its label. Where scripts
    are stripped (GitHub) every picture shows, one under another: still a strip to read."""
    import base64
    import html
    if not frames or not 0 <= start < len(frames):
        raise ValueError(f"need at least one frame and 0 <= start < {len(frames)}, got start={start}")
    show = ("var s=this.closest('.clead-strip'),f=s.querySelectorAll('img.clead-frame'),i=+this.value;"
            "f.forEach(function(e,k){e.style.display=k==i?'':'none'});"
            "s.querySelector('output').textContent=f[i].alt;")
    hide = ' style="display:none"'
    imgs = "".join(f'<img class="clead-frame" alt="{html.escape(label)}" '
                   f'src="data:image/png;base64,{base64.b64encode(png).decode()}"{"" if k == start else hide}>'
                   for k, (label, png) in enumerate(frames))
    return (f'<div class="clead-strip"><label>{html.escape(title)} <input type="range" min="0" '
            f'max="{len(frames) - 1}" step="1" value="{start}" aria-label="{html.escape(title)}" '
            f'oninput="{html.escape(show)}"> <output>{html.escape(frames[start][0])}</output></label>'
            f"<div>{imgs}</div></div>")


def _num_classes(model) -> int:
    return model.fc.out_features


@torch.no_grad()
def _probs(model, x) -> np.ndarray:
    with eval_mode(model):
        return model(x).softmax(1)[0].cpu().numpy()


@contextmanager
def _one_thread(device: torch.device):
    """One CPU thread for one-image work: more only adds overhead (10x slower seen here
    on 2 busy cores)."""
    n = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _attack_one(model, x1, y1, eps, attack: str, steps: int):
    """x1 (C,H,W), y1 int -> (x_adv (C,H,W), class probabilities (K,)) under `attack`."""
    dev = next(model.parameters()).device
    x, y = x1[None].to(dev), torch.tensor([int(y1)], device=dev)
    torch.manual_seed(0)
    with _one_thread(dev):
        x_adv = ATTACK_CHOICES[attack](model, x, y, eps, steps) if eps > 0 else x
        return x_adv[0].cpu(), _probs(model, x_adv)


def eps_label(eps: float) -> str:
    """'4/255' when eps is a whole number of 255ths (photos), else '0.200' (digits)."""
    k = eps * 255
    return f"{k:.0f}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.3f}"


def _verdict(classes, pred: int, y1: int) -> str:
    """'cat (right)' / 'dog (wrong)': the words carry the verdict, not only the colour."""
    return f"{verdict(pred, y1)[0]} {classes[pred]} ({'right' if pred == y1 else 'WRONG'})"


def draw_attack(model, x1, y1, classes, eps: float, attack: str = "PGD (L-inf)", steps: int = 10,
                axes=None) -> plt.Figure:
    """Four panels for one image x1 (C,H,W) in [0,1] with true class y1: the clean image, the
    perturbation (magnified to fill the range), the adversarial image, the class probabilities."""
    return _draw(model, x1, int(y1), classes, eps, *_attack_one(model, x1, y1, eps, attack, steps), axes)


def _draw(model, x1, y1: int, classes, eps: float, x_adv, p, axes=None) -> plt.Figure:
    """`draw_attack` for an attack already run: x_adv (C,H,W) and its probabilities p (K,)."""
    clean = int(_probs(model, x1[None].to(next(model.parameters()).device)).argmax())
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2)) if axes is None else (axes[0].figure, axes)
    pred, delta = int(p.argmax()), x_adv - x1
    scale = float(delta.abs().max().clamp_min(1e-12))
    panels = [(x1, f"clean: {_verdict(classes, clean, y1)}", verdict(clean, y1)[1]),
              (0.5 + 0.5 * delta / scale, f"perturbation x{1 / scale:.0f}" if eps > 0 else "no perturbation",
               "black"),
              (x_adv, f"eps {eps_label(eps)}: {_verdict(classes, pred, y1)}", verdict(pred, y1)[1])]
    for ax, (im, title, color) in zip(axes, panels):
        ax.imshow(to_image(im), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10, color=color)
        ax.set_xticks([]), ax.set_yticks([])
    colors = [RIGHT if i == y1 else WRONG if i == pred else "0.7" for i in range(len(p))]
    hatches = ["//" if i == pred != y1 else "" for i in range(len(p))]
    axes[3].bar(range(len(p)), p, color=colors, hatch=hatches, edgecolor=OKABE_ITO["black"], linewidth=0.5)
    axes[3].set(ylim=(0, 1), ylabel="probability", title="probabilities (true: blue, wrong: hatched)")
    axes[3].set_xticks(range(len(p)), [str(c)[:6] for c in classes], rotation=45, fontsize=7)
    fig.tight_layout()
    return fig


def flip_eps(model, x, y, eps_values, attack: str = "PGD (L-inf)", steps: int = 10) -> list:
    """For each image of x (N,C,H,W) with true class y (N,): the smallest eps in `eps_values`
    (ascending) at which `attack` makes the prediction wrong, computed one image at a time
    exactly as the explorer does. 0.0 for an image already wrong at eps 0, None for one
    still right at the largest eps."""
    found = []
    for x1, y1 in zip(x, y):
        found.append(next((e for e in [0.0, *eps_values]
                           if int(_attack_one(model, x1, y1, e, attack, steps)[1].argmax()) != int(y1)), None))
    return found


def eps_explorer(model, x, y, classes, *, eps_max: float, steps: int = 10, unit: float | None = None,
                 start: int | None = None):
    """Live explorer: sliders for epsilon and the image, a dropdown for the attack.

    x (N, C, H, W) in [0,1], y (N,). The clean image, the perturbation, the adversarial
    image and the predicted probabilities are redrawn on every change; the line of text
    above them states the prediction. With `unit=1/255` (photos) the epsilon slider counts
    whole 255ths from 0 to eps_max; otherwise it moves in 20 steps. The first image shown
    is x[start], by default the first one the model classifies correctly. Returns the box.
    """
    import ipywidgets as W
    if unit:
        eps = W.IntSlider(value=0, min=0, max=round(eps_max / unit), description="eps (/255)",
                          continuous_update=False)
    else:
        eps = W.FloatSlider(value=0.0, min=0.0, max=eps_max, step=eps_max / 20, description="epsilon",
                            readout_format=".3f", continuous_update=False)
    attack = W.Dropdown(options=list(ATTACK_CHOICES), value="PGD (L-inf)", description="attack")
    if start is None:
        right = (predict(model, x) == y.cpu()).nonzero()
        start = int(right[0]) if len(right) else 0
    index = W.IntSlider(value=start, min=0, max=len(x) - 1, description="image",
                        continuous_update=False)
    status, out = W.HTML(), W.Image(format="png")

    def redraw(_=None):
        e = eps.value * (unit or 1.0)
        x1, y1 = x[index.value], int(y[index.value])
        x_adv, p = _attack_one(model, x1, y1, e, attack.value, steps)   # once, for the text and the figure
        pred = int(p.argmax())
        status.value = (f"<b>prediction: {_verdict(classes, pred, y1)}</b> ({100 * p[pred]:.0f}%), "
                        f"true class: {classes[y1]}, eps {eps_label(e)}")
        out.value = _png(_draw(model, x1, y1, classes, e, x_adv, p))
    for w in (eps, attack, index):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([eps, attack, index]), status, out])


def eps_strip(model, x1, y1, classes, eps_values, attack: str = "PGD (L-inf)", steps: int = 10,
              start: int | None = None, dpi: int = 80):
    """`eps_explorer` without a kernel: the four panels of `draw_attack` for one image x1 (C,H,W)
    with true class y1, computed now at each eps of `eps_values` (pixel units, ascending), behind
    an HTML slider (`slider_html`). Starts on eps_values[start] (default: the middle one).
    Returns an IPython HTML object (a notebook shows it; the course site keeps it working)."""
    from IPython.display import HTML
    frames = []
    for e in eps_values:
        fig = draw_attack(model, x1, y1, classes, float(e), attack, steps)
        fig.set_dpi(dpi)
        frames.append((f"eps {eps_label(float(e))}", _png(fig)))
    return HTML(slider_html(frames, start=len(frames) // 2 if start is None else start,
                            title=f"{attack}, epsilon"))


# ----------------------------------------------------------------------------- feature space

def feature_explorer(models: dict, x, y, classes, *, eps_values, value: float | None = None,
                     steps: int = 10, seed: int = 0):
    """Live UMAP explorer: pick the model, the class to highlight, and epsilon.

    models {name: model}; x (N, C, H, W) in [0, 1], y (N,). The epsilon slider moves through
    `eps_values` (pixel units, e.g. [k / 255 for k in range(17)]; 0 shows the clean images
    twice), labelled as eps_label does, starting at `value` (default: the largest). The attack,
    the embeddings and the UMAP are computed once per (model, eps) and cached, so the first
    view of each takes a few seconds and later ones (another class, back to a model) are instant.
    """
    import ipywidgets as W

    @lru_cache(maxsize=None)
    def layout(name: str, eps: float):
        return _feature_layout(models[name], x, y, eps, steps, seed)

    model_w = W.Dropdown(options=list(models), description="model")
    class_w = W.Dropdown(options=[("all", -1)] + [(str(c), i) for i, c in enumerate(classes)],
                         description="class")
    options = [(eps_label(float(e)), float(e)) for e in eps_values]
    eps_w = W.SelectionSlider(options=options, value=float(eps_values[-1] if value is None else value),
                              description="epsilon", continuous_update=False)
    status, out = W.HTML(), W.Image(format="png")

    def redraw(_=None):
        xy, labels, m = layout(model_w.value, eps_w.value)
        status.value = (f"pair distance {m['pair_distance']:.3f}, relative {m['relative_pair_distance']:.2f}, "
                        f"adversarial nearest-neighbour accuracy {100 * m['adv_nn_accuracy']:.0f}%")
        out.value = _png(draw_feature_view(xy, labels, classes, class_w.value,
                                           f"{model_w.value}, eps {eps_label(eps_w.value)}"))
    for w in (model_w, class_w, eps_w):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([model_w, class_w, eps_w]), status, out])


def _feature_layout(model, x, y, eps: float, steps: int, seed: int):
    """The UMAP of one model's clean and adversarial embeddings of x (N,C,H,W) at eps:
    (xy (2N, 2), labels (N,), pair metrics)."""
    torch.manual_seed(seed)
    pairs = features.embed_pairs(model, x, y, eps=eps, steps=steps)
    return features.umap_2d(pairs, seed=seed), pairs.y.numpy(), features.pair_metrics(pairs)


def feature_strip(models: dict, x, y, classes, *, eps_values, steps: int = 10, seed: int = 0,
                  start: int | None = None, dpi: int = 50):
    """`feature_explorer` without a kernel: for each model, its UMAP (all classes) at each eps of
    `eps_values` (pixel units), computed now, behind one HTML slider per model (`slider_html`).
    x (N,C,H,W) in [0,1], y (N,). Starts on eps_values[start] (default: the middle one).
    Costs one attack and one UMAP per model and eps. Returns an IPython HTML object."""
    from IPython.display import HTML
    strips = []
    for name, model in models.items():
        frames = []
        for e in eps_values:
            xy, labels, m = _feature_layout(model, x, y, float(e), steps, seed)
            fig = draw_feature_view(xy, labels, classes, -1, f"{name}, eps {eps_label(float(e))}, "
                                                              f"pair dist {m['pair_distance']:.3f}")
            fig.set_dpi(dpi)
            frames.append((f"eps {eps_label(float(e))}", _png(fig)))
        strips.append(slider_html(frames, start=len(frames) // 2 if start is None else start,
                                  title=f"{name}, epsilon"))
    return HTML("".join(strips))


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
