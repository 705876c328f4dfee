"""Several seeds, intervals, the validation split, the ablation and the extra sanity checks."""
import fnmatch
import json
import tomllib

import pytest
from conftest import REPO

from clead_edu import study
from clead_edu.__main__ import main

TINY = ["--epochs", "1", "--train-n", "150", "--eval-n", "40", "--aa-n", "20", "--no-figures",
        "--no-progress"]


def test_study_two_seeds_and_continue(tmp_path, capsys):
    """`study` writes per-seed runs and a summary with intervals and the paired C-LEAD - PGD-AT row;
    a second call reuses the finished seeds; other settings in the same folder are refused."""
    out = tmp_path / "study"
    args = ["study", "--seeds", "0,1", "--objectives", "pgd_at,clead", "--out", str(out), *TINY]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert len(summary["accuracy"]["clead"]["pgd20"]) == 2
    diff = summary["clead_minus_pgd_at"]["clean"]
    assert diff == pytest.approx([c - p for c, p in zip(summary["accuracy"]["clead"]["clean"],
                                                        summary["accuracy"]["pgd_at"]["clean"])])
    text = (out / "summary.md").read_text()
    assert "C-LEAD − PGD-AT" in text and "Sanity checks:" in text and "±" in text
    assert "150 training images and 40 test images" in text        # the numbers used, not the settings
    boot = summary["paired_bootstrap"]["pgd_at"]["clead"]["worst_case"]      # per-example correctness kept
    worst = summary["paired"]["pgd_at"]["clead"]["worst_case"]
    assert boot[1] <= boot[0] <= boot[2] and boot[0] == pytest.approx(sum(worst) / 2, abs=1e-6)
    assert "over the evaluation images" in text
    pairs = summary["feature_space"]["paired"]["clead"]["pair_distance"]     # the pair metrics, per seed
    assert len(pairs) == 2 and "| **C-LEAD − PGD-AT** (paired) | " in text.split("## Feature space")[1]
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("reusing") == 2
    assert main([*args, "--lam", "0.5"]) == 2
    assert "holds a study with other settings" in capsys.readouterr().err
    more = [*args[:4], "pgd_at,clead,clead[lam=0.0]", *args[5:]]       # an arm the seeds lack
    assert main(more) == 2
    assert "has no clead[lam=0]" in capsys.readouterr().err


def test_ablation_on_validation_split(tmp_path):
    """`ablate` trains each variant on the training split only and picks one by validation PGD accuracy."""
    out = tmp_path / "abl"
    assert main(["ablate", "--seeds", "0", "--variants", "default,lam=2,PGD-AT (reference)",
                 "--out", str(out), *TINY]) == 0
    rows = [json.loads(line) for line in (out / "ablation.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["default", "lam=2", "PGD-AT (reference)"]
    assert all(0 <= r["val_clean"] <= 1 and 0 <= r["val_pgd"] <= 1 for r in rows)
    text = (out / "ablation.md").read_text()
    assert "**(chosen)**" in text and "the test split is not used" in text
    assert "120 training and 30 validation images" in text          # train_n 150, 20% held out
    assert "PGD-AT (reference) **(chosen)**" not in text


def test_ablation_never_sees_a_test_image(tmp_path, monkeypatch):
    """For every seed, `ablate` trains and scores only on images of that seed's *training* split
    (the split `run` uses with the same seed): its test set is never even read, and none of the
    images it trains or validates on is a test image of that seed (digits has no duplicate images)."""
    from dataclasses import replace

    import torch
    from torch.utils.data import Dataset

    from clead_edu import config as C
    from clead_edu import data as D
    from clead_edu import study as S

    class Forbidden(Dataset):
        def __len__(self):
            raise AssertionError("ablate read the test set")

        def __getitem__(self, i):
            raise AssertionError("ablate read the test set")

    real_get, real_train, real_acc = D.get_data, S.train_arm, S.E.accuracy
    seen = {"train": [], "val": []}
    monkeypatch.setattr(S.D, "get_data", lambda *a, **k: replace(real_get(*a, **k), test=Forbidden()))
    monkeypatch.setattr(S, "train_arm", lambda cfg, data, arch, ds, *a, **k: (
        seen["train"].append((cfg.seed, D.take(ds)[0])), real_train(cfg, data, arch, ds, *a, **k))[1])
    monkeypatch.setattr(S.E, "accuracy", lambda m, x, y, *a, **k: (seen["val"].append(x), real_acc(m, x, y, *a, **k))[1])
    cfg = D.from_preset("quick", "digits", epochs=1, train_n=300, eval_n=40, train_steps=1)
    (tmp_path / "abl").mkdir()
    S.ablate(cfg, [1, 2], ["default", "PGD-AT (reference)"], tmp_path / "abl")
    assert [s for s, _ in seen["train"]] == [1, 1, 2, 2] and len(seen["val"]) == 8

    def rows(x):
        return {tuple(r) for r in x.flatten(1).tolist()}
    for k, (seed, fit) in enumerate(seen["train"]):
        test = rows(real_get("digits", seed=seed).test.tensors[0])
        train = rows(real_get("digits", seed=seed).train.tensors[0])
        for x in (fit, *seen["val"][2 * k:2 * k + 2]):
            assert rows(x) <= train and not rows(x) & test
        assert not rows(fit) & rows(seen["val"][2 * k])          # validation images are held out of training
    assert not torch.equal(seen["val"][0], seen["val"][4])       # each seed draws its own split


def test_variant_names_survive_the_comma_separated_flag():
    """--variants is split at commas, so no variant name may contain one (and each runs once)."""
    from clead_edu.study import VARIANTS
    assert not [v for v in VARIANTS if "," in v]
    assert ",".join(VARIANTS).split(",") == list(VARIANTS)
    assert all(study.variant_changes(v) for v in VARIANTS)         # each names a valid arm


def published_copy(name: str) -> dict:
    """Asserts that the study `name` ships in the package as docs/results/<name>-study.json byte
    for byte, is packaged, and comes with the command its summary.md names; returns it."""
    shipped = study.STUDIES / f"{name}-study.json"
    assert shipped.read_bytes() == (REPO / "docs" / "results" / f"{name}-study.json").read_bytes()
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["clead_edu"]
    assert any(fnmatch.fnmatch(shipped.relative_to(REPO / "clead_edu").as_posix(), g) for g in globs)
    s = study.published(name)
    assert f"Command: `{s['command']}`" in (REPO / "docs" / "results" / f"{name}-study.md").read_text()
    return s


def test_published_study_is_the_results_copy_with_its_command():
    """The study shipped in the package (lesson 08 reads it) is docs/results/cifar10-mini-study.json
    byte for byte, is packaged, and comes with the command its summary.md names."""
    s = published_copy("cifar10-mini")
    assert s["seeds"] == [0, 1, 2] and len(s["accuracy"]["clead"]["worst_case"]) == 3
    with pytest.raises(ValueError, match="no published study 'digits'.*cifar10-mini"):
        study.published("digits")


def test_published_controls_study_is_the_results_copy_with_its_command():
    """The controls study (lesson 08's control section) ships byte for byte as in docs/results/, with
    its command, five seeds, and C-LEAD paired against both PGD-AT and the lam=0 control, which the
    file names by its old objective name and `published` by its arm."""
    s = published_copy("cifar10-mini-controls")
    assert s["seeds"] == [0, 1, 2, 3, 4] and s["settings"]["eval"]["eval_n"] == 517
    assert set(s["paired"]["clead[lam=0]"]) == {"clead", "clead_joint"} and len(s["paired"]["pgd_at"]["clead"]["worst_case"]) == 5
    assert "clead[lam=0]" in s["accuracy"] and "clead_lam0" not in s["accuracy"]


def test_published_final_study_is_the_results_copy_with_its_command():
    """The final table of docs/results.md section 11 (lesson 08 shows it) ships byte for byte, with
    the command that summarised its finished seeds, all 517 test images, and the bootstrap intervals
    over seeds and images of C-LEAD against PGD-AT and against its lam-0 control."""
    s = published_copy("cifar10-mini-final")
    assert s["command"].endswith(f"--seeds {','.join(map(str, s['seeds']))} --threads 1 --out runs/results/c10mini-final")
    assert s["settings"]["eval"]["eval_n"] == 517 and len(s["seeds"]) >= 2
    arm, control = "clead[head_dim=128,lam=1,tau=0.1]", "clead[head_dim=128,lam=0]"
    for ref in ("pgd_at", control):
        mean, low, high = s["paired_bootstrap"][ref][arm]["worst_case"]
        assert low <= mean <= high


def test_ablation_takes_arms_and_logs_the_contrastive_term(tmp_path):
    """Variants may be arms: an objective with changed settings. An arm training at another eps
    is still scored at the run's eps (its step scales with its eps); C-LEAD arms log the
    contrastive term, shown in ablation.md against its yardsticks; the sweep's frontier and
    term figures are drawn; a misspelt arm is refused before anything trains."""
    out = tmp_path / "abl"
    arms = "clead[head_dim=16,tau=0.5],pgd_at,pgd_at[eps=0.1]"
    assert main(["ablate", "--seeds", "0", "--variants", arms, "--out", str(out), *TINY]) == 0
    rows = [json.loads(line) for line in (out / "ablation.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["clead[head_dim=16,tau=0.5]", "pgd_at", "pgd_at[eps=0.1]"]
    last = rows[0]["history"][-1]
    assert last["train_supcon_floor"] < last["train_supcon_uniform"] and last["train_supcon"] > 0
    assert "train_supcon" not in rows[1]["history"][-1]
    assert study.variant_changes("pgd_at[eps=0.1]") == {"objective": "pgd_at", "eps": 0.1}
    text = (out / "ablation.md").read_text()
    assert "clead[head_dim=16,tau=0.5] **(chosen)**" in text
    assert f"{last['train_supcon']:.2f} ({last['train_supcon_uniform']:.2f} / " in text
    assert "scored at eps 0.2" in text
    assert (out / "frontier.png").stat().st_size > 1000 and (out / "contrastive_term.png").exists()
    assert main(["ablate", "--seeds", "0", "--variants", "clead[lamb=1]", "--out", str(tmp_path / "b"), *TINY]) == 2
    assert not (tmp_path / "b" / "ablation.jsonl").exists()


def test_paired_bootstrap_holds_the_image_sampling_that_seeds_alone_miss():
    """Three seeds that agree exactly (model ahead by 10 points on each, the same 200 images
    drawn): the interval over seeds has zero width, the bootstrap over seeds and images does
    not, and it is centred on the difference; more images narrow it; a seed without
    per-example correctness gives no bootstrap."""
    from clead_edu.report import paired_bootstrap

    def seed(n):
        ref = "".join("1" if i % 2 else "0" for i in range(n))            # 50% correct
        ahead = "".join("1" if i % 2 or i % 10 == 0 else "0" for i in range(n))   # +10 points
        return {"models": {"clead": {"correct": {"worst_case": ahead}}, "pgd_at": {"correct": {"worst_case": ref}}}}
    small, big = paired_bootstrap([seed(200)] * 3, "clead", "pgd_at"), paired_bootstrap([seed(2000)] * 3, "clead", "pgd_at")
    mean, low, high = small["worst_case"]
    assert mean == pytest.approx(0.1) and low < 0.1 < high and high - low > 0.03
    assert big["worst_case"][2] - big["worst_case"][1] < 0.5 * (high - low)
    assert paired_bootstrap([seed(200), {"models": {"clead": {}, "pgd_at": {}}}], "clead", "pgd_at") == {}


def test_frontier_labels_say_what_each_arm_changes():
    """The sweep figure labels a point by its arm's changes, eps in 255ths, the head left out."""
    label = lambda v: study.short(study.variant_changes(v))      # noqa: E731
    assert label("pgd_at[eps=4/255]") == "eps 4/255" and label("trades[beta=6]") == "beta 6"
    assert label("clead[head_dim=128,lam=1,tau=0.1,joint_bn=true]") == "lam 1, tau 0.1, joint BN"
    assert label("clead[head_dim=128,lam=0,joint_bn=false]") == "lam 0" and label("pgd_at") == "as run"
