"""PaddleDetection's own training step, timed (run by bench_train.py in the peers' Python).

    python paddle_train_step.py PPDET_DIR SIZE BATCHES.npz TIMED_STEPS

The Trainer of the stock config (tests/train/references/ppdet_trainer.py), the body of its training
loop (forward, backward, ``optimizer.step()``, ``lr.step()``, ``clear_grad()``) over the in-memory
batches of BATCHES.npz; one untimed step first. Threads come from OMP_NUM_THREADS (set by the caller).
Prints one JSON line: ``{"samples_per_s": ...}``.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "train" / "references"))
from ppdet_trainer import build_trainer

ppdet, size, batches_path, timed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = np.load(batches_path)
count = int(data["count"])
trainer = build_trainer(ppdet, size, "float32", str(data["coco_dev"]), int(data["batch_size"]))
import paddle  # noqa: E402  (imported by build_trainer)

threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
if hasattr(paddle.base.core, "set_num_threads"):
    paddle.base.core.set_num_threads(threads)
batches = [
    {key: paddle.to_tensor(data[f"{i}/{key}"]) for key in ("image", "target", "target_weight")} for i in range(count)
]
model, optimizer, lr = trainer.model, trainer.optimizer, trainer.lr
model.train()


def step(batch: dict) -> None:
    loss = model(dict(batch, epoch_id=0))["loss"]
    loss.backward()
    optimizer.step()
    lr.step()
    optimizer.clear_grad()


step(batches[0])
samples, start = 0, time.perf_counter()
for i in range(timed):
    batch = batches[(i + 1) % count]
    step(batch)
    samples += int(batch["image"].shape[0])
print(json.dumps({"samples_per_s": samples / (time.perf_counter() - start)}))
