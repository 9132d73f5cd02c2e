"""Runs PaddleDetection's own training step (run by make_train_reference.py in the Paddle Python).

    python paddle_train_runner.py PPDET_DIR SIZE DTYPE INPUT.npz OUTPUT.npz COCO_DEV

Builds ``Trainer(cfg, mode='train')`` from the stock ``configs/keypoint/tiny_pose/tinypose_SIZE.yml``
(dataset pointed at coco_dev, batch 8, no workers, CPU, the schedule of ``parity_setup.SCHEDULE``),
loads the initial state from INPUT.npz (Paddle names), then runs the body of ``Trainer.train``'s loop
on INPUT's fixed batches: forward in train mode, ``loss.backward()``, ``optimizer.step()``,
``optimizer.get_lr()``, ``lr.step()``, ``optimizer.clear_grad()``. DTYPE float64 builds everything
in float64 (``paddle.set_default_dtype``): the noise-floor reference. Writes the full first-step
gradients, losses, LRs, BatchNorm statistics after step 1 and the state after selected steps.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ppdet_trainer import build_trainer

ppdet, size, dtype, input_path, output_path, coco_dev = sys.argv[1:7]
inputs = np.load(input_path)
steps = int(inputs["steps"])
snapshots = [int(s) for s in inputs["snapshots"]]
trainer = build_trainer(
    ppdet, size, dtype, coco_dev, int(inputs["batch_size"]), list(inputs["milestones"]), int(inputs["warmup_steps"])
)
import paddle  # noqa: E402  (imported by build_trainer with the sources on sys.path)
from ppdet.core.workspace import load_config  # noqa: E402

assert len(trainer.loader) == int(inputs["steps_per_epoch"]), len(trainer.loader)
model, optimizer, lr = trainer.model, trainer.optimizer, trainer.lr
state = {k[len("state/") :]: v for k, v in inputs.items() if k.startswith("state/")}
model.set_state_dict({k: paddle.to_tensor(v.astype(dtype)) for k, v in state.items()})
names = [
    n for n, _ in model.named_parameters() if not n.endswith(("_mean", "_variance"))
]  # BN statistics are listed too
out = {"param_names": np.array(names)}
losses, lrs = [], []
model.train()
for step in range(steps):
    data = {
        key: paddle.to_tensor(inputs[f"batch{step}/{key}"].astype(dtype))
        for key in ("image", "target", "target_weight")
    }
    data["epoch_id"] = step // int(inputs["steps_per_epoch"])
    loss = model(data)["loss"]
    loss.backward()
    if step == 0:
        for n, p in model.named_parameters():
            if n in names:
                out[f"grad1/{n}"] = p.grad.numpy()
    optimizer.step()
    lrs.append(optimizer.get_lr())
    lr.step()
    optimizer.clear_grad()
    losses.append(float(loss.numpy()))
    if step + 1 in snapshots:
        for n, v in model.state_dict().items():
            if n.endswith(("_mean", "_variance")) and step + 1 != 1:
                continue
            out[f"state{step + 1}/{n}"] = v.numpy()
out["loss"] = np.array(losses, dtype=np.float64)
out["lr"] = np.array(lrs, dtype=np.float64)
# The stock schedule (LinearWarmup 500 from 0.001x, x0.1 at epochs 380/410) for the recipe's steps per epoch
stock = load_config(f"{ppdet}/configs/keypoint/tiny_pose/tinypose_{size}.yml")
for per_epoch in (int(x) for x in inputs["recipe_steps_per_epoch"]):
    from ppdet.core.workspace import create

    schedule = create("LearningRate")(per_epoch)
    values = []
    for _ in range(420 * per_epoch):
        values.append(schedule.get_lr())
        schedule.step()
    out[f"stock_lr/{per_epoch}"] = np.array(values, dtype=np.float64)
np.savez(output_path, **out)
print("done", size, dtype, losses[:3], lrs[:3])
