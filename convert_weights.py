"""Convert PP-TinyPose (or PP-PicoDet detector) weights (Paddle .pdparams, Paddle/PaddleX inference model, OpenVINO IR) to safetensors.

python convert_weights.py SRC -o OUT.safetensors [--model PP-TinyPose_128x96] [--force]
"""

from __future__ import annotations

import argparse
import sys

from tinypose.detect import get_detector_spec, list_detectors
from tinypose.models import get_spec, list_models
from tinypose.weights import WeightsError
from tinypose.weights.convert import convert


def _model_name(text: str) -> str:
    try:
        return get_spec(text).name
    except ValueError as error:
        try:
            return get_detector_spec(text).name
        except ValueError:
            raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert PP-TinyPose weights to a tinypose .safetensors file. The source format is "
        "detected from the path: a .pdparams checkpoint, a Paddle/PaddleX inference model (folder, "
        ".json/.pdmodel or .pdiparams), an OpenVINO IR .xml (BatchNorm folded), or a .safetensors.",
    )
    parser.add_argument("source", metavar="SRC", help="weights file or folder to convert")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="file to write")
    parser.add_argument(
        "--model",
        type=_model_name,
        default=None,
        help=f"model the weights are for ({', '.join(list_models() + list_detectors())}); needed when the "
        "source does not say (a bare .pdparams)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = parser.parse_args(argv)
    try:
        path = convert(args.source, args.output, model_name=args.model, force=args.force)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
