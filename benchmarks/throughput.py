"""Throughput of the fast path against a plain baseline, measured in the same run.

    python benchmarks/throughput.py                   # GPU: PreAct ResNet-18, CIFAR-shaped, 50k images
    python benchmarks/throughput.py --device cpu      # CPU: small CNN, a few batches (what CI runs)

For each workload (standard training, PGD-10 adversarial training, C-LEAD training,
PGD-20 evaluation) it prints images per second for
  - baseline: float32, a CPU DataLoader with per-image crop/flip transforms, default memory format;
  - fast: `fast.fast_loader` (the whole set on the device, batched crop/flip there,
    channels_last) and, for training, bf16 autocast (`TrainConfig(fast=True)`);
    evaluation stays float32 in both.
and their ratio, the time of AutoAttack (standard version) on --aa-n images, the
projected seconds per epoch over --epoch-images images, and, on any device, our
`pgd` against torchattacks' PGD on the same model and batch. Inputs are synthetic
CIFAR-shaped images (uint8, 3x32x32, 10 classes): throughput does not depend on pixels.
Results also go to --out as JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from clead_edu import data as D
from clead_edu import evaluate as E
from clead_edu.attacks import pgd
from clead_edu.models import build_model
from clead_edu.config import TrainConfig
from clead_edu.device import pick_device
from clead_edu.fast import fast_loader
from clead_edu.train import make_optimizer, run_epoch

EPS, ALPHA = 8 / 255, 2 / 255


class UInt8Images(Dataset):
    """CIFAR-like dataset: uint8 (N, 3, 32, 32) images, per-image RandomCrop(32, 4) + flip on access."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        from torchvision import transforms as T
        self.x, self.y = x, y
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.x[i]).float() / 255, self.y[i]


def cifar_model(args, device) -> torch.nn.Module:
    """A fresh `args.arch` for 3x32x32 inputs and 10 classes, on `device`."""
    return build_model(args.arch, 10, 3, D.CIFAR10_MEAN, D.CIFAR10_STD).to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, warmup: int = 1) -> float:
    """Seconds for fn() after `warmup` untimed calls (cudnn autotuning, compilation)."""
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def train_rate(objective: str, fast: bool, args, x, y, device) -> float:
    """Images/s of `args.batches` training steps of `objective` on the chosen path."""
    torch.manual_seed(0)
    model = cifar_model(args, device)
    n = args.batches * args.batch_size
    cfg = TrainConfig(objective=objective, epochs=1, batch_size=args.batch_size, lr=0.05, eps=EPS,
                      alpha=ALPHA, train_steps=10, fast=fast, compile=args.compile and fast)
    if fast:
        loader = fast_loader(model, TensorDataset(x[:n], y[:n]), cfg.batch_size, cfg.seed, aug="crop_flip")
    else:
        loader = DataLoader(UInt8Images(x[:n], y[:n]), batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, pin_memory=device.type == "cuda")
    backend = getattr(args, "compile_backend", "inductor")   # gpu_suite's dry run: "eager" (no code generation)
    step_model = torch.compile(model, backend=backend) if cfg.compile else model
    opt, sched = make_optimizer(model.parameters(), cfg, len(loader))
    seconds = timed(lambda: run_epoch(loader, step_model, cfg, opt, sched, progress=False), device)
    return n / seconds


def eval_rate(fast: bool, args, x, y, device) -> float:
    """Images/s of PGD-20 (float32) over the images, batches of 2 x batch_size."""
    torch.manual_seed(0)
    model = cifar_model(args, device).eval()
    n = args.batches * args.batch_size
    xs = x[:n].float() / 255
    if fast:
        model.to(memory_format=torch.channels_last)
        xs = xs.to(device).contiguous(memory_format=torch.channels_last)
    seconds = timed(lambda: E.attack_all(model, xs, y[:n], pgd, batch_size=2 * args.batch_size,
                                         eps=EPS, steps=20), device)
    return n / seconds


def autoattack_seconds(args, x, y, device) -> float:
    """Seconds of standard AutoAttack on aa_n images, labels = the model's own predictions
    (so every image starts correct; an untrained model falls fast, so this is a lower bound)."""
    torch.manual_seed(0)
    model = cifar_model(args, device).eval()
    xs = x[:args.aa_n].float() / 255
    ys = E.predict(model, xs)
    t = time.perf_counter()
    E.run_autoattack(model, xs, ys, eps=EPS, version="standard", batch_size=min(args.aa_n, 500))
    sync(device)
    return time.perf_counter() - t


def pgd_vs_torchattacks(args, x, y, device) -> dict:
    """Seconds of our pgd and of torchattacks.PGD (same model, eps, step, 10 steps, batch): the
    fastest of 7 interleaved runs each, after one warm-up run of each."""
    import torchattacks
    torch.manual_seed(0)
    model = cifar_model(args, device).eval()
    xb, yb = (x[:args.batch_size].float() / 255).to(device), y[:args.batch_size].to(device)
    ta = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=10, random_start=True)
    pgd(model, xb, yb, eps=EPS, alpha=ALPHA, steps=10), ta(xb, yb)
    ours, theirs = [], []
    for _ in range(7):                     # interleaved, so drifting machine load hits both alike
        ours.append(timed(lambda: pgd(model, xb, yb, eps=EPS, alpha=ALPHA, steps=10), device, warmup=0))
        theirs.append(timed(lambda: ta(xb, yb), device, warmup=0))
    ours, theirs = min(ours), min(theirs)
    return {"clead_edu_pgd_s": ours, "torchattacks_pgd_s": theirs, "speedup": theirs / ours}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", help="default: preact_resnet18 on CUDA, small_cnn on CPU")
    ap.add_argument("--batch-size", type=int, help="default: 512 on CUDA, 32 on CPU")
    ap.add_argument("--batches", type=int, help="timed batches per workload (default: 20 on CUDA, 2 on CPU)")
    ap.add_argument("--aa-n", type=int, help="images for AutoAttack (default: 1000 on CUDA, 16 on CPU)")
    ap.add_argument("--epoch-images", type=int, default=50_000, help="images per epoch for the projection")
    ap.add_argument("--workers", type=int, help="baseline DataLoader workers (default: 8 on CUDA, 0 on CPU)")
    ap.add_argument("--compile", action="store_true", help="also torch.compile the fast path")
    ap.add_argument("--out", default="artifacts/benchmark.json")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    for key, on_gpu, on_cpu in (("arch", "preact_resnet18", "small_cnn"), ("batch_size", 512, 32),
                                ("batches", 20, 2), ("aa_n", 1000, 16), ("workers", 8, 0)):
        if getattr(args, key) is None:
            setattr(args, key, on_gpu if gpu else on_cpu)
    if not gpu:
        torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    n = max(args.batches * args.batch_size, args.aa_n)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)

    rows = {}
    for name, objective in (("standard training", "standard"), ("PGD-10 adversarial training", "pgd_at"),
                            ("C-LEAD training (PGD-10)", "clead")):
        rows[name] = {"baseline": train_rate(objective, False, args, x, y, device),
                      "fast": train_rate(objective, True, args, x, y, device)}
    rows["PGD-20 evaluation (float32)"] = {"baseline": eval_rate(False, args, x, y, device),
                                           "fast": eval_rate(True, args, x, y, device)}
    result = {"device": torch.cuda.get_device_name(device) if gpu else platform.processor() or "cpu",
              "torch": torch.__version__, "arch": args.arch, "batch_size": args.batch_size,
              "batches": args.batches, "compile": args.compile, "images_per_second": rows,
              "autoattack_standard_seconds": {"images": args.aa_n,
                                              "seconds": autoattack_seconds(args, x, y, device)},
              "pgd_vs_torchattacks": pgd_vs_torchattacks(args, x, y, device)}
    print(f"\n{result['device']}, torch {result['torch']}, {args.arch}, batch {args.batch_size}, "
          f"{args.batches} timed batches per workload")
    print(f"{'workload':32s} {'baseline img/s':>15s} {'fast img/s':>12s} {'ratio':>7s} "
          f"{'s/epoch (fast, ' + str(args.epoch_images) + ')':>24s}")
    for name, r in rows.items():
        r["ratio"] = r["fast"] / r["baseline"]
        print(f"{name:32s} {r['baseline']:15.1f} {r['fast']:12.1f} {r['ratio']:7.2f} "
              f"{args.epoch_images / r['fast']:24.1f}")
    aa, pv = result["autoattack_standard_seconds"], result["pgd_vs_torchattacks"]
    print(f"AutoAttack (standard) on {aa['images']} images: {aa['seconds']:.1f} s (untrained model: a lower bound)")
    print(f"PGD-10 on one batch: clead_edu {pv['clead_edu_pgd_s'] * 1e3:.1f} ms, torchattacks "
          f"{pv['torchattacks_pgd_s'] * 1e3:.1f} ms, ratio torchattacks/ours {pv['speedup']:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
