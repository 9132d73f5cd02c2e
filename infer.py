"""Keypoint prediction from the command line (Hydra): ``python infer.py input=PATH_OR_URL [model=...] [flip=true]``.

Writes ``<stem>_res.json`` and a picture with the skeletons per image (an annotated video per
video) into ``output``. See ``conf/infer.yaml`` for every option and ``docs/predict.md``.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from tinypose.options import hydra_argv_error
from tinypose.predict.cli import run_infer

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    """Run the predictor; a setting removed (``~model``) or of the wrong type ends in one line, not a traceback."""
    try:
        run_infer(cfg)
    except OmegaConfBaseException as error:
        sys.exit(f"error: {str(error).splitlines()[0]} (see python infer.py --help for the settings)")


if __name__ == "__main__":
    problem = hydra_argv_error(sys.argv[1:], "infer.py", positional="input", config_dir=CONFIG_DIR)
    if problem:
        sys.exit(f"error: {problem}")
    main()
