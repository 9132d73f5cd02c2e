"""A PaddleX-format PP-PicoDet pedestrian detector with the shared weights, and the PaddleX pipeline config
that ``paddlex --serve`` needs to run the same models as tinypose (a peer for bench_serve.py only).

    python benchmarks/paddlex_picodet.py --ppdet /tmp/PaddleDetection --out output/paddlex_peer

1. In tinypose's Python: the detector's weights (``../shared/weights/openvino/picodet_s_320_lcnet_pedestrian``,
   read by tinypose's loader) are written as a name -> array ``.npz`` with PaddleDetection's names
   (tinypose's module names mirror PaddleDetection's; BatchNorm buffers renamed back).
2. In the peers' Python (paddlepaddle, ``--peers-python``): PaddleDetection's own ``PicoDet`` is built
   from its config (``configs/picodet/application/pedestrian_detection/picodet_s_320_lcnet_pedestrian.yml``,
   sources from a PaddleDetection checkout given by ``--ppdet``, never a dependency of tinypose), the
   arrays are loaded strictly, and PaddleDetection's ``Trainer.export(for_fd=True)`` writes
   ``inference.json``/``.pdiparams``/``.yml`` with NMS and the rescaling in the program, as every
   released PaddleX detector. ``Global.model_name`` is set to ``PicoDet-S`` (a PaddleX object
   detection model name; the folder's own config says 320x320 and the one class).
3. The PP-TinyPose PaddleX folder (``paddlex_models.build_paddlex_folder``) and ``pipeline.yaml``: PaddleX's
   ``human_keypoint_detection`` config with both ``model_dir``s, for ``paddlex --serve --pipeline``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared"))
CONFIG = "configs/picodet/application/pedestrian_detection/picodet_{size}_lcnet_pedestrian.yml"

PIPELINE = """pipeline_name: human_keypoint_detection

SubModules:
  ObjectDetection:
    module_name: object_detection
    model_name: PicoDet-S
    model_dir: {detector}
    batch_size: 1
    threshold: null
    img_size: null
  KeypointDetection:
    module_name: keypoint_detection
    model_name: PP-TinyPose_128x96
    model_dir: {pose}
    batch_size: 1
    flip: False
    use_udp: null
"""


def dump_weights(name: str, weights: Path, output: Path) -> None:
    """tinypose's state dict of the detector as PaddleDetection names -> float32 arrays."""
    import numpy as np

    from tinypose.detect import build_detector
    from tinypose.weights.mapping import torch_to_paddle_name

    model = build_detector(name, pretrained=weights)
    arrays = {torch_to_paddle_name(k): v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    np.savez(output, **arrays)


EXPORT = r"""
import sys, types, numpy as np
ppdet_root, npz, out = sys.argv[1:4]
sys.path.insert(0, ppdet_root)


class Stub(types.ModuleType):
    # a module ppdet imports for parts unused here (lane data, MOT plots...); any attribute is a dummy
    __path__ = []
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return type(attr, (), {"__init__": lambda self, *a, **k: None})


def stub(name):
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), Stub(".".join(parts[:i])))


for attempt in range(30):
    try:
        from ppdet.core.workspace import load_config
        from ppdet.engine import Trainer
        break
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] in ("ppdet", "paddle", "numpy"):
            raise
        print(f"(stubbing {error.name}: not installed in the peers' Python, unused by the export)")
        stub(error.name)
        for loaded in [m for m in sys.modules if m == "ppdet" or m.startswith("ppdet.")]:
            del sys.modules[loaded]
import paddle
paddle.set_device("cpu")
cfg = load_config(sys.argv[4])
cfg.use_gpu = False
trainer = Trainer(cfg, mode="test")
state = trainer.model.state_dict()
arrays = dict(np.load(npz))
missing, loaded = [], {}
for key, value in state.items():
    source = key
    if source not in arrays:  # head_cls{i}/head_reg{i} are upstream's aliases of the *_list layers
        for kind in ("cls", "reg"):
            prefix = f"head.head_{kind}"
            if key.startswith(prefix) and key[len(prefix)].isdigit():
                level, rest = key[len(prefix):].split(".", 1)
                source = f"head.head_{kind}_list.{level}.{rest}"
    if key.endswith("distribution_project.project"):
        loaded[key] = np.linspace(0, 7, 8, dtype=np.float32)
        continue
    if key.endswith(".scale_reg"):  # GFLHead's ScaleReg: unused by PicoHeadV2's forward, keeps its init
        continue
    if source not in arrays:
        missing.append(key)
        continue
    value = arrays[source].reshape(list(state[key].shape)).astype(np.float32)
    loaded[key] = value
if missing:
    raise SystemExit(f"no value for {len(missing)} PaddleDetection parameters: {missing[:8]}")
trainer.model.set_state_dict({k: paddle.to_tensor(v) for k, v in loaded.items()})
check = trainer.model.state_dict()
assert all(np.array_equal(check[k].numpy(), loaded[k]) for k in loaded), "weights did not load"
trainer.export(out, for_fd=True)
print(f"exported {len(loaded)} tensors to {out}")
"""


def export_paddle(ppdet: Path, npz: Path, output: Path, config: Path, peers_python: str) -> None:
    """PaddleDetection's PicoDet with the arrays of ``npz``, exported in PaddleX's format to ``output``."""
    env = {**os.environ, "FLAGS_use_mkldnn": "0"}
    command = [peers_python, "-c", EXPORT, str(ppdet), str(npz), str(output), str(config)]
    subprocess.run(command, check=True, cwd=ppdet, env=env)
    import yaml

    infer = output / "inference.yml"
    config = yaml.safe_load(infer.read_text())
    config.setdefault("Global", {})["model_name"] = "PicoDet-S"
    config["label_list"] = ["pedestrian"]  # ppdet writes COCO's 80 names when no annotation file is at hand
    infer.write_text(yaml.safe_dump(config, sort_keys=False))


CHECK = r"""
import json, sys
from paddlex import create_pipeline
pipeline = create_pipeline(pipeline=sys.argv[1], device="cpu")
out = []
for path in sys.argv[2:]:
    for result in pipeline.predict(path):
        people = [{"bbox": [float(v) for v in p["coordinate"]], "kpts": p["keypoints"].tolist(), "det": float(p["det_score"])}
                  for p in result["boxes"]]
        out.append({"path": path, "people": people})
print("JSON" + json.dumps(out))
"""


def check_against_tinypose(pipeline_yaml: Path, photos: list[Path], peers_python: str) -> None:
    """PaddleX's pipeline on these folders vs tinypose's pipeline on the same weights: people, boxes, keypoints."""
    import json

    import numpy as np

    import tinypose

    env = {**os.environ, "FLAGS_use_mkldnn": "0", "PADDLE_PDX_ENABLE_MKLDNN_BYDEFAULT": "False"}
    command = [peers_python, "-c", CHECK, str(pipeline_yaml), *map(str, photos)]
    done = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    theirs = json.loads(done.stdout.split("JSON", 1)[1])
    weights = SHARED / "weights" / "openvino"
    ours = tinypose.create_pipeline(
        pose_model_dir=weights / "tinypose_128x96" / "model.xml",
        detector_model_dir=weights / "picodet_s_320_lcnet_pedestrian" / "model.xml",
        device="cpu",
        smoothing=False,
    )
    for item in theirs:
        mine = next(ours.predict(item["path"]))["boxes"]
        box = max(
            (float(np.abs(np.subtract(p["coordinate"], q["bbox"])).max()) for p, q in zip(mine, item["people"])),
            default=0.0,
        )
        points = [
            np.abs(np.asarray(p["keypoints"])[:, :2] - np.asarray(q["kpts"])[:, :2])
            for p, q in zip(mine, item["people"])
        ]
        median = float(np.median(np.concatenate(points))) if points else 0.0
        worst = float(max((x.max() for x in points), default=0.0))
        print(
            f"{Path(item['path']).name}: people tinypose {len(mine)} / PaddleX {len(item['people'])}, "
            f"max |box diff| {box:.3f} px, keypoints |diff| median {median:.3f} px, max {worst:.2f} px"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ppdet", type=Path, required=True, help="a PaddleDetection checkout (sources only)")
    parser.add_argument("--out", type=Path, default=REPO / "output" / "paddlex_peer")
    parser.add_argument("--size", default="s_320", choices=["s_320", "s_192"])
    parser.add_argument("--peers-python", default=os.environ.get("TINYPOSE_PEERS_PYTHON", "/work/peers/bin/python"))
    parser.add_argument("--check-only", action="store_true", help="only compare PaddleX's answers with tinypose's")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from paddlex_models import build_paddlex_folder

    name = f"picodet_{args.size}_lcnet_pedestrian"
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    npz = out / f"{name}.npz"
    detector = out / name
    if args.check_only:
        check_against_tinypose(
            out / "pipeline.yaml", sorted((SHARED / "data" / "photos").glob("*.jpg")), args.peers_python
        )
        return
    dump_weights(name, SHARED / "weights" / "openvino" / name / "model.xml", npz)
    export_paddle(
        args.ppdet.resolve(), npz, detector, args.ppdet.resolve() / CONFIG.format(size=args.size), args.peers_python
    )
    pose = build_paddlex_folder(out / "PP-TinyPose_128x96", SHARED, "128x96")
    (out / "pipeline.yaml").write_text(PIPELINE.format(detector=detector, pose=pose.resolve()))
    print(f"wrote {detector}, {pose} and {out / 'pipeline.yaml'}")
    photos = sorted((SHARED / "data" / "photos").glob("*.jpg"))
    check_against_tinypose(out / "pipeline.yaml", photos, args.peers_python)


if __name__ == "__main__":
    main()
