"""Build clead_edu/assets/cifar10_sample.npz, the offline photo set behind
`get_data("cifar10-sample")`, from an ImageFolder copy of real CIFAR-10 images.

    python tools/make_cifar10_mini.py                  # the source tree: data/cifar10-mini
    python tools/make_cifar10_sample.py [data/cifar10-mini] [--per-class N]

The source tree has PATH/train/<class>/bK_NNNN.png (training batch K, index NNNN) and
PATH/test/<class>/t_NNNN.png, 32x32 RGB PNG, lossless. The sample keeps every
training image (or the first `per_class` of every class, by file name) and every
test image; from cifar10-mini that is 5,085 training and 517 test photos, 15.8 MB.
Stored as uint8 arrays:

    x_train (N, 32, 32, 3) uint8   y_train (N,) int64   src_train (N,) str  file names
    x_test  (M, 32, 32, 3) uint8   y_test  (M,) int64   src_test  (M,) str
    classes (10,) str               in CIFAR-10 label order
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
OUT = Path(__file__).resolve().parents[1] / "clead_edu" / "assets" / "cifar10_sample.npz"


def read_split(folder: Path, per_class: int | None):
    """Images (N, 32, 32, 3) uint8, labels (N,), file names (N,) of one split."""
    xs, ys, names = [], [], []
    for label, name in enumerate(CLASSES):
        files = sorted((folder / name).glob("*.png"))[:per_class]
        if not files:
            raise SystemExit(f"no PNG files in {folder / name}")
        for f in files:
            img = np.asarray(Image.open(f).convert("RGB"), dtype=np.uint8)
            if img.shape != (32, 32, 3):
                raise SystemExit(f"{f}: shape {img.shape}, expected 32x32 RGB")
            xs.append(img), ys.append(label), names.append(f"{name}/{f.name}")
    return np.stack(xs), np.array(ys, dtype=np.int64), np.array(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, nargs="?", default=Path("data/cifar10-mini"),
                    help="ImageFolder tree with train/ and test/ (default data/cifar10-mini)")
    ap.add_argument("--per-class", type=int, default=None, help="at most this many training images per class "
                    "(default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    x_tr, y_tr, s_tr = read_split(args.source / "train", args.per_class)
    x_te, y_te, s_te = read_split(args.source / "test", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x_train=x_tr, y_train=y_tr, src_train=s_tr,
                        x_test=x_te, y_test=y_te, src_test=s_te, classes=np.array(CLASSES))
    print(f"{args.out}: {len(y_tr)} train, {len(y_te)} test, {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
