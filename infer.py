"""Keypoint prediction from the command line (Hydra): ``python infer.py input=PATH_OR_URL [model=...] [flip=true]``.

Writes ``<stem>_res.json`` and a picture with the skeletons per image (an annotated video per
video) into ``output``. See ``conf/infer.yaml`` for every option and ``docs/predict.md``.
"""

import hydra
from omegaconf import DictConfig

from tinypose.predict.cli import run_infer


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    run_infer(cfg)


if __name__ == "__main__":
    main()
