"""clead_edu: adversarial attacks, adversarial training and the C-LEAD contrastive defense.

    import clead_edu as ce
    L = ce.setup("quick", "digits")                 # settings, seed, device, data (notebooks)
    model, history = L.model("clead")               # trained once, then loaded
    x, y = L.test_images()
    ce.evaluate.robustness(model, x, y, eps=L.cfg.eps)

One module per job: config (settings and presets), data (one record per dataset, loaders,
`from_preset`), models, attacks (guards: their input checks), losses (the pure losses and
`embed`), released (the losses and views of the authors' released reading), objectives (one
record per objective: its step, attack then loss, and what the reports need), train (the loop,
and `train_arm`: seed, build, start, train, save), checkpoints, fast (the GPU fast path),
evaluate, features, plots, widgets, lesson (the notebooks' set-up), exercises (self-checks;
`exercises.grade` loads graders, the code exercises', when first called), pipeline (the main
job), report, study (launch: its seeds side by side; `study.published`: the studies shipped
with the package), threads (how many CPU threads to use). The course-building commands (site,
editions, the pretrained bundle) are in `clead_edu.course`, which this does not import.
Importing runs nothing.
"""
from . import (attacks, checkpoints, config, data, evaluate, exercises, features, guards, lesson,
               losses, models, objectives, plots, released, report, study, threads, train, widgets)
from .attacks import fgsm, pgd
from .data import from_preset
from .device import pick_device, seed_everything
from .lesson import setup

__version__ = "0.1.0"
__all__ = ["attacks", "checkpoints", "config", "data", "evaluate", "exercises", "features", "guards", "lesson",
           "losses", "models", "objectives", "plots", "released", "report", "study", "threads", "train", "widgets", "fgsm", "pgd",
           "from_preset", "pick_device", "seed_everything", "setup"]
