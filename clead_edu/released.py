"""C-LEAD as its authors released it (github.com/suklav/C_Lead, commit 2b8778a): a second reading.

What the released files show (docs/clead_released.md cites each file): a backbone started
from a trained classifier, a *linear* projection head to 128 dimensions with L2
normalisation, and a label-free SimCLR loss over three views of each image - the anchor,
an augmented view and an adversarial view - averaged over the anchor-vs-view-2 and
anchor-vs-view-3 terms, with every other image of the batch a negative. The classifier
trained afterwards is not in the released files.

Here, in three steps (`train_released` runs them; the pipeline and the lessons call it):

1. start from the standard model of the same run (`pipeline.run` trains it first);
2. fine-tune backbone + linear head with `released_loss` (this objective, batch by batch);
   the adversarial view is made online by PGD against the label-free contrastive term;
3. `fit_classifier`: a new linear classifier on the frozen features, clean cross-entropy.

    z = normalize(W h(x)),  W: D -> 128 (linear)
    L = 1/2 [ NTXent(z_anchor, z_aug) + NTXent(z_anchor, z_adv) ]
    NTXent(a, b) = mean_i -log( exp(a_i.b_i/T) / (sum_{k != i} exp(a_i.a_k/T) + sum_k exp(a_i.b_k/T)) )
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attacks import eval_mode, pgd
from .checkpoints import save_checkpoint
from .losses import HEADS, _attack, objective
from .train import make_loader, make_optimizer, train

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


def project(model: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """z = normalize(head(features(x))), (B, 128)."""
    return F.normalize(head(model.features(x)), dim=1)


def contrastive_inner(z_anchor: torch.Tensor, head: nn.Module, tau: float = TEMPERATURE):
    """The attack objective for the adversarial view, label-free: each image's NT-Xent term
    against the (fixed) anchors, per example (B,), as a `loss_fn` for `attacks.pgd`."""
    def loss_fn(model, x_adv, y):
        return ntxent_pair(z_anchor, project(model, head, x_adv), tau)
    return loss_fn


def three_views(model: nn.Module, head: nn.Module, x: torch.Tensor, cfg) -> torch.Tensor:
    """(B, 3, C, H, W): the anchor x, an augmented view, and an adversarial view within
    cfg.eps of x (L-inf), made online by PGD against the contrastive term (model in eval mode)."""
    with torch.no_grad(), eval_mode(model), eval_mode(head):
        z_anchor = project(model, head, x)
    with eval_mode(head):
        x_adv = pgd(model, x, torch.zeros(len(x), dtype=torch.long, device=x.device),
                    loss_fn=contrastive_inner(z_anchor, head), **_attack(cfg))
    return torch.stack([x, augment(x), x_adv], dim=1)


# ----------------------------------------------------------------------------- registry hooks

HEADS["clead_released"] = lambda dim, cfg: nn.Linear(dim, PROJECTION_DIM)


@objective("clead_released")
def clead_released(model, x, y, cfg, head=None):
    """Step 2: the released three-view loss on (anchor, augmented, adversarial); labels unused.
    Returns (loss, logits of the anchors, for the training log only)."""
    views = three_views(model, head, x, cfg)
    b = x.shape[0]
    z = project(model, head, views.flatten(0, 1)).view(b, 3, -1)   # one batch of 3B, as released
    with torch.no_grad():
        logits = model(x)
    return released_loss(z), logits


def train_released(model: nn.Module, standard: nn.Module, train_set, cfg, out_dir=None, **train_kwargs) -> list[dict]:
    """Steps 1 to 3 for `model` (same architecture as `standard`, the run's standard model):
    copy the standard weights, fine-tune with this objective (`train.train`, which takes
    `train_kwargs`), then `finish`. Returns the history (fine-tuning epochs, then classifier)."""
    model.load_state_dict(standard.state_dict())
    history = train(model, train_set, cfg, out_dir=out_dir, **train_kwargs)
    return finish(model, train_set, cfg, history, out_dir)


def finish(model: nn.Module, train_set, cfg, history: list[dict], out_dir=None) -> list[dict]:
    """Step 3 after the training loop: `fit_classifier`, then (with out_dir) model.pt saved again
    with the final classifier, so that a loaded clead_released model is the finished one.
    Returns the history with the classifier's epochs appended."""
    history = history + fit_classifier(model, train_set, cfg)
    if out_dir is not None:
        save_checkpoint(model, Path(out_dir) / "model.pt", {"train": asdict(cfg), "history": history})
    return history


def fit_classifier(model: nn.Module, train_set, cfg, progress: bool = False) -> list[dict]:
    """Step 3: a new linear classifier (model.fc) on the frozen fine-tuned features, clean
    cross-entropy, cfg.epochs epochs with the usual SGD schedule. Returns its history rows."""
    torch.manual_seed(cfg.seed)
    model.fc.reset_parameters()
    loader = make_loader(model, train_set, cfg)
    opt, sched = make_optimizer(model.fc.parameters(), cfg, len(loader))
    device, history = next(model.parameters()).device, []
    model.eval()                                                   # frozen: BatchNorm keeps its statistics
    for epoch in range(cfg.epochs):
        loader.generator.manual_seed(cfg.seed * 1000 + epoch)
        total, correct, seen = 0.0, 0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                h = model.features(x)
            logits = model.fc(h)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, correct, seen = total + loss.item() * len(y), correct + (logits.argmax(1) == y).sum().item(), seen + len(y)
        history.append({"epoch": epoch + 1, "stage": "classifier", "train_loss": total / seen, "train_acc": correct / seen})
    return history
