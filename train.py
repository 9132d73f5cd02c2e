"""Check, train and evaluate PP-TinyPose on a COCO keypoint dataset (Hydra; see `python train.py --help`).

python train.py mode=check_dataset|train|evaluate dataset_dir=DIR [model=...] [weights=...] [output_dir=DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tinypose.options import hydra_argv_error


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    from tinypose.data.layout import DatasetError
    from tinypose.train.cli import run
    from tinypose.weights.errors import WeightsError

    try:
        return run(cfg)
    except (DatasetError, WeightsError, ValueError) as error:
        fail(cfg, str(error))
    except InstantiationException as error:  # a setting a constructor (Trainer, callback, logger...) refuses
        cause = error.__cause__
        fail(cfg, f"{error.args[0].splitlines()[0]} {type(cause).__name__}: {cause}" if cause else str(error))
    except OmegaConfBaseException as error:  # a setting that is missing or of the wrong type
        fail(cfg, str(error).splitlines()[0])
    return {}


def fail(cfg: DictConfig, message: str) -> None:
    """Exit with ``message`` as one line on stderr (multi-line messages, e.g. dataset problems, stay readable)."""
    print(f"train.py mode={cfg.mode}: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    problem = hydra_argv_error(
        sys.argv[1:], "train.py", positional="dataset_dir", config_dir=Path(__file__).resolve().parent / "conf"
    )
    if problem:
        sys.exit(f"error: {problem}")
    main()
