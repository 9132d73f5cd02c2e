"""PaddleX's keypoint HTTP service with request batching (Hydra): ``python serve.py [port=8080] [key=value ...]``.

``POST /human-keypoint-detection`` answers as ``paddlex --serve --pipeline human_keypoint_detection``;
see ``conf/serve.yaml`` for every option and ``docs/serve.md``.
"""

import hydra
from omegaconf import DictConfig

from tinypose.serve.cli import run_serve


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    run_serve(cfg)


if __name__ == "__main__":
    main()
