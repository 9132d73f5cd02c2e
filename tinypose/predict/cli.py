"""What ``python infer.py`` does: predict on the configured input and write JSON + pictures/videos."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..device import usable_device
from ..options import OptionError, parse_bool, parse_float, parse_int
from ..pipeline import create_pipeline
from ..runtimes import thread_options
from ..weights import WeightsError
from .inputs import InputError, count_inputs
from .predictor import create_model
from .result import to_builtin
from .writers import VideoJsonWriter

__all__ = ["BOOLEAN_OPTIONS", "DEMO_IMAGE", "ENGINES", "run_infer"]

ENGINES = ("local", "ray")
"""``engine=``: ``local`` (this process) or ``ray`` (Ray Data actors writing Parquet, :mod:`tinypose.scale`)."""

MAX_LISTED = 10
"""Up to this many written files are listed one per line at the end of a run."""

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


BOOLEAN_OPTIONS = {"flip": False, "save_json": True, "save_img": True, "print_json": False, "smoothing": True}
"""Every boolean option of ``conf/infer.yaml`` and its default, read strictly (``flip=no`` is false,
``flip=maybe`` an error)."""


def _options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``cfg`` checked and typed, before anything is loaded: a bad value is a one-line error."""
    try:
        options: dict[str, Any] = {
            name: parse_bool(cfg.get(name, default), name) for name, default in BOOLEAN_OPTIONS.items()
        }
        options["batch_size"] = parse_int(cfg.get("batch_size", 1), "batch_size", minimum=1)
        threads = cfg.get("threads")
        options["threads"] = None if threads is None else parse_int(threads, "threads", minimum=1)
        options["draw_threshold"] = parse_float(cfg.get("draw_threshold", 0.3), "draw_threshold")
        options["url_timeout"] = parse_float(cfg.get("url_timeout", 20), "url_timeout", minimum=0, inclusive=False)
        max_mb = parse_float(cfg.get("max_download_mb", 50), "max_download_mb", minimum=0, inclusive=False)
        options["max_download_bytes"] = int(max_mb * 1024 * 1024)
        threshold = cfg.get("det_threshold", 0.5)
        options["det_threshold"] = None if threshold is None else parse_float(threshold, "det_threshold")
        for name in ("min_cutoff", "beta"):
            value = cfg.get(name)
            options[name] = None if value is None else parse_float(value, name)
        options["engine"] = str(cfg.get("engine", "local"))
        if options["engine"] not in ENGINES:
            raise OptionError(f"engine={options['engine']!r} is not an engine; use {' or '.join(ENGINES)}")
        options["num_actors"] = parse_int(cfg.get("num_actors", 1), "num_actors", minimum=1)
        options["cpus_per_actor"] = parse_float(
            cfg.get("cpus_per_actor", 1), "cpus_per_actor", minimum=0, inclusive=False
        )
        options["gpus_per_actor"] = parse_float(cfg.get("gpus_per_actor", 0), "gpus_per_actor", minimum=0)
        options["units_per_shard"] = parse_int(cfg.get("units_per_shard", 16), "units_per_shard", minimum=1)
        options["frames_per_unit"] = parse_int(cfg.get("frames_per_unit", 256), "frames_per_unit", minimum=1)
        address = cfg.get("ray_address")
        options["ray_address"] = None if address is None else str(address)
    except OptionError as error:
        raise SystemExit(f"error: {error}") from None
    output = Path(str(cfg.get("output", "output/infer")))
    if output.exists() and not output.is_dir():
        raise SystemExit(f"error: output={output} is an existing file; output names a folder for the results")
    options["output"] = output
    return options


def run_infer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Run the predictor over ``cfg.input`` and save results into ``cfg.output``; returns a summary.

    Exits with a one-line message (no traceback) when an option, the input or the weights cannot be used.
    """
    options = _options(cfg)
    if options["threads"]:
        torch.set_num_threads(options["threads"])
    inputs = _plain(cfg.get("input"))
    if inputs is None:
        inputs = str(DEMO_IMAGE)
        print(f"no input given: running on the bundled demo image {DEMO_IMAGE}")
    output = options["output"]
    model_cfg = cfg["model"]
    model_name = model_cfg["name"] if isinstance(model_cfg, Mapping) or hasattr(model_cfg, "get") else str(model_cfg)
    if options["engine"] == "ray":
        return _run_ray(cfg, options, inputs, model_name)
    try:
        device = usable_device(cfg.get("device"))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    backend = cfg.get("backend")
    try:
        predictor = create_model(
            model_name,
            model_dir=cfg.get("model_dir"),
            flip=options["flip"],
            device=device,
            backend=None if backend is None else str(backend),
            backend_options=thread_options(options["threads"], device),
            draw_threshold=options["draw_threshold"],
            on_error=str(cfg.get("on_error", "skip")),
            url_timeout=options["url_timeout"],
            max_download_bytes=options["max_download_bytes"],
        )
    except ImportError as error:
        raise SystemExit(
            f"error: cannot load the default weights of {model_name} ({error}); pass model_dir=WEIGHTS"
        ) from None
    except (WeightsError, ValueError, OSError, RuntimeError) as error:  # RuntimeError: a backend's runtime is missing
        raise SystemExit(f"error: cannot build {model_name}: {error}") from None

    runner: Any = predictor
    if cfg.get("detector") is not None:
        runner = _pipeline(cfg, options, predictor)
    total = count_inputs(inputs)
    save_json, save_img = options["save_json"], options["save_img"]
    output.mkdir(parents=True, exist_ok=True)
    videos = VideoJsonWriter(output)
    images = people = 0
    written: list[Path] = []
    try:
        results = iter(runner.predict(inputs, batch_size=options["batch_size"]))
        first = next(results, None)  # a bad single input fails here, before a progress bar is drawn
        stream = results if first is None else itertools.chain([first], results)
        bar = tqdm(stream, total=total, unit="img", disable=first is None or (total or 0) == 1, file=sys.stderr)
        for result in bar:
            images += 1
            people += len(result["boxes"] if "boxes" in result else result["kpts"])
            if options["print_json"]:
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
    if images == 0 and runner.errors:
        raise SystemExit(f"error: none of the {len(runner.errors)} inputs could be read (each is listed above)")
    print(f"{images} image(s), {people} person(s) -> {output}{os.sep}")
    if len(written) <= MAX_LISTED:
        for path in written:
            print(f"  {path}")
    else:
        print(f"  {len(written)} files, {written[0]} ... {written[-1]}")
    return {"images": images, "people": people, "errors": [str(e) for e in runner.errors], "written": written}


def _pipeline(cfg: Mapping[str, Any], options: Mapping[str, Any], predictor: Any) -> Any:
    """The detector + pose pipeline (``tinypose.create_pipeline``) around ``predictor``."""
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
            det_threshold=options["det_threshold"],
            batch_size=options["batch_size"],
            tracking=str(cfg.get("tracking", "iou")),
            smoothing=options["smoothing"],
            min_cutoff=options["min_cutoff"],
            beta=options["beta"],
        )
    except (WeightsError, ValueError, OSError) as error:
        raise SystemExit(f"error: cannot build the detector {cfg['detector']}: {error}") from None


def _run_ray(cfg: Mapping[str, Any], options: Mapping[str, Any], inputs: Any, model_name: str) -> dict[str, Any]:
    """``engine=ray``: the inputs on Ray Data actors, one Parquet row per person in ``output``
    (:func:`tinypose.scale.run_batch`); a re-run skips what is written."""
    from ..scale import run_batch

    detector_dir = cfg.get("detector_model_dir", cfg.get("detector_weights"))
    settings = {
        "model": model_name,
        "model_dir": cfg.get("model_dir"),
        "flip": options["flip"],
        "device": cfg.get("device"),
        "backend": None if cfg.get("backend") is None else str(cfg.get("backend")),
        "detector": None if cfg.get("detector") is None else str(cfg["detector"]),
        "detector_model_dir": None if detector_dir is None else str(detector_dir),
        "det_threshold": options["det_threshold"],
        "batch_size": options["batch_size"],
    }
    try:
        summary = run_batch(
            inputs,
            options["output"],
            settings,
            num_actors=options["num_actors"],
            cpus_per_actor=options["cpus_per_actor"],
            gpus_per_actor=options["gpus_per_actor"],
            threads=options["threads"] or 1,
            units_per_shard=options["units_per_shard"],
            frames_per_unit=options["frames_per_unit"],
            address=options["ray_address"],
        )
    except (InputError, ImportError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"{summary['units']} input(s): {summary['processed']} processed, {summary['skipped']} done before, "
        f"{summary['errors']} error row(s), {summary['rows']} row(s) -> {options['output']}{os.sep}part-*.parquet"
    )
    return summary
