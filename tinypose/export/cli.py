"""``python export.py``: write PP-TinyPose as ONNX, OpenVINO IR or a TensorRT engine, and check it.

    python export.py --model PP-TinyPose_128x96 -o tinypose_128x96.onnx
    python export.py --model 256x192 --weights my_checkpoint.pdparams --precision fp16 -o pose_fp16.onnx
    python export.py --model 128x96 --format openvino -o ir/tinypose.xml
    python export.py --model 128x96 --format tensorrt -o tinypose.engine      # needs TensorRT + a GPU

The ONNX takes a normalized RGB batch ``image`` [N,3,H,W] (N dynamic) and returns ``heatmaps``
[N,17,H/4,W/4]; BatchNorm and channel shuffles are folded into the convs. After writing, the
export is run once on a random batch and compared with the PyTorch model (``--no-verify`` skips).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..models.tinypose import build_model, get_spec, list_models
from ..weights.errors import WeightsError
from .backends import BackendUnavailable
from .onnx import DEFAULT_OPSET, EXPORTERS, INPUT_NAME, export_onnx

__all__ = ["FORMATS", "SUFFIXES", "main", "parse_args"]

FORMATS = ("onnx", "openvino", "tensorrt")
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "tensorrt": ".engine"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: <model><suffix> here)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default=None, help="default fp32 (fp16 for tensorrt)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument(
        "--exporter", choices=EXPORTERS, default="graph", help="graph: our lowering (fast); torch: torch.onnx dynamo"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip running the export against PyTorch")
    return parser.parse_args(argv)


def _verify_onnx(path: Path, model: torch.nn.Module, batch: torch.Tensor) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {INPUT_NAME: batch.numpy()})[0]
    with torch.inference_mode():
        reference = model(batch).numpy()
    return float(np.abs(ours - reference).max())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _export(args)
    except (BackendUnavailable, WeightsError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    precision = args.precision or ("fp16" if args.format == "tensorrt" else "fp32")
    output = args.output or Path(f"{spec.name}{'' if precision == 'fp32' else '_' + precision}{SUFFIXES[args.format]}")
    pretrained = False if args.random else (args.weights or True)
    model = build_model(spec.name, pretrained=pretrained)
    batch = torch.randn(3, 3, spec.input_height, spec.input_width, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()

    if args.format == "onnx":
        export_onnx(model, output, opset=args.opset, precision=precision, exporter=args.exporter)
        print(
            f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, opset {args.opset}, {precision}) in {time.perf_counter() - start:.1f} s"
        )
        if not args.no_verify:
            print(f"onnxruntime vs torch on a random batch of 3: max |diff| = {_verify_onnx(output, model, batch):.2e}")
        return 0

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        if args.format == "openvino":
            import openvino as ov

            export_onnx(model, onnx_path, opset=args.opset, precision="fp32", exporter=args.exporter)
            ir = ov.convert_model(str(onnx_path))
            output.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(ir, str(output), compress_to_fp16=precision == "fp16")
            print(
                f"wrote {output} and {output.with_suffix('.bin')} ({precision} weights) in {time.perf_counter() - start:.1f} s"
            )
            if not args.no_verify:
                compiled = ov.Core().compile_model(str(output), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                ours = compiled(batch.numpy())[0]
                with torch.inference_mode():
                    diff = float(np.abs(ours - model(batch).numpy()).max())
                print(f"openvino vs torch on a random batch of 3: max |diff| = {diff:.2e}")
            return 0

        from .tensorrt import DEFAULT_PROFILE, _strongly_typed, build_engine, import_tensorrt

        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise BackendUnavailable("building a TensorRT engine needs a CUDA GPU; torch sees none")
        onnx_precision = precision if _strongly_typed(trt) else "fp32"
        export_onnx(model, onnx_path, opset=args.opset, precision=onnx_precision)
        build_engine(onnx_path, output, input_shape=(3, spec.input_height, spec.input_width), precision=precision)
        print(
            f"wrote {output} (TensorRT {trt.__version__}, {precision}, batch profile {DEFAULT_PROFILE}) in {time.perf_counter() - start:.1f} s"
        )
    return 0
