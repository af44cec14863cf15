"""Assemble ``runs/data/<set>/`` from the shared data sets, with seeded fixed splits where missing.

    python benchmarks/prepare_data.py --data ../shared/data --out runs/data

Each data set folder of ``--data`` (``banking77``, ``clinc150``, ``snips``, ``atis``) is linked
file by file; SNIPS and ATIS get ``train_5.jsonl`` / ``train_10.jsonl`` drawn by
:func:`models.fixed_splits.fixed_split` (seed 0: per label, a seeded shuffle of its train rows,
the first k in file order). Running it again changes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.fixed_splits import SEED, SHOTS, prepare_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="folder of data set folders")
    parser.add_argument("--out", default="runs/data")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for source in sorted(p for p in Path(args.data).iterdir() if (p / "train.jsonl").is_file()):
        drawn = prepare_data_dir(source, Path(args.out) / source.name, SHOTS, args.seed)
        print(f"{source.name}: {', '.join(drawn) if drawn else 'fixed splits as published'}")


if __name__ == "__main__":
    main()
