"""tinypose's training loop against PaddleDetection's own Trainer, step by step (issue 13).

The references (references/train_<size>_<init>.npz, made by references/make_train_reference.py)
hold PaddleDetection's training steps from the stock tinypose configs in float32 and float64 on fixed
batches (parity_setup.py rebuilds them here). Compared as the issue asks: first-step gradients,
BatchNorm statistics after one step, the optimizer step fed Paddle's own gradients, the LR at every
step, and the 24-step trajectory bounded by tinypose's own float32-vs-float64 noise floor. Tensors are
compared at SAMPLES seeded elements each (the fixture would be megabytes otherwise); norms are full.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tinypose.train.module import TinyPoseLitModule, WarmupPiecewise, keypoint_mse_loss

sys.path.insert(0, str(Path(__file__).parent))
from parity_setup import (
    BATCH_SIZE,
    SCHEDULE,
    SIZES,
    SNAPSHOTS,
    STEPS,
    STEPS_PER_EPOCH,
    batch_digest,
    paddle_float64_semantics,
    parity_batches,
)

REFERENCES = Path(__file__).parent / "references"
LR = {"128x96": 0.008, "256x192": 0.002}
"""base_lr of the stock configs."""
CASES = [
    pytest.param("128x96", "random"),
    pytest.param("128x96", "released", marks=pytest.mark.slow),
    pytest.param("256x192", "random", marks=pytest.mark.slow),
    pytest.param("256x192", "released", marks=pytest.mark.slow),
]


def load_reference(size: str, init: str) -> dict[str, np.ndarray]:
    path = REFERENCES / f"train_{size}_{init}.npz"
    if not path.is_file():
        pytest.skip(f"no reference {path.name} (make it with references/make_train_reference.py)")
    return dict(np.load(path))


def make_module(size: str, init: str, shared: Path, dtype: torch.dtype = torch.float32) -> TinyPoseLitModule:
    """The Lightning module as the run starts: stock LR, the reference's schedule, BatchNorm trained
    (``norm_eval=False``: PaddleDetection trains BN statistics, also from the BN-folded released weights)."""
    weights = (
        shared / "fixtures" / "paddle" / f"tinypose_{size}_random.pdparams"
        if init == "random"
        else shared / "weights" / "openvino" / f"tinypose_{size}" / "model.xml"
    )
    module = TinyPoseLitModule(SIZES[size], weights=str(weights), lr=LR[size], norm_eval=False, **SCHEDULE)
    return module.to(dtype).train()


def sampled(reference: dict, tensors: list[torch.Tensor]) -> list[np.ndarray]:
    """Each tensor's sampled elements (the reference's indices), as float64."""
    offsets, index = reference["sample_offsets"], reference["sample_index"]
    return [t.detach().reshape(-1).double().numpy()[index[offsets[i] : offsets[i + 1]]] for i, t in enumerate(tensors)]


def split(reference: dict, key: str) -> list[np.ndarray]:
    offsets = reference["sample_offsets"]
    flat = reference[key].astype(np.float64)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def params_in_paddle_order(module: TinyPoseLitModule, reference: dict) -> list[torch.nn.Parameter]:
    named = dict(module.model.named_parameters())
    return [named[str(name)] for name in reference["param_names"]]


def estimated_norm(diff: np.ndarray, numel: int) -> float:
    """The full tensor's difference norm estimated from its sampled elements (exact when all are sampled)."""
    return float(np.linalg.norm(diff) * np.sqrt(numel / max(len(diff), 1)))


@pytest.fixture(scope="module")
def shared_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir.parents[1]


def first_step_gradients(module: TinyPoseLitModule, batch: dict, dtype: torch.dtype) -> None:
    loss = keypoint_mse_loss(module(batch["image"].to(dtype)), batch["target"], batch["target_weight"])
    loss.backward()


@pytest.mark.parametrize(("size", "init"), [CASES[0], CASES[2]])
def test_reference_batches_rebuild_identically(size: str, init: str, coco_dev: Path) -> None:
    """The fixed batches Paddle trained on are rebuilt here bit for bit (augmentation is a function of
    (index, seed) only), so the fixture need not store them."""
    reference = load_reference(size, init)
    assert batch_digest(parity_batches(size, coco_dev)) == str(reference["batch_sha256"])


@pytest.mark.parametrize(("size", "init"), CASES)
def test_first_step_gradients_match_paddledetection(size: str, init: str, shared_dir: Path, coco_dev: Path) -> None:
    """Every parameter's gradient within 1e-4 of Paddle's (float64) relative to its norm (the model's
    norm where the true gradient is zero), or within 2x tinypose's own float32-vs-float64 difference;
    tinypose float64 vs Paddle float64 within 1e-4 too (measured: median 1.2e-7, max 1.1e-6 from the
    random weights; median 4.2e-6, max 2.5e-5 from the released ones)."""
    reference = load_reference(size, init)
    batch = parity_batches(size, coco_dev, steps=1)[0]
    grads = {}
    for dtype in (torch.float32, torch.float64):
        module = make_module(size, init, shared_dir, dtype)
        first_step_gradients(module, batch, dtype)
        grads[dtype] = [p.grad for p in params_in_paddle_order(module, reference)]
    ours32, ours64 = sampled(reference, grads[torch.float32]), sampled(reference, grads[torch.float64])
    paddle64 = split(reference, "grad1_f64")
    norms = reference["grad1_norm_f64"]
    model_norm = float(np.linalg.norm(norms))
    failures = []
    for i, name in enumerate(reference["param_names"]):
        numel = grads[torch.float32][i].numel()
        scale = norms[i] if norms[i] > 1e-6 * model_norm else model_norm
        error = estimated_norm(ours32[i] - paddle64[i], numel) / scale
        noise = estimated_norm(ours32[i] - ours64[i], numel) / scale
        exact = estimated_norm(ours64[i] - paddle64[i], numel) / scale
        full_norm = float(grads[torch.float64][i].norm())
        if error > max(1e-4, 2 * noise) or exact > 1e-4 or abs(full_norm - norms[i]) > 1e-4 * scale:
            failures.append(f"{name}: {error:.2e} (noise {noise:.2e}, f64 {exact:.2e})")
    assert not failures, failures[:10]


@pytest.mark.parametrize(("size", "init"), CASES)
def test_batchnorm_statistics_after_one_step(size: str, init: str, shared_dir: Path, coco_dev: Path) -> None:
    """Running mean and variance after one train-mode forward within 1e-5 of Paddle's (momentum 0.9
    convention, biased variance, epsilon 1e-5), per tensor relative to its norm: in float64 always, in
    float32 within 1e-5 or 2x tinypose's own float32-vs-float64 difference (the BN-folded released
    weights feed un-normalised activations to train-mode BN, where deep layers carry ~1e-5 float32 noise)."""
    reference = load_reference(size, init)
    batch = parity_batches(size, coco_dev, steps=1)[0]
    buffers = {}
    for dtype in (torch.float32, torch.float64):
        module = make_module(size, init, shared_dir, dtype)
        with torch.no_grad():
            module(batch["image"].to(dtype))
        buffers[dtype] = dict(module.model.named_buffers())
    flat = reference["bn1_f64"].astype(np.float64)  # stored as float32
    offsets = np.cumsum([0, *reference["bn_sizes"]])
    failures = []
    for i, name in enumerate(reference["bn_names"]):
        expected = flat[offsets[i] : offsets[i + 1]]
        ours32, ours64 = (buffers[d][str(name)].double().numpy() for d in (torch.float32, torch.float64))
        scale = np.linalg.norm(expected)
        error, exact = np.linalg.norm(ours32 - expected) / scale, np.linalg.norm(ours64 - expected) / scale
        noise = np.linalg.norm(ours32 - ours64) / scale
        if error > max(1e-5, 2 * noise) or exact > 1e-5:
            failures.append(f"{name}: {error:.2e} (noise {noise:.2e}, f64 {exact:.2e})")
    assert not failures, failures[:10]


@pytest.mark.parametrize(("size", "init"), CASES)
def test_optimizer_step_from_paddle_gradients(size: str, init: str, shared_dir: Path) -> None:
    """Fed PaddleDetection's float32 first-step gradients, tinypose's optimizer (param groups, L2,
    Adam's epsilon and bias correction, the first LR) gives Paddle's step-1 parameters: within 1e-6
    relative per tensor, or within one float32 rounding of each element. Adam and L2 act element by
    element, so the sampled elements (others get a zero gradient) are a complete check of them."""
    reference = load_reference(size, init)
    module = make_module(size, init, shared_dir)
    params = params_in_paddle_order(module, reference)
    offsets, index = reference["sample_offsets"], reference["sample_index"]
    grads = reference["grad1_f32"]
    for i, param in enumerate(params):
        grad = torch.zeros_like(param).reshape(-1)
        grad[torch.from_numpy(index[offsets[i] : offsets[i + 1]].astype(np.int64))] = torch.from_numpy(
            grads[offsets[i] : offsets[i + 1]]
        )
        param.grad = grad.reshape(param.shape)
    optimizer, _ = module.build_optimizer(STEPS_PER_EPOCH)
    optimizer.step()
    ours = sampled(reference, params)
    expected = split(reference, "params1_f32")
    failures = []
    for i, name in enumerate(reference["param_names"]):
        relative = np.linalg.norm(ours[i] - expected[i]) / max(np.linalg.norm(expected[i]), 1e-30)
        rounding = np.all(np.abs(ours[i] - expected[i]) <= np.spacing(np.abs(expected[i]).astype(np.float32)))
        if relative > 1e-6 and not rounding:
            failures.append(f"{name}: {relative:.2e}")
    assert not failures, failures[:10]


@pytest.mark.parametrize(("size", "init"), [CASES[0], CASES[2]])
def test_lr_equal_at_every_step(size: str, init: str) -> None:
    """The LR at each of the reference's steps (warmup, plateau, x0.1) and the stock schedule's (warmup
    500 from 0.001x, x0.1 / x0.01 at epochs 380 / 410) at the recipe's steps per epoch, as Paddle's."""
    reference = load_reference(size, init)
    module = TinyPoseLitModule(SIZES[size], lr=LR[size], **SCHEDULE)
    optimizer, scheduler = module.build_optimizer(STEPS_PER_EPOCH)
    ours = []
    for _ in range(STEPS):
        ours.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(ours, reference["lr_f64"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(ours, reference["lr_f32"], rtol=1e-7, atol=0)
    per_epoch = int(reference["stock_steps_per_epoch"])
    stock = WarmupPiecewise(500, 0.001, [380 * per_epoch, 410 * per_epoch], [0.1, 0.01])
    expected = reference["stock_lr"]
    ours_stock = np.array([LR[size] * stock(int(s)) for s in reference["stock_lr_steps"]])
    np.testing.assert_allclose(ours_stock, expected, rtol=1e-12, atol=0)
    assert expected[0] == pytest.approx(LR[size] * 0.001) and expected[-1] == pytest.approx(LR[size] * 0.01)


def run_trajectory(
    size: str,
    init: str,
    shared: Path,
    batches: list,
    dtype: torch.dtype,
    reference: dict,
    *,
    permute: bool = False,
    paddle_float64: bool = False,
) -> dict:
    """tinypose's loop body on the fixed batches: losses and sampled parameters after the snapshot steps.

    ``permute`` shuffles the samples inside each batch (seeded per step): the same sums in another
    order, the issue's second noise floor. ``paddle_float64`` computes as Paddle's float64 run does
    (``parity_setup.paddle_float64_semantics``)."""
    module = make_module(size, init, shared, dtype)
    optimizer, scheduler = module.build_optimizer(STEPS_PER_EPOCH)
    params = params_in_paddle_order(module, reference)
    result: dict = {"loss": [], 0: np.concatenate(sampled(reference, params))}
    semantics = paddle_float64_semantics(module) if paddle_float64 else contextlib.nullcontext()
    with semantics:
        for step, batch in enumerate(batches):
            order = torch.randperm(BATCH_SIZE, generator=torch.Generator().manual_seed(step + 1))
            image, target, weight = (
                batch[k][order] if permute else batch[k] for k in ("image", "target", "target_weight")
            )
            loss = keypoint_mse_loss(module(image.to(dtype)), target, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            result["loss"].append(float(loss.detach()))
            if step + 1 in SNAPSHOTS:
                result[step + 1] = np.concatenate(sampled(reference, params))
    return result


def trajectory_divergence(reference: dict, ours32: dict, ours64: dict, permuted32: dict) -> dict[str, np.ndarray]:
    """Per step: |loss| differences; per snapshot: whole-model parameter distances (sampled elements).

    The noise floor is tinypose float32 against the same steps in float64 and against float32 with
    each batch's samples permuted, whichever is larger at that step (the issue names both)."""
    loss32 = np.array(ours32["loss"])
    out = {
        "loss_vs_paddle64": np.abs(loss32 - reference["loss_f64"]),
        "loss_noise_f64": np.abs(loss32 - np.array(ours64["loss"])),
        "loss_noise_permuted": np.abs(loss32 - np.array(permuted32["loss"])),
        "loss64_vs_paddle64": np.abs(np.array(ours64["loss"]) - reference["loss_f64"]),
        "paddle32_vs_paddle64": np.abs(reference["loss_f32"] - reference["loss_f64"]),
    }
    out["loss_noise"] = np.maximum(out["loss_noise_f64"], out["loss_noise_permuted"])
    moved32 = {s: ours32[s] - ours32[0] for s in SNAPSHOTS}  # updates since the start (Paddle's are stored so)
    out["params_vs_paddle64"] = np.array(
        [np.linalg.norm(moved32[s] - reference[f"delta{s}_f64"].astype(np.float64)) for s in SNAPSHOTS]
    )
    out["params_noise_f64"] = np.array([np.linalg.norm(moved32[s] - (ours64[s] - ours64[0])) for s in SNAPSHOTS])
    out["params_noise_permuted"] = np.array(
        [np.linalg.norm(moved32[s] - (permuted32[s] - permuted32[0])) for s in SNAPSHOTS]
    )
    out["params_noise"] = np.maximum(out["params_noise_f64"], out["params_noise_permuted"])
    out["params_moved"] = np.array([np.linalg.norm(reference[f"delta{s}_f64"].astype(np.float64)) for s in SNAPSHOTS])
    return out


DETERMINISTIC_STEPS = 4
"""Steps before float64 rounding itself is amplified past ~1e-8 of the loss (BN-folded weights: ~1e-4
by step 5; random weights: ~1e-5 by step 9)."""


@pytest.mark.slow
@pytest.mark.parametrize(("size", "init"), CASES)
def test_float64_loop_equals_paddle_float64(size: str, init: str, shared_dir: Path, coco_dev: Path) -> None:
    """The deterministic check of the whole loop: tinypose float64, computing as Paddle's float64 run
    does (float32 BatchNorm epsilon and bilinear weights, ``paddle_float64_semantics``), gives Paddle's
    float64 loss at each of the first steps within 1e-11 relative or within 2x tinypose's own float64
    noise (the same steps with each batch permuted), and its step-1 update within 2x that noise or the
    fixture's float32 storage of it. Without the emulation 256x192 random is 2.9e-10 off at step 4,
    128x96 random 1.3e-10 at step 2; float32 noise is 1e-4 of the loss by step 5."""
    reference = load_reference(size, init)
    batches = parity_batches(size, coco_dev, steps=DETERMINISTIC_STEPS)
    ours = run_trajectory(size, init, shared_dir, batches, torch.float64, reference, paddle_float64=True)
    noise = run_trajectory(size, init, shared_dir, batches, torch.float64, reference, paddle_float64=True, permute=True)
    expected = reference["loss_f64"][:DETERMINISTIC_STEPS]
    error = np.abs(np.array(ours["loss"]) - expected)
    floor = 2 * np.maximum.accumulate(np.abs(np.array(ours["loss"]) - np.array(noise["loss"])))
    assert np.all((error <= 1e-11 * expected) | (error <= floor)), (error / expected, floor)
    moved = reference["delta1_f64"].astype(np.float64)
    storage = np.linalg.norm(0.5 * np.spacing(np.abs(reference["delta1_f64"])).astype(np.float64))
    params_error = np.linalg.norm(ours[1] - ours[0] - moved)
    assert params_error <= max(2 * np.linalg.norm(ours[1] - noise[1]), storage), (params_error, storage)


TRAJECTORY_CASES = [
    *CASES[:2],
    *CASES[2:],
]


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize(("size", "init"), TRAJECTORY_CASES)
def test_trajectory_within_twice_the_float_noise_floor(size: str, init: str, shared_dir: Path, coco_dev: Path) -> None:
    """24 steps (warmup, plateau, x0.1): tinypose float32 vs Paddle float64 no further apart (loss per
    step, parameters at the snapshots) than 2x tinypose's own float32 noise floor up to that step: the
    larger of float32 vs float64 and float32 vs float32 with each batch's samples permuted.

    By step ~9 Adam has amplified any rounding difference (float64's too) into ~1e-5 loss
    differences that differ from step to step as random draws do; a single float32-vs-float64 pair
    can fall low by chance (256x192 random, step 9: 5.9e-6, while tinypose f32 vs Paddle f64 is
    1.6e-5, tinypose f32 vs its permuted self 3.1e-5), so the floor takes both of the issue's
    measures. The loop itself is checked deterministically by test_float64_loop_equals_paddle_float64."""
    reference = load_reference(size, init)
    batches = parity_batches(size, coco_dev)
    ours32 = run_trajectory(size, init, shared_dir, batches, torch.float32, reference)
    ours64 = run_trajectory(size, init, shared_dir, batches, torch.float64, reference)
    permuted32 = run_trajectory(size, init, shared_dir, batches, torch.float32, reference, permute=True)
    d = trajectory_divergence(reference, ours32, ours64, permuted32)
    floor = 1e-7 * np.abs(reference["loss_f64"])  # float32 resolution of the loss itself
    assert np.all(d["loss_vs_paddle64"] <= 2 * np.maximum.accumulate(d["loss_noise"]) + floor), d
    assert np.all(d["params_vs_paddle64"] <= 2 * np.maximum.accumulate(d["params_noise"])), d
