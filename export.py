"""Export PP-TinyPose to ONNX, OpenVINO IR or a TensorRT engine: ``python export.py --help``."""

import sys

from tinypose.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
