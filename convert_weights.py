"""Convert PP-TinyPose (or PP-PicoDet detector) weights (Paddle .pdparams, Paddle/PaddleX inference model, OpenVINO IR,
a tinypose training checkpoint .ckpt) to safetensors.

python convert_weights.py SRC -o OUT.safetensors [--model PP-TinyPose_128x96] [--force]
"""

from __future__ import annotations

import argparse
import sys

from tinypose.families import convert_weights, family_for, model_names
from tinypose.weights import WeightsError


def _model_name(text: str) -> str:
    try:
        return family_for("", text).spec(text).name
    except WeightsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert PP-TinyPose weights to a tinypose .safetensors file. The source format is "
        "detected from the path: a .pdparams checkpoint, a Paddle/PaddleX inference model (folder, "
        ".json/.pdmodel or .pdiparams), an OpenVINO IR .xml (BatchNorm folded), a tinypose training checkpoint "
        ".ckpt (read with torch.load(weights_only=True): no code from it runs), or a .safetensors. An existing "
        "OUT is kept unless --force is given.",
    )
    parser.add_argument("source", metavar="SRC", help="weights file or folder to convert")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="file to write")
    parser.add_argument(
        "--model",
        type=_model_name,
        default=None,
        help=f"model the weights are for ({', '.join(model_names())}); needed when the "
        "source does not say (a bare .pdparams)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = parser.parse_args(argv)
    try:
        path = convert_weights(args.source, args.output, model_name=args.model, force=args.force)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
