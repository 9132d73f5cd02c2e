"""``python export.py``: write PP-TinyPose as ONNX, OpenVINO IR or a TensorRT engine, and check it.

    python export.py --model PP-TinyPose_128x96 -o tinypose_128x96.onnx
    python export.py --model 256x192 --weights my_checkpoint.pdparams --precision fp16 -o pose_fp16.onnx
    python export.py --model 128x96 --format openvino -o ir/tinypose.xml
    python export.py --model 128x96 --format openvino --precision int8 --calib-images photos/ -o ir8/pose.xml
    python export.py --model 128x96 --format tensorrt -o tinypose.engine      # needs TensorRT + a GPU

An existing output is never overwritten without ``--force``.

The ONNX takes a normalized RGB batch ``image`` [N,3,H,W] (N dynamic) and returns ``heatmaps``
[N,17,H/4,W/4]; BatchNorm and channel shuffles are folded into the convs. After writing, the
export is run once on a random batch and compared with the PyTorch model (``--no-verify`` skips).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import cast

import torch

from ..models.tinypose import build_model, get_spec, list_models
from ..runtimes.base import RuntimeUnavailable
from ..runtimes.registry import CalibratedArtifactWriter, export_formats
from ..weights.errors import WeightsError
from .onnx import DEFAULT_OPSET, EXPORTERS

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    formats = export_formats()
    parser = argparse.ArgumentParser(
        prog="export.py", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--model", default="PP-TinyPose_128x96", help=f"one of {', '.join(list_models())}")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights", help="weights in any supported format (.safetensors, .pdparams, Paddle inference folder, "
        "OpenVINO .xml); default: the released weights"
    )  # fmt: skip
    weights.add_argument("--random", action="store_true", help="random weights (for trying the pipeline)")
    parser.add_argument(
        "--format", choices=list(formats), default="onnx", help="the artifact of a runtime (tinypose.runtimes)"
    )
    parser.add_argument("-o", "--output", type=Path, help="output file (default: <model><suffix> here)")
    defaults = ", ".join(f"{f.default_precision} for {f.name}" for f in formats.values())
    parser.add_argument(
        "--precision", choices=("fp32", "fp16", "int8"), default=None,
        help=f"default: {defaults}; int8 (openvino): post-training quantization (NNCF) calibrated on --calib-images",
    )  # fmt: skip
    parser.add_argument(
        "--calib-images", type=Path, default=None,
        help="int8: a folder of images like those you will run on (each person the detector finds is cropped as the pipeline does)",
    )  # fmt: skip
    parser.add_argument(
        "--calib-detector", default=None,
        help="int8: weights of the person detector that makes the calibration crops (default: the default detector); "
        "'none': crop whole images",
    )  # fmt: skip
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument(
        "--exporter", choices=EXPORTERS, default="graph", help="graph: our lowering (fast); torch: torch.onnx dynamo"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip running the export against PyTorch")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _export(args)
    except (RuntimeUnavailable, WeightsError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    artifact = export_formats()[args.format]
    precision = args.precision or artifact.default_precision
    if precision not in artifact.precisions:
        raise ValueError(
            f"--format {artifact.name} writes {', '.join(artifact.precisions)}, not --precision {precision}"
        )
    if precision == "int8" and args.calib_images is None:
        raise ValueError("--precision int8 needs --calib-images FOLDER (images to calibrate the quantization on)")
    if (args.calib_images is not None or args.calib_detector is not None) and precision != "int8":
        raise ValueError("--calib-images and --calib-detector are for --precision int8")
    calib_detector: str | bool | None = args.calib_detector
    if isinstance(args.calib_detector, str) and args.calib_detector.lower() == "none":
        calib_detector = False
    suffix = "" if precision == "fp32" else "_" + precision
    output = args.output or Path(f"{spec.name}{suffix}{artifact.suffix}")
    existing = [str(path) for path in artifact.outputs(Path(output)) if path.exists()]
    if existing and not args.force:
        raise FileExistsError(f"{' and '.join(existing)} already exist(s); pass --force to overwrite")
    pretrained = False if args.random else (args.weights or True)
    model = build_model(spec.name, pretrained=pretrained)
    generator = torch.Generator().manual_seed(0)
    check_batch = (
        None if args.no_verify else torch.randn(3, 3, spec.input_height, spec.input_width, generator=generator)
    )
    if precision == "int8":
        writer = cast(CalibratedArtifactWriter, artifact.load_writer())
        writer(
            model, output, precision=precision, opset=args.opset, exporter=args.exporter, check_batch=check_batch,
            report=print, calib_images=args.calib_images, calib_detector=calib_detector,
        )  # fmt: skip
        return 0
    artifact.load_writer()(
        model, output, precision=precision, opset=args.opset, exporter=args.exporter, check_batch=check_batch,
        report=print,
    )  # fmt: skip
    return 0
