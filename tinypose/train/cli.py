"""What ``train.py`` runs for each ``mode``: check_dataset, train, evaluate (the entry point stays thin)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

__all__ = ["resolve_resume", "resolve_weights", "run", "run_check_dataset", "run_evaluate", "run_train"]

MODES = ("check_dataset", "train", "evaluate")


def resolve_weights(weights: Any) -> bool | str:
    """``None``/empty -> ``False`` (random init), ``pretrained`` -> ``True`` (released weights), else a path."""
    if weights in (None, "", False):
        return False
    if weights is True or str(weights).lower() in ("pretrained", "true"):
        return True
    path = Path(str(weights)).expanduser()
    if not path.exists():
        from ..weights.errors import WeightsError

        raise WeightsError(f"{path}: weights file or folder does not exist")
    return str(path)


def resolve_resume(resume: Any, output_dir: str | Path) -> str | None:
    """``auto`` -> the newer of ``checkpoints/last.ckpt`` and ``checkpoints/interrupted.ckpt`` (or none); else a path."""
    if resume in (None, "", False):
        return None
    if str(resume) == "auto":
        candidates = [Path(output_dir) / "checkpoints" / name for name in ("last.ckpt", "interrupted.ckpt")]
        existing = [path for path in candidates if path.is_file()]
        return str(max(existing, key=lambda p: p.stat().st_mtime)) if existing else None
    path = Path(str(resume)).expanduser()
    if not path.is_file():
        from ..weights.errors import WeightsError

        raise WeightsError(f"{path}: checkpoint to resume from does not exist")
    return str(path)


def run_check_dataset(cfg: DictConfig) -> dict[str, Any]:
    from ..data.check import check_dataset
    from ..models.tinypose import get_spec

    spec = get_spec(cfg.model.name)
    options = cfg.check_dataset
    result = check_dataset(
        cfg.dataset_dir,
        cfg.output_dir,
        sample_num=int(options.sample_num),
        keypoint_names=spec.keypoint_names,
        skeleton=spec.skeleton,
        split=cast("dict[str, Any] | None", OmegaConf.to_container(options.split, resolve=True)),
        train_annotations=cfg.data.get("train_annotations"),
        val_annotations=cfg.data.get("val_annotations"),
    )
    attributes = result["attributes"]
    print(
        f"check_dataset passed: {attributes['train_samples']} train / {attributes['val_samples']} val images; "
        f"report, samples and histogram in {Path(cfg.output_dir).resolve()}"
    )
    return result


def run_train(cfg: DictConfig, extra_callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Fit the configured module on the configured data; ``extra_callbacks`` are added to the configured ones."""
    import lightning as L
    from hydra.utils import instantiate

    L.seed_everything(int(cfg.seed), workers=True)
    weights = resolve_weights(cfg.weights)
    ckpt_path = resolve_resume(cfg.get("resume"), cfg.output_dir)
    earlier = sorted((Path(cfg.output_dir) / "checkpoints").glob("*.ckpt"))
    if ckpt_path is None and earlier:
        raise ValueError(
            f"{earlier[0].parent} holds checkpoints of an earlier run ({', '.join(p.name for p in earlier)}); "
            "continue it with resume=auto, or choose a new output_dir (nothing is overwritten)"
        )
    datamodule = instantiate(cfg.data, _convert_="all")
    module = instantiate(cfg.module, weights=weights if weights is not False else None, _convert_="all")
    callbacks = [instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += list(extra_callbacks)
    loggers = [instantiate(c, _convert_="all") for c in (cfg.get("logger") or {}).values() if c]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True if ckpt_path else None)

    checkpoint = trainer.checkpoint_callback
    score = getattr(checkpoint, "best_model_score", None)
    export = next((c for c in callbacks if hasattr(c, "exported")), None)
    result = {
        "done_flag": True,
        "model": module.spec.name,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_AP": float(score) if score is not None else None,
        "best_checkpoint": getattr(checkpoint, "best_model_path", None) or None,
        "last_checkpoint": getattr(checkpoint, "last_model_path", None) or None,
        "best_model": getattr(export, "exported", None),
        "resumed_from": ckpt_path,
    }
    if trainer.is_global_zero:
        path = Path(cfg.output_dir) / "train_result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
    return result


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    from ..device import resolve_device
    from ..models.tinypose import build_model
    from .evaluation import evaluate

    weights = resolve_weights(cfg.weights)
    if weights is False:
        raise ValueError("evaluate needs weights=PATH (any format build_model reads, or `pretrained`)")
    options = cfg.evaluate
    device = resolve_device(options.device or None)  # also takes PaddleX's gpu:N
    model = build_model(cfg.model.name, pretrained=weights)
    annotation_file = images_dir = None
    if cfg.data.get("val_annotations"):  # an explicit annotation file instead of the layout's val split
        annotation_file = _dataset_path(cfg.dataset_dir, cfg.data.val_annotations)
        images_dir = _dataset_path(cfg.dataset_dir, cfg.data.get("images_dir") or "images")
    boxes = options.boxes
    if boxes is not None and _detector_name(str(boxes)):
        from ..detect import create_detector

        weights = options.get("detector_weights") or True
        boxes = create_detector(str(boxes), weights, device=device, threshold=None)
    stats = evaluate(
        model,
        cfg.dataset_dir,
        annotation_file=annotation_file,
        images_dir=images_dir,
        boxes=boxes,
        image_thre=float(options.image_thre),
        flip=bool(options.flip),
        batch_size=int(options.batch_size),
        device=device,
        num_workers=int(options.num_workers),
        output_dir=cfg.output_dir,
    )
    return stats


def _detector_name(value: str) -> bool:
    """True when ``evaluate.boxes`` names a person detector (``picodet_s_320_lcnet_pedestrian``, ``320``)."""
    from ..detect import get_detector_spec

    if Path(value).suffix.lower() == ".json":
        return False
    try:
        get_detector_spec(value)
    except ValueError:
        return False
    return True


def _dataset_path(root: str, value: str) -> str:
    path = Path(value)
    return str(path if path.is_absolute() else Path(root) / path)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Dispatch on ``cfg.mode``."""
    if cfg.mode not in MODES:
        raise ValueError(f"mode={cfg.mode!r}: choose one of {', '.join(MODES)}")
    return {"check_dataset": run_check_dataset, "train": run_train, "evaluate": run_evaluate}[cfg.mode](cfg)
