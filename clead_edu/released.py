"""C-LEAD as its authors released it (github.com/suklav/C_Lead, commit 2b8778a): a second reading.

What the released files show (docs/clead_released.md cites each file): a backbone started
from a trained classifier, a *linear* projection head to 128 dimensions with L2
normalisation, and a label-free SimCLR loss over three views of each image - the anchor,
an augmented view and an adversarial view - averaged over the anchor-vs-view-2 and
anchor-vs-view-3 terms, with every other image of the batch a negative. The classifier
trained afterwards is not in the released files.

Here, in three steps, each declared in its record in `objectives.py` and carried out by the
training loop like any other objective's:

1. start from a trained model, the standard one unless the arm's `start` names another
   (`train.train_arm` trains or loads it first and `train.train` copies its weights);
2. fine-tune backbone + linear head (`linear_head`) with `released_loss` (the objective's
   step, batch by batch); the adversarial view is made online by PGD against the
   label-free contrastive term (`three_views`);
3. `new_classifier`, the finishing stage `train.train` runs after the epochs: a new linear
   classifier on the frozen features (`classifier_step`), clean cross-entropy, or trained on
   PGD images (`adversarial_classifier_step`).

Neither the start nor the classifier is released, so its arms bracket them: they start from
the standard or the PGD-AT model (`start`) and end with a clean or an adversarially trained
probe (`probe`), e.g. `clead_released[start=pgd_at,probe=adversarial]`. The head reads the
penultimate features, or (`TrainConfig.head_input="logits"`) the classifier's K
outputs, as the released head reads its backbone's 1000-d output.

    z = normalize(W h(x)),  W: D -> 128 (linear)
    L = 1/2 [ NTXent(z_anchor, z_aug) + NTXent(z_anchor, z_adv) ]
    NTXent(a, b) = mean_i -log( exp(a_i.b_i/T) / (sum_{k != i} exp(a_i.a_k/T) + sum_k exp(a_i.b_k/T)) )
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attacks import eval_mode, pgd
from .losses import embed, normalized

TEMPERATURE = 0.1        # criterion_kwargs.temperature of SCAN's simclr configs (not in the release)
PROJECTION_DIM = 128     # features_dim of Contrastive_mod_linear_Model (models/models.py)


def ntxent_pair(anchor: torch.Tensor, view: torch.Tensor, tau: float = TEMPERATURE) -> torch.Tensor:
    """One term of the released loss: each anchor i against the 2B candidates [anchors; views]
    without itself; the positive is its own view i. Per anchor (B,).

    anchor, view: (B, D) L2-normalised embeddings."""
    b = anchor.shape[0]
    logits = anchor @ torch.cat([anchor, view]).T / tau                     # (B, 2B)
    itself = torch.eye(b, 2 * b, dtype=torch.bool, device=anchor.device)    # anchor i vs anchor i
    logits = logits.masked_fill(itself, float("-inf"))
    own_view = torch.arange(b, device=anchor.device) + b
    return -logits.log_softmax(dim=1)[torch.arange(b, device=anchor.device), own_view]


def released_loss(z: torch.Tensor, tau: float = TEMPERATURE) -> torch.Tensor:
    """The released three-view loss: z (B, 3, D) normalised embeddings of [anchor, augmented,
    adversarial]; the mean of the anchor-vs-augmented and anchor-vs-adversarial NT-Xent terms."""
    if z.dim() != 3 or z.shape[1] != 3:
        raise ValueError(f"expected z of shape (B, 3, D), got {tuple(z.shape)}")
    anchor = z[:, 0]
    return (ntxent_pair(anchor, z[:, 1], tau).mean() + ntxent_pair(anchor, z[:, 2], tau).mean()) / 2


# ----------------------------------------------------------------------------- the three views

def augment(x: torch.Tensor) -> torch.Tensor:
    """A random augmented view, on tensors in [0, 1]: a random shift (pad by H/8, at least 1
    pixel, edge-replicated, then a random crop), a random horizontal flip for colour images
    (not for digits, whose meaning a flip can change) and brightness/contrast jitter in [0.8, 1.2]."""
    b, c, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b)).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    if c == 3:
        flip = torch.rand(b, device=x.device) < 0.5
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)
    bright, contrast = (0.8 + 0.4 * torch.rand(2, b, 1, 1, 1, device=x.device, dtype=x.dtype))
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean * bright).clamp(0, 1)


def contrastive_inner(z_anchor: torch.Tensor, head: nn.Module, tau: float = TEMPERATURE, head_input: str = "features"):
    """The attack objective for the adversarial view, label-free: each image's NT-Xent term
    against the (fixed) anchors, per example (B,), as a `loss_fn` for `attacks.pgd`."""
    def loss_fn(model, x_adv, y):
        return ntxent_pair(z_anchor, embed(model, x_adv, head, head_input), tau)
    return loss_fn


def three_views(model: nn.Module, head: nn.Module, x: torch.Tensor, head_input: str = "features",
                **attack) -> torch.Tensor:
    """(B, 3, C, H, W): the anchor x, an augmented view, and an adversarial view within
    attack["eps"] of x (L-inf), made online by PGD (`attacks.pgd`, which takes `attack`:
    eps, alpha, steps in pixel units) against the contrastive term, model in eval mode."""
    with torch.no_grad(), eval_mode(model), eval_mode(head):
        z_anchor = embed(model, x, head, head_input)
    with eval_mode(head):
        x_adv = pgd(model, x, torch.zeros(len(x), dtype=torch.long, device=x.device),
                    loss_fn=contrastive_inner(z_anchor, head, head_input=head_input), **attack)
    return torch.stack([x, augment(x), x_adv], dim=1)


def forward_three(model: nn.Module, head: nn.Module, views: torch.Tensor,
                  head_input: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """The training forward: the 3B views (B, 3, C, H, W) as one batch, as released (so in train
    mode BatchNorm moves its running statistics once, with this batch). Returns z (B, 3, 128)
    and, for the training log only, the anchors' logits (B, K), detached."""
    b = views.shape[0]
    h = model.features(views.flatten(0, 1))
    out = h if head_input == "features" else model.fc(h)
    with torch.no_grad():
        logits = model.fc(h) if head_input == "features" else out.detach()
    return normalized(out, head).view(b, 3, -1), logits.view(b, 3, -1)[:, 0]


# ----------------------------------------------------------------------------- head and classifier

def linear_head(model: nn.Module, cfg=None) -> nn.Module:
    """Step 2's projection head: linear to 128 (normalised by `losses.embed`), from the features
    (model.feature_dim) or, with cfg.head_input "logits", from the K outputs."""
    head_input = cfg.head_input if cfg is not None else "features"
    return nn.Linear(model.feature_dim if head_input == "features" else model.fc.out_features, PROJECTION_DIM)


def new_classifier(model: nn.Module, cfg) -> tuple[str, Callable, list]:
    """Step 3, the finishing stage: re-initialise model.fc (seeded with cfg.seed) and return
    (stage name, step, model.fc's parameters) for the training loop, which trains them
    cfg.epochs epochs with the usual SGD schedule; the rest stays frozen. cfg.probe "clean": a
    linear probe on clean images (`classifier_step`); "adversarial": on PGD images made
    against the whole model, probe included (`adversarial_classifier_step`)."""
    steps = {"clean": ("classifier", classifier_step), "adversarial": ("adversarial classifier",
                                                                      adversarial_classifier_step)}
    torch.manual_seed(cfg.seed)
    model.fc.reset_parameters()
    return *steps[cfg.probe], list(model.fc.parameters())


def classifier_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg=None, head=None):
    """Clean cross-entropy of model.fc on the frozen features: computed without gradients and
    in eval mode (BatchNorm keeps its statistics). Returns (loss, logits (B, K))."""
    with torch.no_grad(), eval_mode(model):
        h = model.features(x)
    logits = model.fc(h)
    return F.cross_entropy(logits, y), logits


def adversarial_classifier_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg, head=None):
    """The adversarially trained probe: PGD on the probe's input image (the run's training
    budget: cfg.eps, cfg.alpha, cfg.train_steps; eval mode) against the whole model, then
    `classifier_step` on those images. Returns (loss, logits on x_adv (B, K))."""
    x_adv = pgd(model, x, y, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.train_steps, validate=False)
    return classifier_step(model, x_adv, y)
