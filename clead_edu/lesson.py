"""What every notebook does first, in one call, and the models the notebooks share.

    L = ce.setup(preset="quick", dataset="digits", seed=0)   # settings, seed, device, data
    model, history = L.model("pgd_at")                       # load if trained before, else train
    models = L.models("standard", "pgd_at", "clead")         # {"Standard": ..., "PGD-AT": ..., "C-LEAD": ...}
    x, y = L.test_images()

A model is looked up before it is trained: in this notebook sequence's checkpoint
folder (`run_dir/<dataset>-<preset>/<objective>-e<epochs>-seed<seed>...`), then in
the output folders of `python -m clead_edu run` beside it (`runs/*/<objective>/`),
then in the pretrained bundle shipped with the package for this dataset and preset
(`pretrained.py`: the lessons' photo models; SHA-256 checked, copied into the checkpoint
folder). Only a checkpoint trained with exactly the same settings and architecture is
reused, so an exercise that trains with other settings never overwrites another's model.
`L.model(..., retrain=True)` trains it here even when one exists. With the environment
variable CLEAD_EDU_NO_TRAINING=1, a model that would have to be trained is an error instead
(the notebook tests use it: every lesson model must come from the bundle).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import data as D
from .bundle import BundleError, import_bundle
from .checkpoints import find_checkpoint, load_checkpoint, read_meta
from .config import RunConfig, TrainConfig, update
from .data import from_preset
from .device import pick_device, seed_everything
from .models import model_for
from .objectives import arm, label
from .threads import set_threads
from .train import train_arm


@dataclass
class Lesson:
    """A notebook's settings, device, data and checkpoint folder. `building`: the lesson
    builds the pretrained bundle (look only in its own folder, log test accuracy per epoch)."""
    cfg: RunConfig
    data: D.Data
    device: torch.device
    ckpt: Path
    building: bool = False

    def model(self, objective: str, *, progress: bool = True, retrain: bool = False, **changes):
        """The model trained with `objective` (a name or an arm, 'clead[lam=0.5]') and this
        lesson's settings changed by `changes` (TrainConfig fields, e.g. lam=0.5): loaded if
        trained before or pretrained (see the module docstring), else trained now and saved;
        `retrain=True` trains it anyway. Returns (model in eval mode, history)."""
        objective, own = arm(objective)
        changes = own | changes
        cfg = self.cfg.for_objective(objective, **changes)
        seed_everything(cfg.seed)
        model = model_for(self.data, self.cfg.arch).to(self.device)
        name = checkpoint_name(cfg, changes)
        found = None if retrain else self.find(name, cfg, model)
        if found:
            load_checkpoint(found, model, device=self.device)
            return model, read_meta(found.with_suffix(".json")).get("history", [])
        if os.environ.get("CLEAD_EDU_NO_TRAINING", "") not in ("", "0"):
            raise RuntimeError(f"{objective} ({name}) would be trained now, but CLEAD_EDU_NO_TRAINING is set and "
                               f"no checkpoint or pretrained model has these settings; rebuild the bundle with "
                               f"`python -m clead_edu pretrained` or unset the variable")
        train_set = D.subset(self.data.train, self.cfg.train_n, cfg.seed)
        folder = self.ckpt / name
        print(f"[clead_edu] training {objective} ({cfg.epochs} epochs, {len(train_set)} images) into {folder}")
        return train_arm(cfg, self.data, self.cfg.arch, train_set, self.device, out_dir=folder,
                         start_from=lambda source: self.model(source, progress=progress)[0],
                         resume=not retrain, progress=progress, test_set=self.data.test if self.building else None)

    def find(self, name: str, cfg: TrainConfig, model) -> Path | None:
        """The model.pt trained with exactly `cfg` for `model`'s architecture: in this lesson's
        folder `name`, in the main job's runs beside it, else copied from the pretrained bundle."""
        folder = self.ckpt / name
        if self.building:
            return find_checkpoint([folder], asdict(cfg), model.config)
        found = find_checkpoint([folder, self.ckpt.parent.parent], asdict(cfg), model.config)
        if found:
            print(f"[clead_edu] loaded {cfg.objective} model from {found.parent}")
            return found
        archive = pretrained_archive(self.ckpt.name)
        try:
            if archive.is_file():
                import_bundle(archive, self.ckpt, only={f"{name}/model.pt", f"{name}/model.json"})
        except BundleError as err:
            print(f"[clead_edu] not using the pretrained {name}: {err}")
            return None
        found = find_checkpoint([folder], asdict(cfg), model.config)
        if found:
            print(f"[clead_edu] loaded the pretrained {cfg.objective} model ({archive.name}, SHA-256 checked) "
                  f"into {folder}; retrain=True trains it here instead")
        return found

    def models(self, *objectives: str, **changes) -> dict:
        """`model(objective, **changes)` for each objective, as {label: model in eval mode}, with
        the report's labels ('PGD-AT', 'C-LEAD', ...) as keys, in the order given."""
        return {label(o): self.model(o, **changes)[0] for o in objectives}

    def test_images(self, n: int | None = None):
        """n test images (default: the preset's eval_n) as tensors x (n, C, H, W) in [0, 1], y (n,)."""
        return D.take(self.data.test, n or self.cfg.eval.eval_n, self.cfg.seed)


def pretrained_archive(lesson_folder: str) -> Path:
    """The pretrained bundle shipped for a lesson folder name '<dataset>-<preset>' (it may not exist)."""
    return Path(__file__).parent / "assets" / "pretrained" / f"{lesson_folder}.zip"


def checkpoint_name(cfg: TrainConfig, changes: dict) -> str:
    """'<objective>-e<epochs>-seed<seed>' plus every changed setting, e.g. 'clead-e5-seed0-lam0.5'."""
    extra = "".join(f"-{k}{v}" for k, v in sorted(changes.items()) if k not in ("epochs", "seed"))
    return f"{cfg.objective}-e{cfg.epochs}-seed{cfg.seed}{extra}"


def setup(preset: str = "quick", dataset: str = RunConfig.dataset, *, seed: int = 0, epochs: int | None = None,
          run_dir: str | Path = "../runs/notebooks", data_root: str | Path = "../data",
          threads: int | str | None = None, **changes) -> Lesson:
    """The standard first cell of every notebook: settings from the preset, seeds, the device
    (the fast path only on CUDA), the CPU threads (`threads.set_threads`: `threads`, else
    CLEAD_EDU_THREADS, else what the notebook may use), the data, the shared checkpoint folder."""
    cfg = from_preset(preset, dataset, seed=seed, **({"epochs": epochs} if epochs else {}), **changes)
    seed_everything(seed)
    device = pick_device()
    if device.type != "cuda":
        cfg = update(cfg, fast=False)        # mixed precision and on-device data are for CUDA only
    set_threads(threads)
    data = D.get_data(dataset, data_root, seed=seed)
    print(f"{data.name}: {len(data.train)} training / {len(data.test)} test images, "
          f"{data.num_classes} classes, shape {data.shape}; preset {preset}, eps {cfg.eps:.4g}")
    return Lesson(cfg, data, device, Path(run_dir) / f"{Path(dataset).name}-{preset}")
