"""Every setting in one place: typed dataclasses, the named presets, validated once.

    cfg = data.from_preset("quick", "digits", epochs=5, lam=0.5)
    cfg.train.eps, cfg.eval.pgd_steps, cfg.arch

A run has three parts: `TrainConfig` (how one model is trained), `EvalConfig` (how
it is attacked and measured) and `RunConfig` (data, model, seed and the two others).
The field defaults are the `quick` preset; `PRESETS["full"]` lists what the `full`
preset changes. Epsilons are in pixel units (8/255), never in normalised units. The
settings with a few fixed choices list them here (`POSITIVES`, `AUTOATTACK_VERSIONS`,
`PRECISIONS`, ...); the names of objectives and datasets are their records' (`objectives.OBJECTIVES`,
`data.DATASETS`), which check them where they are used, with each dataset's threat model
and preset changes (`data.from_preset`). This module imports nothing else of the package.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, replace

COMPARED = ("standard", "pgd_at", "trades", "clead")       # the preset's arms: what `run` trains by default
REFERENCE, DEFENSE = "pgd_at", "clead"     # the reference defense and the one taught (a summary's clead_minus_pgd_at)
POSITIVES = ("class", "pair")                              # C-LEAD's positives modes
AUTOATTACK_VERSIONS = ("standard", "apgd", "quick")        # EvalConfig.autoattack (or None)
OLD_SETTINGS = {"released_head_input": "head_input"}     # names in results published before the rename
HEAD_INPUTS = ("features", "logits")              # what the released reading's head reads
PRECISIONS = ("auto", "bf16", "fp16", "fp32")             # TrainConfig.precision (device.pick_precision)
PROBES = ("clean", "adversarial")                          # the released reading's classifier stage


@dataclass
class TrainConfig:
    """Every knob of a training run. eps/alpha are in pixel units ([0,1] scale)."""
    objective: str = "standard"      # a name in objectives.OBJECTIVES
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05                 # peak SGD learning rate (cosine schedule, linear warm-up)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    eps: float = 8 / 255             # L-inf radius of the training attack
    alpha: float = 2 / 255           # PGD step size
    train_steps: int = 5             # PGD steps of the training attack (fgsm_at: one step of 1.25*eps)
    beta: float = 6.0                # TRADES weight of the KL term
    lam: float = 1.0                 # C-LEAD weight of the contrastive term (align: of the alignment term)
    lam_ramp: int = 0                # lam grows linearly from 0 over this many epochs (0 = constant)
    tau: float = 0.1                 # C-LEAD SupCon temperature
    mu: float = 0.0                  # C-LEAD weight of the representation term in the attack
    positives: str = "class"         # C-LEAD positives: 'class' or 'pair'
    head_dim: int = 0                # C-LEAD projection head output size; 0 = no head
    joint_bn: bool = False           # TRADES/C-LEAD: clean and adversarial views in one BatchNorm batch
    bn_stats_adv_only: bool = False  # TRADES/C-LEAD: BatchNorm running statistics from the adversarial view only
    head_input: str = "features"     # released reading: its head reads the features or the logits
    probe: str = "clean"             # released reading: its new classifier trained on clean or adversarial images
    start: str = ""                  # the objective whose trained model this one starts from ('' = its record's)
    seed: int = 0
    num_workers: int = 0
    fast: bool = False               # GPU fast path: data on the device, mixed precision, channels_last
    compile: bool = False            # torch.compile the model for the training steps
    precision: str = "auto"          # training steps: auto (the fast path on CUDA: bf16 from compute
                                     # capability 8.0, else fp16 with a gradient scaler; fp32 elsewhere),
                                     # bf16, fp16 or fp32 (device.pick_precision)

    def __post_init__(self):
        for name in ("objective", "start"):
            if not isinstance(getattr(self, name), str) or "[" in getattr(self, name):
                raise ValueError(f"{name} must be an objective's name, got {getattr(self, name)!r}")
        if not self.objective:
            raise ValueError("objective must be an objective's name, got ''")
        for name in ("epochs", "batch_size"):
            _check_int(name, getattr(self, name), 1)
        for name in ("train_steps", "head_dim", "seed", "num_workers", "lam_ramp"):
            _check_int(name, getattr(self, name), 0)
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "eps", "alpha", "beta", "lam", "tau", "mu"):
            _check_number(name, getattr(self, name))
        if self.eps > 1:
            raise ValueError(f"eps={self.eps} is in 0-255 units; write {self.eps:g}/255 (= {self.eps / 255:.4f})")
        if self.lr == 0 or self.tau == 0:
            raise ValueError("lr and tau must be > 0")
        for name in ("joint_bn", "bn_stats_adv_only"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.joint_bn and self.bn_stats_adv_only:
            raise ValueError("bn_stats_adv_only needs separate BatchNorm batches: with joint_bn the clean and "
                             "adversarial views are normalised together")
        if self.head_input not in HEAD_INPUTS:
            raise ValueError(f"head_input must be one of {HEAD_INPUTS}, "
                             f"got {self.head_input!r}")
        if self.probe not in PROBES:
            raise ValueError(f"probe must be one of {PROBES}, got {self.probe!r}")
        if not isinstance(self.positives, str) or self.positives not in POSITIVES:
            raise ValueError(f"positives must be one of {POSITIVES}, got {self.positives!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass
class EvalConfig:
    """How a trained model is measured: test images, attacks, AutoAttack, figures."""
    eval_n: int | None = 500         # test images for clean/FGSM/PGD (None = all)
    pgd_steps: int = 20
    restarts: int = 1
    extra_pgd_steps: int | None = None   # e.g. PGD-50 ...
    extra_restarts: int = 1              # ... with 3 restarts
    autoattack: str | None = "quick"     # one of AUTOATTACK_VERSIONS, or None (no AutoAttack)
    aa_n: int = 200                  # test images for AutoAttack (0 = skip)
    aa_check_n: int = 0              # also the standard AutoAttack on the first aa_check_n of them (a check)
    umap_n: int = 300
    curve_n: int = 300               # images for the eps curve and the sanity checks

    def __post_init__(self):
        if self.autoattack is not None and self.autoattack not in AUTOATTACK_VERSIONS:
            raise ValueError(f"autoattack must be one of {AUTOATTACK_VERSIONS} or None, got {self.autoattack!r}")
        for name in ("pgd_steps", "restarts", "extra_restarts"):
            _check_int(name, getattr(self, name), 1)
        for name in ("eval_n", "extra_pgd_steps", "aa_n", "aa_check_n", "umap_n", "curve_n"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0)


@dataclass
class RunConfig:
    """One run of the main job: the data, the model, and how each model is trained and measured."""
    dataset: str = "digits"          # a name in data.DATASETS ('folder:' + a path for folder:PATH)
    preset: str = "quick"
    arch: str = "small_cnn"
    train_n: int | None = 5000       # training images (None = all)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def eps(self) -> float:
        return self.train.eps

    def for_objective(self, objective: str, **changes) -> TrainConfig:
        """The TrainConfig of one model of this run (validated again)."""
        return replace(self.train, objective=objective, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The inverse of to_dict; settings saved under an older name (OLD_SETTINGS) read as today's."""
        train = {OLD_SETTINGS.get(k, k): v for k, v in d["train"].items()}
        return cls(**{**d, "train": TrainConfig(**train), "eval": EvalConfig(**d["eval"])})


# ----------------------------------------------------------------------------- presets

PRESETS = {
    "quick": {},                     # the field defaults above: CPU, minutes
    "full": dict(arch="preact_resnet18", train_n=None, epochs=30, batch_size=128, lr=0.1, train_steps=10,
                 fast=True, eval_n=None, extra_pgd_steps=50, extra_restarts=3, autoattack="standard",
                 aa_n=1000, umap_n=1000, curve_n=1000),   # GPU, paper scale; fast is used on CUDA only
}

def update(cfg: RunConfig, **changes) -> RunConfig:
    """A copy of `cfg` with settings changed by their flat names (each field name is unique
    across RunConfig, TrainConfig and EvalConfig). Changing eps keeps the step/eps ratio
    unless alpha is given too."""
    if "eps" in changes and "alpha" not in changes and changes["eps"] is not None:
        _check_number("eps", changes["eps"])
        changes["alpha"] = cfg.train.alpha * (changes["eps"] / cfg.train.eps)
    parts = {"run": {}, "train": {}, "eval": {}}
    for name, value in changes.items():
        parts[_part_of(name)][name] = value
    return replace(cfg, **parts["run"], train=replace(cfg.train, **parts["train"]),
                   eval=replace(cfg.eval, **parts["eval"]))


# ----------------------------------------------------------------------------- arms

def parse_arm(text: str) -> tuple[str, dict]:
    """An arm: an objective and the training settings it changes, spelled
    'objective[name=value,...]' (or just 'objective').

        parse_arm("clead[lam=0.3,tau=0.5,head_dim=128]") -> ("clead", {"lam": 0.3, "tau": 0.5, "head_dim": 128})
        parse_arm("pgd_at[eps=4/255]")                   -> ("pgd_at", {"eps": 0.01568...})

    Names are TrainConfig fields; each value is read as its field's type (a float may be
    written as a fraction, 4/255; a bool as true/false). Raises ValueError for a bad spelling,
    an unknown setting, or a value of the wrong type; the objective's record is checked by
    `objectives.arm`."""
    head, _, rest = text.strip().partition("[")
    if rest and not rest.endswith("]") or not head:
        raise ValueError(f"an arm is spelled objective[name=value,...], got {text!r}")
    changes = {}
    for item in filter(None, (i.strip() for i in rest[:-1].split(","))):
        name, eq, value = (part.strip() for part in item.partition("="))
        if not eq or name in ("objective", "seed") or name not in TRAIN_FIELDS:
            raise ValueError(f"{item!r} in arm {text!r} is not name=value with a training setting "
                             f"({', '.join(n for n in TRAIN_FIELDS if n not in ('objective', 'seed'))})")
        changes[name] = _read_value(name, value)
    replace(TrainConfig(objective=head), **changes)       # validate the values once
    return head, changes


def split_arms(text: str) -> list[str]:
    """A comma-separated list of arms, commas inside brackets kept:
    'clead[lam=1,tau=0.5],pgd_at' -> ['clead[lam=1,tau=0.5]', 'pgd_at']."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    return [i for i in items if i]


def arm_name(objective: str, changes: dict) -> str:
    """The spelling of an arm (the inverse of `parse_arm`): 'clead[lam=0.3,tau=0.5]'."""
    def spell(v):
        return str(v).lower() if isinstance(v, bool) else f"{v:.6g}" if isinstance(v, float) else str(v)
    inside = ",".join(f"{k}={spell(v)}" for k, v in changes.items())
    return f"{objective}[{inside}]" if inside else objective


def _read_value(name: str, text: str):
    """`text` as the type of TrainConfig's field `name` (fractions allowed for floats)."""
    kind = type(TRAIN_FIELDS[name])
    try:
        if kind is bool:
            return {"true": True, "false": False}[text.lower()]
        if kind is float:
            num, _, den = text.partition("/")
            return float(num) / float(den) if den else float(num)
        return kind(text)
    except (KeyError, ValueError, ZeroDivisionError):
        raise ValueError(f"{name}={text!r}: expected {kind.__name__}") from None


def _part_of(name: str) -> str:
    for part, cls in (("run", RunConfig), ("train", TrainConfig), ("eval", EvalConfig)):
        if name in {f.name for f in fields(cls)} - {"train", "eval"}:
            return part
    raise ValueError(f"unknown setting {name!r}")


def _check_int(name: str, v, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def _check_number(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


TRAIN_FIELDS = {f.name: getattr(TrainConfig(), f.name) for f in fields(TrainConfig)}   # name -> default
