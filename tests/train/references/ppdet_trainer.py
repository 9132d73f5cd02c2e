"""PaddleDetection's ``Trainer(cfg, mode='train')`` for the stock PP-TinyPose configs, on CPU.

Imported by ``paddle_train_runner.py`` and ``benchmarks/bench_train.py``'s Paddle side (run in the
Paddle Python, with the PaddleDetection sources at ``ppdet``).
"""

import importlib.abc
import importlib.machinery
import sys
import types
import typing

# ppdet.data.source imports imgaug (lane datasets only, not used here; not installed in the Paddle env):
# any imgaug.* import gets an empty package whose attributes are None


class _Stub(types.ModuleType):
    __path__: typing.ClassVar[list] = []

    def __getattr__(self, name: str) -> None:
        return None


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if name.split(".")[0] == "imgaug" else None

    def create_module(self, spec):
        return _Stub(spec.name)

    def exec_module(self, module):
        pass


def build_trainer(
    ppdet: str,
    size: str,
    dtype: str,
    coco_dev: str,
    batch_size: int,
    milestones: list | None = None,
    warmup_steps: int | None = None,
) -> typing.Any:
    """``Trainer(cfg, mode='train')`` from ``configs/keypoint/tiny_pose/tinypose_<size>.yml``: dataset
    pointed at coco_dev, ``batch_size``, no loader workers, CPU, ``dtype`` as Paddle's default dtype
    (float64 builds everything in float64); optionally the schedule's milestones (epochs) and warmup."""
    if not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())
    if ppdet not in sys.path:
        sys.path.insert(0, ppdet)
    import paddle
    from ppdet.core.workspace import load_config
    from ppdet.engine import Trainer

    paddle.set_device("cpu")
    paddle.set_default_dtype(dtype)
    cfg = load_config(f"{ppdet}/configs/keypoint/tiny_pose/tinypose_{size}.yml")
    cfg.use_gpu = False
    cfg.worker_num = 0
    cfg["TrainDataset"].dataset_dir = coco_dev
    cfg["TrainDataset"].image_dir = "images"
    cfg["TrainDataset"].anno_path = "annotations/person_keypoints.json"
    cfg["TrainReader"]["batch_size"] = batch_size
    piecewise, warmup = cfg["LearningRate"]["schedulers"]
    if milestones is not None:
        piecewise.milestones = [int(m) for m in milestones]
    if warmup_steps is not None:
        warmup.steps = int(warmup_steps)
    return Trainer(cfg, mode="train")
