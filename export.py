"""Export PP-TinyPose to ONNX, OpenVINO IR or a TensorRT engine: ``python export.py --help``."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP; see docs/export.md (CPU threads)

import sys

from tinypose.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
