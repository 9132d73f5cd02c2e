"""Check, train and evaluate PP-TinyPose on a COCO keypoint dataset (Hydra; see `python train.py --help`).

python train.py mode=check_dataset|train|evaluate dataset_dir=DIR [model=...] [weights=...] [output_dir=DIR]
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    from tinypose.data.layout import DatasetError
    from tinypose.train.cli import run
    from tinypose.weights.errors import WeightsError

    try:
        return run(cfg)
    except (DatasetError, WeightsError, ValueError) as error:
        print(f"train.py mode={cfg.mode}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
