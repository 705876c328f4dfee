"""Colour-blind-safe figures: right/wrong and clean/adversarial never by colour alone."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from conftest import REPO  # noqa: F401,E402

from clead_edu import plots, widgets  # noqa: E402
from clead_edu.models import build_model  # noqa: E402

CLASSES = [str(i) for i in range(10)]
PURE = {mcolors.to_hex(c) for c in ("red", "green", "tab:red", "tab:green")}


def test_adversarial_examples_mark_right_and_wrong_with_a_tick_or_cross():
    x = torch.rand(4, 1, 8, 8)
    y, pred = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 5, 2, 7])
    fig = plots.adversarial_examples(x, x, y, pred, pred, CLASSES, n=4)
    titles = [ax.title for ax in fig.axes[:4]]
    assert [t.get_text()[0] for t in titles] == ["\u2713", "\u2717", "\u2713", "\u2717"]
    assert {mcolors.to_hex(t.get_color()) for t in titles} == {plots.RIGHT.lower(), plots.WRONG.lower()}
    assert not PURE & {mcolors.to_hex(t.get_color()) for t in titles}


def test_lines_differ_in_marker_and_style_not_only_colour():
    curves = {f"model {i}": [1.0, 0.5, 0.1] for i in range(4)}
    fig = plots.eps_curves([0, 0.1, 0.2], curves, train_eps=0.1)
    lines = [ln for ln in fig.axes[0].lines if ln.get_label() in curves]
    assert len({(ln.get_marker(), ln.get_linestyle()) for ln in lines}) == 4
    assert [mcolors.to_hex(ln.get_color()) for ln in lines] == [c.lower() for c in plots.PALETTE[:4]]


def test_umap_pairs_clean_and_adversarial_differ_in_marker():
    xy, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(10)
    fig = plots.umap_pairs(xy, y, CLASSES)
    legend = {t.get_text(): h for t, h in zip(fig.axes[0].get_legend().texts, fig.axes[0].get_legend().legend_handles)}
    assert legend["clean"].get_paths()[0] != legend["adversarial"].get_paths()[0]


def test_explorer_figure_marks_the_prediction_and_hatches_a_wrong_top_class():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, [0.5], [0.5]).eval()
    x1 = torch.rand(1, 8, 8)
    pred = int(model(x1[None]).argmax())
    label = (pred + 1) % 10                      # make the prediction wrong
    fig = widgets.draw_attack(model, x1, label, CLASSES, eps=0.0)
    assert "\u2717" in fig.axes[0].get_title() and "\u2717" in fig.axes[2].get_title()
    bars = fig.axes[3].patches
    assert bars[pred].get_hatch() == "//" and not bars[label].get_hatch()
    assert mcolors.to_hex(bars[label].get_facecolor()) == plots.RIGHT.lower()
