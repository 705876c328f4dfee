"""The epsilon explorer on photos: the lessons' pretrained standard model on cifar10-sample,
flipped by perturbations of a few 255ths; the explorer's panels, slider units and first image;
the feature explorer's epsilon slider in 255ths and its cache."""
import matplotlib.pyplot as plt
import pytest

from clead_edu import data as D
from clead_edu import evaluate, widgets
import clead_edu as ce

LEVELS = [k / 255 for k in range(1, 17)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The lessons' standard photo model (from the pretrained bundle, never trained here), and
    40 test photos."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEAD_EDU_NO_TRAINING", "1")
        L = ce.setup("quick", "cifar10-sample", run_dir=tmp_path_factory.mktemp("runs"), threads=1)
        model, _ = L.model("standard")
    x, y = D.take(L.data.test, 40, seed=0)
    return model, x, y, L.data.classes


def test_quick_photo_model_beats_chance_and_flips_at_small_eps(photos):
    """Above chance (10%) on clean photos; most correct photos turn wrong at eps <= 4/255."""
    model, x, y, _ = photos
    flips = widgets.flip_eps(model, x, y, LEVELS, steps=10)
    right = [e for e in flips if e != 0.0]
    assert len(right) / len(y) == pytest.approx(evaluate.accuracy(model, x, y)) and len(right) > 0.2 * len(y)
    small = [e for e in right if e is not None and e <= 4 / 255 + 1e-9]
    assert len(small) > len(right) / 2, flips


def test_flip_eps_is_where_the_prediction_turns(photos):
    """At the eps flip_eps reports the prediction is wrong, one level below it still right."""
    model, x, y, _ = photos
    flips = widgets.flip_eps(model, x[:12], y[:12], LEVELS, steps=10)
    for x1, y1, e in zip(x[:12], y[:12], flips):
        if e is None or e == 0.0:
            continue
        probs = lambda eps: widgets._attack_one(model, x1, y1, eps, "PGD (L-inf)", 10)[1]
        assert probs(e).argmax() != y1
        below = LEVELS[LEVELS.index(e) - 1] if e > LEVELS[0] else 0.0
        assert probs(below).argmax() == y1


def test_draw_attack_shows_clean_perturbation_adversarial_and_probabilities(photos):
    model, x, y, classes = photos
    fig = widgets.draw_attack(model, x[0], y[0], classes, 4 / 255)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("clean:") and titles[1].startswith("perturbation x")
    assert titles[2].startswith("eps 4/255:") and "true" in titles[3]
    assert ("(right)" in titles[2]) != ("(WRONG)" in titles[2])        # the verdict is in words
    plt.close(fig)


def test_explorer_counts_255ths_and_starts_on_a_correct_photo(photos):
    model, x, y, classes = photos
    box = widgets.eps_explorer(model, x, y, classes, eps_max=16 / 255, unit=1 / 255, steps=5)
    eps, _, index = box.children[0].children
    assert (eps.min, eps.max, eps.value, eps.description) == (0, 16, 0, "eps (/255)")
    assert evaluate.predict(model, x[index.value:index.value + 1]).item() == y[index.value].item()
    before = box.children[2].value
    eps.value = 16
    assert "eps 16/255" in box.children[1].value and box.children[2].value != before


def test_eps_label():
    assert widgets.eps_label(4 / 255) == "4/255" and widgets.eps_label(0.2) == "51/255"
    assert widgets.eps_label(0.123) == "0.123"


def test_feature_explorer_slides_in_255ths_and_attacks_once_per_model_and_eps(photos, monkeypatch):
    """The epsilon slider runs 0, 1/255, ..., 16/255 (0 included), starts at 8/255; each
    (model, eps) is attacked once: changing the class or coming back to a model or an eps
    reuses it."""
    model, x, y, classes = photos
    calls = []
    real = widgets.features.embed_pairs
    monkeypatch.setattr(widgets.features, "embed_pairs", lambda m, *a, **k: calls.append(k["eps"]) or real(m, *a, **k))
    box = widgets.feature_explorer({"A": model, "B": model}, x[:30], y[:30], classes,
                                   eps_values=[k / 255 for k in range(17)], value=8 / 255, steps=2)
    model_w, class_w, eps_w = box.children[0].children
    assert [label for label, _ in eps_w.options][:2] == ["0/255", "1/255"] and eps_w.label == "8/255"
    eps_w.value = 0.0
    assert "pair distance 0.000" in box.children[1].value          # at eps 0 the twins are the images
    class_w.value = 3
    model_w.value = "B"
    model_w.value = "A"
    eps_w.value = 8 / 255
    assert calls == [8 / 255, 0.0, 0.0]


def test_slider_html_refuses_no_frames_and_a_start_outside():
    with pytest.raises(ValueError, match="at least one frame"):
        widgets.slider_html([])
    with pytest.raises(ValueError, match="start=2"):
        widgets.slider_html([("a", b"1"), ("b", b"2")], start=2)


def test_eps_strip_has_one_picture_per_eps_and_shows_the_start(photos):
    """Three eps, three pictures labelled by their eps; only the start's is shown; the
    pictures differ (the attack ran at each eps)."""
    import re
    model, x, y, classes = photos
    html = widgets.eps_strip(model, x[0], y[0], classes, [0.0, 4 / 255, 16 / 255], steps=3).data
    frames = re.findall(r'<img class="clead-frame" alt="([^"]+)" src="data:image/png;base64,([^"]+)"( style)?', html)
    assert [(alt, bool(hidden)) for alt, _, hidden in frames] == [("eps 0/255", True), ("eps 4/255", False),
                                                                ("eps 16/255", True)]
    assert len({png for _, png, _ in frames}) == 3
    assert 'max="2"' in html and 'value="1"' in html and "<output>eps 4/255</output>" in html


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_eps_strip_slider_changes_the_picture_in_chromium(photos, tmp_path, artifacts):
    """The strip as a page of its own, opened in headless Chromium: pressing the arrow keys on
    the slider shows another picture and its label, one picture at a time, with no console error."""
    from playwright.sync_api import sync_playwright
    model, x, y, classes = photos
    html = widgets.eps_strip(model, x[0], y[0], classes, [0.0, 2 / 255, 4 / 255, 8 / 255], steps=3, start=0).data
    page_file = tmp_path / "strip.html"
    page_file.write_text(f"<!doctype html><html><body>{html}</body></html>")
    visible = """() => [...document.querySelectorAll('img.clead-frame')].filter(i => i.offsetParent !== null)
                        .map(i => i.alt)"""
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(page_file.as_uri(), wait_until="load")
            assert page.evaluate(visible) == ["eps 0/255"] and page.inner_text("output") == "eps 0/255"
            page.focus("input[type=range]")
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            assert page.evaluate(visible) == ["eps 4/255"] and page.inner_text("output") == "eps 4/255"
            page.screenshot(path=str(artifacts / "strip_4.png"))
            page.keyboard.press("End")
            assert page.evaluate(visible) == ["eps 8/255"]
        finally:
            browser.close()
    assert errors == [], errors


def test_feature_strip_has_one_slider_per_model_and_one_picture_per_eps(photos):
    """Two models, three eps: two strips of three pictures, each starting on the middle eps."""
    import re
    model, x, y, classes = photos
    html = widgets.feature_strip({"A": model, "B": model}, x[:20], y[:20], classes,
                                 eps_values=[0.0, 4 / 255, 8 / 255], steps=1).data
    strips = html.split('<div class="clead-strip">')[1:]
    assert len(strips) == 2 and all(s.count('class="clead-frame"') == 3 for s in strips)
    assert [re.search(r"<output>([^<]+)</output>", s).group(1) for s in strips] == ["eps 4/255"] * 2
    assert "A, epsilon" in strips[0] and "B, epsilon" in strips[1]
