"""What ``python infer.py`` does: predict on the configured input and write JSON + pictures/videos."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..pipeline import create_pipeline
from ..weights import WeightsError
from .inputs import InputError, count_inputs
from .predictor import create_model
from .result import to_builtin
from .writers import VideoJsonWriter

__all__ = ["DEMO_IMAGE", "run_infer"]

DEMO_IMAGE = Path(__file__).resolve().parents[1] / "assets" / "astronaut.png"
"""Bundled public-domain demo photo (scikit-image's astronaut; see tinypose/assets/README.md)."""


def _plain(value: Any) -> Any:
    """OmegaConf containers -> Python lists/str (Hydra gives ListConfig for ``input=[a,b]``)."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:
        pass
    return value


def run_infer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Run the predictor over ``cfg.input`` and save results into ``cfg.output``; returns a summary.

    Exits with a one-line message (no traceback) when the input or the weights cannot be used.
    """
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    inputs = _plain(cfg.get("input"))
    if inputs is None:
        inputs = str(DEMO_IMAGE)
        print(f"no input given: running on the bundled demo image {DEMO_IMAGE}")
    output = Path(str(cfg.get("output", "output/infer")))
    model_cfg = cfg["model"]
    model_name = model_cfg["name"] if isinstance(model_cfg, Mapping) or hasattr(model_cfg, "get") else str(model_cfg)
    try:
        predictor = create_model(
            model_name,
            model_dir=cfg.get("model_dir"),
            flip=bool(cfg.get("flip", False)),
            device=cfg.get("device"),
            backend=str(cfg.get("backend", "torch")),
            draw_threshold=float(cfg.get("draw_threshold", 0.3)),
            on_error=str(cfg.get("on_error", "skip")),
            url_timeout=float(cfg.get("url_timeout", 20)),
            max_download_bytes=int(float(cfg.get("max_download_mb", 50)) * 1024 * 1024),
        )
    except ImportError as error:
        raise SystemExit(
            f"error: cannot load the default weights of {model_name} ({error}); pass model_dir=WEIGHTS"
        ) from None
    except (WeightsError, ValueError, OSError, RuntimeError) as error:  # RuntimeError: a backend's runtime is missing
        raise SystemExit(f"error: cannot build {model_name}: {error}") from None

    runner: Any = predictor
    if cfg.get("detector") is not None:
        runner = _pipeline(cfg, predictor)
    total = count_inputs(inputs)
    save_json, save_img = bool(cfg.get("save_json", True)), bool(cfg.get("save_img", True))
    output.mkdir(parents=True, exist_ok=True)
    videos = VideoJsonWriter(output)
    images = people = 0
    written: list[Path] = []
    try:
        results = runner.predict(inputs, batch_size=int(cfg.get("batch_size", 1)))
        bar = tqdm(results, total=total, unit="img", disable=total is not None and total <= 1, file=sys.stderr)
        for result in bar:
            images += 1
            people += len(result["boxes"] if "boxes" in result else result["kpts"])
            if cfg.get("print_json"):
                result.print()
            if result.video is not None:
                if save_json:
                    key = "boxes" if "boxes" in result else "kpts"
                    videos.add(result.video, {"frame_index": result["frame_index"], key: to_builtin(result[key])})
                if save_img:
                    path = result.save_to_video(output)
                    if path not in written:
                        written.append(path)
                continue
            if save_json:
                written.append(result.save_to_json(output))
            if save_img:
                written.append(result.save_to_img(output))
        videos.flush()
    except InputError as error:
        raise SystemExit(f"error: {error}") from None
    written.extend(videos.written)
    for skipped in runner.errors:
        print(f"skipped {skipped}", file=sys.stderr)
    print(f"{images} image(s), {people} person(s) -> {output}{os.sep}")
    if images <= 3:
        for path in written:
            print(f"  {path}")
    return {"images": images, "people": people, "errors": [str(e) for e in runner.errors], "written": written}


def _pipeline(cfg: Mapping[str, Any], predictor: Any) -> Any:
    """The detector + pose pipeline (``tinypose.create_pipeline``) around ``predictor``."""
    threshold = cfg.get("det_threshold", 0.5)
    weights, old = cfg.get("detector_model_dir"), cfg.get("detector_weights")
    if old is not None and weights is not None and str(old) != str(weights):
        raise SystemExit(
            "error: detector_model_dir and detector_weights (its old name) disagree; give detector_model_dir"
        )
    try:
        return create_pipeline(
            pose=predictor,
            detector=str(cfg["detector"]),
            detector_model_dir=weights if weights is not None else old,
            det_threshold=None if threshold is None else float(threshold),
            batch_size=int(cfg.get("batch_size", 1)),
            tracking=str(cfg.get("tracking", "iou")),
            smoothing=bool(cfg.get("smoothing", True)),
            min_cutoff=cfg.get("min_cutoff"),
            beta=cfg.get("beta"),
        )
    except (WeightsError, ValueError, OSError) as error:
        raise SystemExit(f"error: cannot build the detector {cfg['detector']}: {error}") from None
