"""What ``train.py`` runs for each ``mode``: check_dataset, train, evaluate (the entry point stays thin)."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from ..data.layout import DatasetError, resolve_layout
from ..options import FALSE_WORDS, TRUE_WORDS, OptionError, parse_bool

__all__ = [
    "BOOLEAN_OPTIONS",
    "OTHER_WORDS",
    "normalize_booleans",
    "resolve_resume",
    "resolve_weights",
    "run",
    "run_check_dataset",
    "run_evaluate",
    "run_train",
]

MODES = ("check_dataset", "train", "evaluate")
BOOLEAN_OPTIONS = ("evaluate.flip", "check_dataset.split.enable", "data.augment.random_flip")
"""Boolean settings of ``conf/train.yaml`` that are not constructor arguments of a ``_target_`` (those are
found from the constructors' signatures by :func:`normalize_booleans`)."""
OTHER_WORDS = {"module.norm_eval": ("auto",)}
"""Boolean settings that also take these words."""
_STRICT_BOOL = re.compile(r"^(bool|Optional\[bool\]|bool \| None|None \| bool|Union\[bool, NoneType\])$")


@dataclass(frozen=True)
class _BoolSetting:
    """How a boolean setting is read: which other strings (``None``: any) and whether integers it also takes."""

    other_words: tuple[str, ...] | None = ()
    integers: bool = False


@functools.cache
def _bool_parameters(target: str) -> dict[str, _BoolSetting]:
    """Constructor arguments of ``target`` annotated with ``bool``, and what else their annotation allows
    (``Literal`` words such as Lightning's ``"warn"`` / ``"link"``, any ``str``, an ``int``)."""
    from hydra.utils import get_object

    try:
        parameters = inspect.signature(get_object(target)).parameters
    except (ImportError, ValueError, TypeError):  # an unknown target is reported when it is instantiated
        return {}
    found = {}
    for name, parameter in parameters.items():
        annotation = parameter.annotation
        text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        text = text.replace("typing.", "")
        if not re.search(r"\bbool\b", text):
            continue
        if _STRICT_BOOL.match(text):
            found[name] = _BoolSetting()
            continue
        words = tuple(re.findall(r"'([^']*)'", " ".join(re.findall(r"Literal\[([^\]]*)\]", text))))
        found[name] = _BoolSetting(None if re.search(r"\bstr\b", text) else words, bool(re.search(r"\bint\b", text)))
    return found


def _target_nodes(node: Any, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(dotted path, node)`` of every config node with a ``_target_`` (from the unresolved container)."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield prefix, node
        for key, value in node.items():
            yield from _target_nodes(value, f"{prefix}.{key}" if prefix else str(key))


def normalize_booleans(cfg: DictConfig, targets: bool = True) -> None:
    """Read every boolean setting of ``cfg`` strictly and write it back as a real ``bool``.

    ``bool("no")`` is true, so ``evaluate.flip=no`` used to mean a flip test: now true/false,
    yes/no, on/off and 1/0 (any case) are read as booleans and anything else is an
    :class:`~tinypose.options.OptionError` naming the setting. Covered: :data:`BOOLEAN_OPTIONS`,
    :data:`OTHER_WORDS` and, with ``targets``, every constructor argument annotated ``bool`` of every
    ``_target_`` (data, module, trainer, callbacks, loggers); the words their annotation also allows
    (Lightning's ``deterministic="warn"``, ``save_last="link"``) are kept.
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    checks = {path: _BoolSetting() for path in BOOLEAN_OPTIONS}
    checks.update({path: _BoolSetting(words) for path, words in OTHER_WORDS.items()})
    if targets:
        for path, node in _target_nodes(container):
            for name, setting in _bool_parameters(str(node["_target_"])).items():
                if name in node:
                    checks.setdefault(f"{path}.{name}", setting)
    for path, setting in checks.items():
        value = OmegaConf.select(cfg, path, default=None, throw_on_missing=False)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int) and setting.integers:
            continue
        if isinstance(value, str) and value.strip().lower() not in TRUE_WORDS | FALSE_WORDS:
            if setting.other_words is None or value.strip() in setting.other_words:
                continue
            if setting.other_words:
                also = ", ".join(repr(word) for word in setting.other_words)
                raise OptionError(f"{path}={value!r} is not a boolean or {also}; use true, false or {also}")
        OmegaConf.update(cfg, path, parse_bool(value, path), merge=False)


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


def _check_resume(ckpt_path: str, max_epochs: Any) -> None:
    """Refuse a resume that has nothing left to train, before Lightning fails on it inside ``fit``.

    Lightning raises when a checkpoint's epoch exceeds ``max_epochs``, after which the interrupt
    callback would write a new ``interrupted.ckpt`` that fails the same way. The checkpoint is read
    with ``weights_only=True``, so a file that is not a checkpoint is a one-line error here too.
    """
    from ..weights.errors import WeightsError
    from .checkpoint import load_lightning_checkpoint

    checkpoint = load_lightning_checkpoint(ckpt_path)
    try:
        done = int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        done = int(checkpoint.get("epoch", 0))
    if max_epochs is not None and int(max_epochs) != -1 and done >= int(max_epochs):
        raise WeightsError(
            f"resume={ckpt_path}: that run has already trained {done} epoch(s) and trainer.max_epochs={max_epochs}, "
            f"so nothing is left to train; pass trainer.max_epochs greater than {done} to continue it"
        )


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


def _log_lightning_once() -> None:
    """Drop the console handler the ``lightning`` package adds to its logger when the root logger has one.

    ``import lightning`` always gives the ``lightning`` logger its own console handler and still lets
    records propagate, so under Hydra's logging every Lightning INFO line was printed twice.
    """
    if not logging.getLogger().handlers:  # no logging configured (a plain API call): Lightning's handler is the one
        return
    lightning_logger = logging.getLogger("lightning")
    for handler in list(lightning_logger.handlers):
        if type(handler) is logging.StreamHandler:
            lightning_logger.removeHandler(handler)


def run_train(cfg: DictConfig, extra_callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Fit the configured module on the configured data; ``extra_callbacks`` are added to the configured ones."""
    import lightning as L
    from hydra.utils import instantiate

    from .callbacks import checkpoint_paths

    _log_lightning_once()
    L.seed_everything(int(cfg.seed), workers=True)
    weights = resolve_weights(cfg.weights)
    data = cfg.data
    resolve_layout(
        cfg.dataset_dir, data.get("train_annotations"), data.get("val_annotations"), data.get("images_dir") or "images"
    )
    ckpt_path = resolve_resume(cfg.get("resume"), cfg.output_dir)
    if ckpt_path is not None:
        _check_resume(ckpt_path, cfg.trainer.get("max_epochs"))
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

    paths = checkpoint_paths(trainer)
    export = next((c for c in callbacks if hasattr(c, "exported")), None)
    result = {
        "done_flag": True,
        "model": module.spec.name,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_AP": paths["best_AP"],
        "best_checkpoint": paths["best_checkpoint"],
        "last_checkpoint": paths["last_checkpoint"],
        "best_model": getattr(export, "exported", None),
        "resumed_from": ckpt_path,
    }
    if trainer.is_global_zero:
        path = Path(cfg.output_dir) / "train_result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
    return result


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    from ..device import usable_device
    from ..models.tinypose import build_model
    from .evaluation import evaluate

    weights = resolve_weights(cfg.weights)
    if weights is False:
        raise ValueError("evaluate needs weights=PATH (any format build_model reads, or `pretrained`)")
    options = cfg.evaluate
    device = usable_device(options.device or None)  # also takes PaddleX's gpu:N
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
    evaluated: Any = model
    backend = options.get("backend")
    precision = str(options.get("precision") or "fp32")
    if backend is not None:
        evaluated = _evaluation_backend(str(backend), model, device, precision, options.get("calib_images"), cfg)
    elif precision != "fp32":
        raise OptionError(f"evaluate.precision={precision} needs evaluate.backend=NAME (the runtime that runs it)")
    stats = evaluate(
        evaluated,
        cfg.dataset_dir,
        annotation_file=annotation_file,
        images_dir=images_dir,
        boxes=boxes,
        image_thre=float(options.image_thre),
        flip=parse_bool(options.flip, "evaluate.flip"),
        batch_size=int(options.batch_size),
        device=device,
        num_workers=int(options.num_workers),
        output_dir=cfg.output_dir,
        model_name=model.spec.name,
    )
    return stats


PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _evaluation_backend(name: str, model: Any, device: Any, precision: str, calib_images: Any, cfg: DictConfig) -> Any:
    """The runtime ``evaluate.backend`` at ``evaluate.precision``: the COCO evaluation then runs the
    artifact that would be deployed (int8 calibrated on ``evaluate.calib_images``, default the dataset's images)."""
    from ..runtimes import create_backend

    if precision not in PRECISIONS:
        raise OptionError(f"evaluate.precision={precision}: choose one of {', '.join(PRECISIONS)}")
    options: dict[str, Any] = {"precision": precision}
    if precision == "int8":
        if calib_images is None:
            images = cfg.data.get("images_dir") or "images"
            calib_images = _dataset_path(cfg.dataset_dir, str(images))
        options["calib_images"] = str(calib_images)
        detector = cfg.evaluate.get("calib_detector")
        if detector is None:
            detector = cfg.evaluate.get("detector_weights")
        elif str(detector).lower() in ("false", "none"):
            detector = False
        options["calib_detector"] = detector
    try:
        return create_backend(name, model, device=device, **options)
    except TypeError as error:  # a runtime without calib_images: it has no int8
        raise OptionError(f"evaluate.backend={name} cannot run evaluate.precision={precision} ({error})") from None


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
    """Dispatch on ``cfg.mode``, after checking the settings every mode needs (one-line errors)."""
    if cfg.mode not in MODES:
        raise OptionError(f"mode={cfg.mode!r}: choose one of {', '.join(MODES)}")
    if OmegaConf.is_missing(cfg, "dataset_dir") or cfg.dataset_dir in (None, ""):
        raise DatasetError("no dataset given: pass dataset_dir=PATH (a folder with images/ and annotations/)")
    normalize_booleans(cfg, targets=cfg.mode == "train")
    return {"check_dataset": run_check_dataset, "train": run_train, "evaluate": run_evaluate}[cfg.mode](cfg)
