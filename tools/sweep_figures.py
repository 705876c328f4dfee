"""Draw the figures of a validation sweep from its rows (`python -m clead_edu ablate` writes
them to OUT/ablation.jsonl; several sweeps with the same settings may be drawn together):

    python tools/sweep_figures.py docs/results/cifar10-mini-sweep-*.jsonl --out docs/results/cifar10-mini-sweep

writes OUT-frontier.png (validation clean against PGD accuracy, one line per objective) and
OUT-contrastive_term.png (the contrastive term per epoch of each C-LEAD arm, with its yardsticks),
with `study.draw_sweep`, the function `ablate` draws them with at its end.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", nargs="+", type=Path, help="ablation.jsonl files")
    ap.add_argument("--out", required=True, help="prefix of the two PNG files")
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    from clead_edu import study
    rows = [json.loads(line) for f in args.rows for line in f.read_text().splitlines() if line.strip()]
    changes = {r["variant"]: study.variant_changes(r["variant"]) for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        study.draw_sweep(Path(tmp), rows, changes)
        for name in ("frontier.png", "contrastive_term.png"):
            if (Path(tmp) / name).exists():
                shutil.copy(Path(tmp) / name, f"{args.out}-{name}")
                print(f"written: {args.out}-{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
