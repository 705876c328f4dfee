"""The feature space: embeddings of clean/adversarial twins, UMAP, and "pulled together" numbers.

    pairs = embed_pairs(model, x, y, eps=8/255)           # z of clean and adversarial images
    pair_metrics(pairs)       # {'pair_distance', 'relative_pair_distance', 'adv_nn_accuracy'}
    xy = umap_2d(pairs)       # joint 2-D UMAP of all 2N points
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .attacks import eval_mode, pgd
from .evaluate import attack_all
from .losses import embed


@dataclass
class Pairs:
    """L2-normalised penultimate features of N clean images and their adversarial twins."""
    clean: torch.Tensor   # (N, D), unit norm
    adv: torch.Tensor     # (N, D), unit norm; row i is the twin of clean row i
    y: torch.Tensor       # (N,) true labels
    x: torch.Tensor       # (N, C, H, W) clean images in [0,1]
    x_adv: torch.Tensor   # (N, C, H, W) adversarial images in [0,1]


@torch.no_grad()
def embed_images(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """z = normalize(model.features(x)) (`losses.embed`, in batches): (N, C, H, W) in [0,1] -> (N, D)
    on the CPU, eval mode."""
    dev, out = next(model.parameters()).device, []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            out.append(embed(model, x[i:i + batch_size].to(dev)).cpu())
    return torch.cat(out)


def embed_pairs(model, x, y, *, eps: float, attack=pgd, **attack_kwargs) -> Pairs:
    """Attack x (default PGD, eps in pixel units) and embed both the clean and adversarial images.
    At eps 0 the twins are the images themselves (no attack is run)."""
    x_adv = attack_all(model, x, y, attack if eps > 0 else None, eps=eps, **attack_kwargs).cpu()
    return Pairs(embed_images(model, x), embed_images(model, x_adv), y.cpu(), x.cpu(), x_adv)


def pair_metrics(pairs: Pairs) -> dict:
    """Numbers for "clean and adversarial twins are pulled together".

    pair_distance: mean cosine distance 1 - cos(z_i, z_adv_i) between twins (0 = identical).
    centroid_distance: mean cosine distance between the class centroids of the clean z.
    relative_pair_distance: pair_distance / centroid_distance (scale-free; < 1 means a
        twin sits closer to its original than classes sit to each other).
    adv_nn_accuracy: share of adversarial z whose nearest clean z (cosine) has the
        adversarial image's true label, the adversarial image's own clean twin left out
        (nan with fewer than 2 images). With the twin in, a twin that moved only a little
        is its own nearest neighbour, so the number would say "the twin is nearest", not
        "the attack left the image among its class": near 100% even for a model that the
        same attack fools. The twin is left out, rather than classifying against clean
        training images, so that the number needs only these pairs and every model is
        measured against the same images; it depends on N (the other N - 1 clean images
        are the references), so compare models on the same images.
    """
    clean, adv, y = pairs.clean, pairs.adv, pairs.y
    pair = (1 - (clean * adv).sum(1)).clamp(min=0).mean().item()     # >= 0 (rounding: cos of a twin with itself)
    classes = y.unique()
    cent = F.normalize(torch.stack([clean[y == c].mean(0) for c in classes]), dim=1)
    off_diag = ~torch.eye(len(classes), dtype=torch.bool)
    centroid = (1 - cent @ cent.T)[off_diag].mean().item() if len(classes) > 1 else float("nan")
    nn_acc = (y[nearest_other(adv, clean)] == y).float().mean().item() if len(y) > 1 else float("nan")
    return {"pair_distance": pair, "centroid_distance": centroid,
            "relative_pair_distance": pair / centroid if centroid > 0 else float("nan"),
            "adv_nn_accuracy": nn_acc}


def nearest_other(adv: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """(N,) index of the clean z nearest (cosine) to each adversarial z, row i's own twin
    (clean row i) left out. adv, clean: (N, D), unit norm."""
    sim = adv @ clean.T
    sim.fill_diagonal_(float("-inf"))
    return sim.argmax(1)


def umap_2d(pairs: Pairs, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """One UMAP fitted jointly on clean and adversarial z (cosine metric).

    Returns (2N, 2): rows 0..N-1 are the clean points, rows N..2N-1 their twins.
    """
    # numba's thread pool is of no use for a few hundred points, and two OpenMP pools (torch's
    # and numba's) in one Jupyter kernel hung a notebook here now and then: one thread only.
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    import umap  # umap-learn; imported here because its first import compiles (numba)
    z = torch.cat([pairs.clean, pairs.adv]).numpy()
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(z) - 1), min_dist=min_dist,
                        metric="cosine", random_state=seed, n_jobs=1)
    threads = torch.get_num_threads()
    try:
        return reducer.fit_transform(z)
    finally:
        torch.set_num_threads(threads)  # umap/numba resets torch's thread count
