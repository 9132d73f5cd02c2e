"""What ``python serve.py`` does: check the options, then serve PaddleX's keypoint API with LitServe."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .core import BOXES_ENDPOINT, HEALTH_ENDPOINT, INFER_ENDPOINT, INFO_ENDPOINT, METRICS_ENDPOINT, Limits

__all__ = ["ENGINES", "parse_flag", "ray_app", "run_serve", "settings_from_config"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_HOSTS = ("0.0.0.0", "127.0.0.1", "::")
ENGINES = ("litserve", "ray")
"""``engine=``: LitServe in this process's children, or Ray Serve replicas (:mod:`tinypose.serve.ray_app`)."""


def parse_flag(value: Any, option: str) -> bool:
    """A boolean option as YAML/Hydra spells it (true/false, yes/no, on/off, 1/0, any case); anything
    else is refused with a one-line error naming the option. (The shared ``tinypose.options.parse_bool``
    replaces this once it exists.)"""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SystemExit(f"error: {option}={value!r} is not a boolean (use true/false, yes/no, on/off or 1/0)")


def _number(cfg: Mapping[str, Any], key: str, kind: type, minimum: float | None = None) -> Any:
    value: Any = cfg.get(key)
    try:
        number = kind(value)
        if isinstance(value, bool) or (kind is int and float(value) != number):
            raise ValueError
    except (TypeError, ValueError):
        raise SystemExit(f"error: {key}={value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if minimum is not None and number < minimum:
        raise SystemExit(f"error: {key}={value!r} must be >= {minimum:g}")
    return number


def _optional_path(cfg: Mapping[str, Any], key: str) -> str | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not Path(str(value)).exists():
        raise SystemExit(f"error: {key}={value}: no such file or folder")
    return str(value)


def _extra_models(cfg: Mapping[str, Any], model: str) -> list[tuple[str, str | None]]:
    """``extra_models``: pose models loaded beside ``model``, as a list of names (default weights) or a
    mapping of name to weights (null: default weights); ``(name, weights)`` pairs, each model once."""
    from ..models import get_spec

    value: Any = cfg.get("extra_models") or []
    if isinstance(value, str):
        value = [value]
    entries = list(value.items()) if hasattr(value, "items") else [(entry, None) for entry in value]
    found: list[tuple[str, str | None]] = []
    for name, weights in entries:
        try:
            spec_name = get_spec(str(name)).name
        except ValueError as error:
            raise SystemExit(f"error: extra_models: {error}") from None
        if spec_name in (model, *(loaded for loaded, _ in found)):
            raise SystemExit(f"error: extra_models: {spec_name} is loaded already (model={model})")
        if weights is not None and not Path(str(weights)).exists():
            raise SystemExit(f"error: extra_models: {spec_name}={weights}: no such file or folder")
        found.append((spec_name, None if weights is None else str(weights)))
    return found


def _detector_backend(cfg: Mapping[str, Any]) -> str:
    from ..runtimes.detector import resolve_detector_backend

    value = str(cfg.get("detector_backend", "auto"))
    try:
        resolve_detector_backend(value, None if cfg.get("device") is None else str(cfg.get("device")))
    except ValueError as error:
        raise SystemExit(f"error: detector_backend={value!r}: {error}") from None
    return value


def settings_from_config(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], Limits]:
    """Plain settings for the model processes and the request :class:`Limits`, every option checked.
    ``models``: ``(pose model name, weights or None)`` of every pose model to load, ``model`` first."""
    from ..detect import get_detector_spec
    from ..models import get_spec

    model_cfg = cfg["model"]
    try:
        model = get_spec(str(model_cfg["name"] if hasattr(model_cfg, "get") else model_cfg)).name
        detector = get_detector_spec(cfg.get("detector", "picodet_s_320_lcnet_pedestrian")).name
    except (KeyError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    host = str(cfg.get("host"))
    if host not in _HOSTS:
        raise SystemExit(f"error: host={host!r}: LitServe listens on one of {', '.join(_HOSTS)}")
    threshold = cfg.get("det_threshold")
    allow = cfg.get("url_allow") or []
    if isinstance(allow, str):
        allow = [allow]
    settings = {
        "model": model,
        "model_dir": _optional_path(cfg, "model_dir"),
        "extra_models": _extra_models(cfg, model),
        "flip": parse_flag(cfg.get("flip", False), "flip"),
        "detector": detector,
        "detector_weights": _optional_path(cfg, "detector_weights"),
        "det_threshold": None if threshold is None else _number(cfg, "det_threshold", float),
        "device": None if cfg.get("device") is None else str(cfg.get("device")),
        "backend": None if cfg.get("backend") is None else str(cfg.get("backend")),
        "detector_backend": _detector_backend(cfg),
        "threads": None if cfg.get("threads") is None else _number(cfg, "threads", int, 1),
        "draw_threshold": _number(cfg, "draw_threshold", float),
        "visualize": parse_flag(cfg.get("visualize", True), "visualize"),
        "host": host,
        "port": _number(cfg, "port", int, 1024),
        "workers": _number(cfg, "workers", int, 1),
        "max_batch_size": _number(cfg, "max_batch_size", int, 1),
        "batch_wait_ms": _number(cfg, "batch_wait_ms", float, 0),
        "request_timeout": _number(cfg, "request_timeout", float, 1),
        "shutdown_timeout": _number(cfg, "shutdown_timeout", float, 0),
        "log_level": str(cfg.get("log_level", "info")),
        "engine": str(cfg.get("engine", "litserve")),
        "ray_address": None if cfg.get("ray_address") is None else str(cfg.get("ray_address")),
        "access_log": parse_flag(cfg.get("access_log", False), "access_log"),
    }
    if settings["engine"] not in ENGINES:
        raise SystemExit(f"error: engine={settings['engine']!r} is not an engine; use {' or '.join(ENGINES)}")
    if settings["port"] > 65535:
        raise SystemExit(f"error: port={settings['port']} must be <= 65535")
    try:
        limits = Limits(
            max_body_bytes=int(_number(cfg, "max_body_mb", float, 0) * 1024 * 1024),
            max_pixels=int(_number(cfg, "max_megapixels", float, 0) * 1_000_000),
            max_boxes=_number(cfg, "max_boxes", int, 0),
            url_timeout_s=_number(cfg, "url_timeout", float, 0),
            max_download_bytes=int(_number(cfg, "max_download_mb", float, 0) * 1024 * 1024),
            max_redirects=_number(cfg, "max_redirects", int, 0),
            url_allow=tuple(str(entry) for entry in allow),
            max_queue=_number(cfg, "max_queue", int, 1),
            retry_after_s=_number(cfg, "retry_after", int, 1),
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    settings["max_pixels"] = limits.max_pixels
    settings["models"] = [(model, settings["model_dir"]), *settings["extra_models"]]
    return settings, limits


def run_serve(cfg: Mapping[str, Any]) -> None:
    """Serve until stopped (SIGTERM/Ctrl+C drain first); exits with a one-line error on bad options."""
    settings, limits = settings_from_config(cfg)
    if settings["model_dir"] is None and os.environ.get("TINYPOSE_WEIGHTS_DIR") is None:
        print("default weights: $TINYPOSE_WEIGHTS_DIR unset, using (or downloading into) ~/.cache/tinypose")
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(settings["host"], settings["host"])  # where to open it
    models = " / ".join(name for name, _ in settings["models"])
    print(
        f"tinypose serve: {models} + {settings['detector']} on http://{shown}:{settings['port']} "
        f"(POST {INFER_ENDPOINT}, POST {BOXES_ENDPOINT}, GET {HEALTH_ENDPOINT}, GET {INFO_ENDPOINT}, "
        f"GET {METRICS_ENDPOINT}); batches of up to {settings['max_batch_size']} within "
        f"{settings['batch_wait_ms']:g} ms\nthe page: open http://{shown}:{settings['port']}/ in a browser",
        flush=True,
    )
    try:
        if settings["engine"] == "ray":
            try:
                from .ray_app import run_server as run_ray  # optional: the ``ray`` extra
            except ImportError as error:
                raise SystemExit(f'error: engine=ray needs Ray Serve: pip install -e ".[ray]" ({error})') from None
            run_ray(settings, limits, settings["ray_address"])
        else:
            from .litserve_app import run_server

            run_server(settings, limits)
    except RuntimeError as error:
        raise SystemExit(f"error: the service did not start: {error} (see the log above)") from None


def ray_app(args: Mapping[str, Any]) -> Any:
    """The Ray Serve application for ``serve run tinypose.serve.cli:ray_app key=value ...``: the options of
    ``conf/serve.yaml`` (this checkout's defaults) with ``args`` over them, checked as ``python serve.py``
    checks them (:func:`tinypose.serve.ray_app.build_application`)."""
    from hydra import compose, initialize_config_dir

    from .ray_app import build_application  # optional: the ``ray`` extra

    conf = Path(__file__).resolve().parents[2] / "conf"
    if not (conf / "serve.yaml").is_file():
        raise SystemExit(f"error: ray_app reads the defaults of {conf / 'serve.yaml'}; run it from a checkout")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("serve", overrides=[f"{key}={value}" for key, value in args.items()])
    settings, limits = settings_from_config(cfg)
    return build_application(settings, limits)
