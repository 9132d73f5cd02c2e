"""Regenerate the PaddleX reference results in this folder (see README.md here). Not run by the tests.

Run from the repository root with the project venv; it builds the Paddle inference folders it needs
in a temporary directory and runs the real PaddleX 3.7.2 in another Python (with paddlepaddle,
paddlex and opencv-contrib-python) as a subprocess:

    python tests/predict/references/make_references.py \
        --paddle-python /work/peers/bin/python --paddle-pythonpath /path/to/opencv-contrib-5.1/site

Models: ``random_128x96`` is ``fixtures/paddle/paddlex_infer_128x96`` as is; ``real_128x96`` is the
same program with the real weights of ``weights/openvino/tinypose_128x96`` written into its
``inference.pdiparams`` (BatchNorm-folded IR weights as BN = identity + shift, fp16 values widened
to fp32), i.e. what PaddleX computes with those weights. ``real_256x192``: that program widened to
256x192 inputs with the real 256x192 weights (``benchmarks/paddlex_models.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PHOTOS = ("demo_2.jpg", "demo_3.jpg", "demo_5.jpg", "demo_6.jpg", "demo_7.jpg")
BOXES = {  # person boxes (x1, y1, x2, y2) drawn by hand around the people in the photos
    "demo_7.jpg": [[90, 78, 152, 262], [150, 90, 205, 262], [200, 82, 262, 258], [252, 98, 330, 258]],
    "demo_2.jpg": [[80, 5, 780, 950]],
}

RUNNER = r"""
import json, sys
import cv2, numpy as np, paddle, paddlex
from paddlex.inference.models.runners.paddle_static.config.pp_option import PaddlePredictorOption
from paddlex.inference.pipelines.keypoint_detection.pipeline import _KeypointDetectionPipeline

job = json.loads(sys.argv[1])
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
out = {"paddlex": paddlex.__version__, "paddle": paddle.__version__, "opencv": cv2.__version__, "results": []}
crops = {}
for model in job["models"]:
    for flip in (False, True):
        option = PaddlePredictorOption(run_mode="paddle", cpu_threads=1)  # oneDNN fails on these programs
        predictor = paddlex.create_model(model["name"], model_dir=model["dir"], device="cpu", flip=flip, pp_option=option)
        seen = []
        inner = predictor._predictor if hasattr(predictor, "_predictor") else predictor
        runner = inner.runner
        def recording(batch, _runner=runner):
            if not seen:
                seen.append(np.array(batch[0], copy=True))
            return _runner(batch)
        inner.runner = recording
        class Sizes:  # what _box_xyxy2cs reads from the pipeline
            kpt_input_size = inner.input_size
        for photo in job["photos"]:
            image = cv2.imread(job["photo_dir"] + "/" + photo)
            tasks = [(None, image)]
            for box in job["boxes"].get(photo, []):
                center, scale = _KeypointDetectionPipeline._box_xyxy2cs(Sizes, np.array(box, dtype=np.float64))
                tasks.append((box, {"img": image, "center": center, "scale": scale}))
            for box, item in tasks:
                seen.clear()
                result = list(predictor.predict(item if box is not None else job["photo_dir"] + "/" + photo))[0]
                person = result["kpts"][0]
                out["results"].append({
                    "model": model["key"], "flip": flip, "image": photo, "box": box,
                    "keypoints": np.asarray(person["keypoints"]).tolist(), "kpt_score": float(person["kpt_score"]),
                })
                if not flip and model["key"] == job["crop_model"]:
                    key = photo + ("" if box is None else "|" + ",".join(str(v) for v in box))
                    rgb = seen[0][0].transpose(1, 2, 0) * np.array(STD) + np.array(MEAN)
                    crops[key] = np.rint(rgb * 255).astype(np.uint8)  # the uint8 RGB crop PaddleX normalized
np.savez_compressed(job["crops_out"], **{k: v for k, v in crops.items()})
json.dump(out, open(job["json_out"], "w"))
"""


def main() -> None:
    sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
    from paddlex_models import build_paddlex_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paddle-python", required=True, help="a Python with paddlepaddle + paddlex")
    parser.add_argument("--paddle-pythonpath", default="", help="extra PYTHONPATH for it (e.g. opencv-contrib-python)")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"), help="the ../shared folder")
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmp:
        real = build_paddlex_folder(Path(tmp) / "real_128x96", shared)
        real_256 = build_paddlex_folder(Path(tmp) / "real_256x192", shared, "256x192")
        job = {
            "models": [
                {
                    "key": "random_128x96",
                    "name": "PP-TinyPose_128x96",
                    "dir": str(shared / "fixtures/paddle/paddlex_infer_128x96"),
                },
                {"key": "real_128x96", "name": "PP-TinyPose_128x96", "dir": str(real)},
                {"key": "real_256x192", "name": "PP-TinyPose_256x192", "dir": str(real_256)},
            ],
            "photos": list(PHOTOS),
            "photo_dir": str(shared / "data" / "photos"),
            "boxes": BOXES,
            "crop_model": "random_128x96",
            "crops_out": str(HERE / "paddlex_crops_128x96.npz"),
            "json_out": str(HERE / "paddlex_photos.json"),
        }
        env = dict(os.environ, PYTHONPATH=args.paddle_pythonpath)
        subprocess.run([args.paddle_python, "-c", RUNNER, json.dumps(job)], check=True, env=env, cwd=tmp)
    print(f"wrote {job['json_out']} and {job['crops_out']}")


if __name__ == "__main__":
    main()
