"""clead_edu: adversarial attacks, adversarial training and the C-LEAD contrastive defense.

    import clead_edu as ce
    L = ce.setup("quick", "digits")                 # settings, seed, device, data (notebooks)
    model, history = L.model("clead")               # trained once, then loaded
    x, y = L.test_images()
    ce.evaluate.robustness(model, x, y, eps=L.cfg.eps)

One module per job: config (settings, presets and the names of every choice), data, models,
attacks (guards: their input checks), losses (the pure losses), released (the losses and views
of the authors' released reading), objectives (the training steps by name: attack, then loss),
train (the loop), checkpoints, fast (the GPU fast path), evaluate, features, plots, widgets,
lesson (the notebooks' set-up), exercises (self-checks) and graders (the code exercises'),
pipeline (the main job), report, study (launch: its seeds side by side; `study.published`: the
studies shipped with the package), threads (how many CPU threads to use).
Importing runs nothing.
"""
from . import (attacks, checkpoints, config, data, evaluate, exercises, features, graders, guards, lesson,
               losses, models, objectives, plots, released, report, study, threads, train, widgets)
# (importing graders registers the code exercises' graders in exercises.GRADERS)
from .attacks import fgsm, pgd
from .data import from_preset
from .device import pick_device, seed_everything
from .lesson import setup

__version__ = "0.1.0"
__all__ = ["attacks", "checkpoints", "config", "data", "evaluate", "exercises", "features", "graders", "guards", "lesson",
           "losses", "models", "objectives", "plots", "released", "report", "study", "threads", "train", "widgets", "fgsm", "pgd",
           "from_preset", "pick_device", "seed_everything", "setup"]
