"""clead_edu: adversarial attacks, adversarial training and the C-LEAD contrastive defense.

    import clead_edu as ce
    data = ce.data.get_data("digits")
    model = ce.models.model_for(data, "small_cnn")
    ce.train.train(model, data.train, ce.train.TrainConfig(objective="clead", eps=0.2, alpha=0.05))
    x, y = ce.data.take(data.test, 200)
    ce.evaluate.robustness(model, x, y, eps=0.2)

One module per stage: data, models, attacks, losses, train, evaluate, features,
plots, widgets; presets holds the named settings. Importing runs nothing.
"""
from . import attacks, data, evaluate, features, losses, models, plots, presets, train, widgets
from .attacks import fgsm, pgd
from .presets import preset

__version__ = "0.1.0"
__all__ = ["attacks", "data", "evaluate", "features", "losses", "models", "plots", "presets",
           "train", "widgets", "fgsm", "pgd", "preset"]
