"""Build cifar10-mini, a small ImageFolder copy of real CIFAR-10, from torchvision's download.

    python tools/make_cifar10_mini.py                 # -> data/cifar10-mini (CIFAR-10 downloaded into data/)
    python tools/make_cifar10_mini.py OUT --root DIR  # CIFAR-10 looked for (or downloaded) in DIR

It writes the first 1,017 images of each of CIFAR-10's five training batches and the first
517 of its test batch, 32x32 RGB PNG (lossless), 5,602 files, about 13 MB:

    OUT/train/<class>/bK_NNNN.png   training batch K (1..5), index NNNN in that batch
    OUT/test/<class>/t_NNNN.png     index NNNN in the test batch

Class folders are CIFAR-10's label names (airplane ... truck). The results in docs/ that say
`--dataset folder:data/cifar10-mini` were measured on this tree. The pixels are CIFAR-10's own;
the PNG bytes are Pillow's `optimize=True` encoding (so they may differ with another zlib, the
pixels never do). CIFAR-10 comes from torchvision (`torchvision.datasets.CIFAR10`), which checks
the archive's and the batches' MD5 sums; offline, put `cifar-10-python.tar.gz` or the extracted
`cifar-10-batches-py/` in --root first (data/README.md).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

BATCHES = 5          # CIFAR-10's training set is data_batch_1 .. data_batch_5, in this order


def load_cifar10(root: Path, download: bool):
    """torchvision's CIFAR-10 (train, test) datasets; `.data` is (N, 32, 32, 3) uint8 in file order."""
    from torchvision.datasets import CIFAR10
    try:
        return (CIFAR10(root, train=True, download=download), CIFAR10(root, train=False, download=download))
    except Exception as err:        # no network, a bad checksum, files missing with --no-download
        raise SystemExit(f"CIFAR-10 is not in {root / 'cifar-10-batches-py'} and could not be "
                         f"downloaded ({type(err).__name__}: {err}). Put cifar-10-python.tar.gz "
                         f"(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) in {root} "
                         f"and run this again.") from err


def batch_rows(n_train: int, per_batch: int) -> list[tuple[int, int, int]]:
    """(batch K, index in batch, row in torchvision's training array) of the first `per_batch`
    images of each training batch; torchvision stacks the five batches in order."""
    size, rest = divmod(n_train, BATCHES)
    if rest or not 0 < per_batch <= size:
        raise SystemExit(f"{n_train} training images do not make {BATCHES} batches of at least "
                         f"{per_batch}: is this CIFAR-10?")
    return [(k, i, (k - 1) * size + i) for k in range(1, BATCHES + 1) for i in range(per_batch)]


def plan(train, test, per_batch: int = 1017, n_test: int = 517) -> list[tuple[str, object, int]]:
    """Every file to write, as (path relative to OUT, dataset, row in dataset.data): the
    training batches' images first, in batch order, then the test batch's."""
    if not 0 < n_test <= len(test.data):
        raise SystemExit(f"--test {n_test}: the test batch has {len(test.data)} images")
    cls = train.classes
    files = [(f"train/{cls[train.targets[r]]}/b{k}_{i:04d}.png", train, r)
             for k, i, r in batch_rows(len(train.data), per_batch)]
    return files + [(f"test/{cls[test.targets[i]]}/t_{i:04d}.png", test, i) for i in range(n_test)]


def stray_files(out: Path, paths: list[str]) -> list[Path]:
    """Files already under OUT/train and OUT/test that the plan would not write (so the tree
    would not be the one the plan describes)."""
    wanted = {out / p for p in paths}
    return sorted(f for split in ("train", "test") for f in (out / split).rglob("*")
                  if f.is_file() and f not in wanted)


def write(out: Path, files, progress: bool = True) -> None:
    """Each image as PNG (Pillow, optimize=True: the smallest lossless encoding zlib finds)."""
    from PIL import Image
    from tqdm.auto import tqdm
    for rel, dataset, row in tqdm(files, desc="PNG files", unit="img", disable=not progress):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(dataset.data[row], dtype=np.uint8)).save(path, optimize=True)


def build(out: Path, root: Path, download: bool = True, per_batch: int = 1017, n_test: int = 517,
          progress: bool = True) -> int:
    """Write the tree under `out` from CIFAR-10 in `root`; returns the number of files written."""
    train, test = load_cifar10(root, download)
    files = plan(train, test, per_batch, n_test)
    stray = stray_files(out, [rel for rel, _, _ in files])
    if stray:
        raise SystemExit(f"{out} already holds {len(stray)} files this tree does not have "
                         f"(e.g. {stray[0]}): delete {out} or choose another folder.")
    write(out, files, progress)
    return len(files)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("data/cifar10-mini"),
                    help="folder to write (default data/cifar10-mini)")
    ap.add_argument("--root", type=Path, default=Path("data"),
                    help="where CIFAR-10 is, or is downloaded to (default data, as for --dataset cifar10)")
    ap.add_argument("--no-download", action="store_true",
                    help="use the extracted cifar-10-batches-py/ in --root only (no download, no extraction)")
    ap.add_argument("--per-batch", type=int, default=1017, help="images from the start of each training batch")
    ap.add_argument("--test", type=int, default=517, help="images from the start of the test batch")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    n = build(args.out, args.root, not args.no_download, args.per_batch, args.test, not args.no_progress)
    print(f"{args.out}: {n} PNG files ({n - args.test} train, {args.test} test)")


if __name__ == "__main__":
    main()
