"""PaddleX inference models with the real PP-TinyPose weights, for references and benchmarks.

Only ``fixtures/paddle/paddlex_infer_128x96`` exists as a PaddleX model (random weights, 128x96).
:func:`build_paddlex_folder` writes the real weights of ``weights/openvino/tinypose_{size}`` into
its ``inference.pdiparams`` (the tensors tinypose loads: fp16 IR values widened to fp32, folded
BatchNorm as BN = identity + shift), and for 256x192 first widens the program
(:func:`widen_program`). Used by ``benchmarks/bench_predict.py`` and
``tests/predict/references/make_references.py``; needs the tinypose package importable.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["PYRAMID", "build_paddlex_folder", "widen_program"]

PYRAMID = {(64, 48), (32, 24), (16, 12), (8, 6), (4, 3)}
"""Feature-map sizes (H, W) of the 128x96 program at strides 2 to 32."""


def widen_program(document: dict) -> dict[str, int]:
    """Turn the exported 128x96 PIR program into the same network for 256x192 inputs, in place.

    The export bakes feature-map sizes into the program: the channel-shuffle reshapes get their H
    and W from ``full`` constants, the head's bilinear resizes have ``out_h``/``out_w``, the argmax
    flattens ``H*W`` = 768, and every value carries a static type. All of them are doubled (the
    flatten quadrupled); weights and every other op are size independent. Returns patch counts.
    """
    ops = document["program"]["regions"][0]["blocks"][0]["ops"]

    def outputs(op: dict) -> list[dict]:
        out = op.get("O")
        return [out] if isinstance(out, dict) else (out or [])

    producer = {value["%"]: op for op in ops for value in outputs(op) if "%" in value}
    counts = {"types": 0, "constants": 0, "resizes": 0}
    for op in ops:
        for value in outputs(op):
            tensor = value.get("TT")
            if tensor and tensor.get("#") == "0.t_dtensor":
                shape = tensor["D"][1]
                if len(shape) >= 4 and tuple(shape[-2:]) in PYRAMID:
                    tensor["D"][1] = [*shape[:-2], shape[-2] * 2, shape[-1] * 2]
                    counts["types"] += 1
                elif shape == [-1, 17, 768]:
                    tensor["D"][1] = [-1, 17, 3072]
                    counts["types"] += 1
        if op["#"] == "1.data":
            next(a for a in op["A"] if a["N"] == "shape")["AT"]["D"] = [-1, 3, 256, 192]
        if op["#"] == "1.bilinear_interp":
            for attribute in op["A"]:
                if attribute["N"] in ("out_h", "out_w") and attribute["AT"]["D"] > 0:
                    attribute["AT"]["D"] *= 2
                    counts["resizes"] += 1
        if op["#"] == "1.reshape":
            target = op["O"][0]["TT"]["D"][1]
            source = producer[op["I"][1]["%"]]
            if source["#"] != "1.stack":
                continue  # a full_int_array shape: only the bias reshape [1, -1, 1, 1]
            items = [producer[i["%"]] for i in producer[source["I"][0]["%"]]["I"]]
            for position, item in enumerate(items):
                if item["#"] != "1.full" or target[position] == -1:
                    continue
                value = next(a for a in item["A"] if a["N"] == "value")["AT"]
                if value["D"] != target[position]:
                    if target[position] not in (value["D"] * 2, value["D"] * 4):
                        raise ValueError(f"reshape to {target}: constant {value['D']} at {position}")
                    value["D"] = float(target[position])
                    counts["constants"] += 1
    return counts


def build_paddlex_folder(target: Path, shared: Path, size: str = "128x96") -> Path:
    """``paddlex_infer_128x96``'s program (widened for 256x192) with the real IR weights of ``size``."""
    from tinypose.models import TinyPose, get_spec, load_state_dict
    from tinypose.weights.mapping import static_name_table
    from tinypose.weights.paddle_inference import _DEEPCOPY, read_program, write_pdiparams

    source = shared / "fixtures" / "paddle" / "paddlex_infer_128x96"
    spec = get_spec(size)
    target.mkdir(parents=True, exist_ok=True)
    document = json.loads((source / "inference.json").read_text())
    config = (source / "inference.yml").read_text()
    if size == "256x192":
        widen_program(document)
        config = config.replace("PP-TinyPose_128x96", spec.name).replace("  - 96\n  - 128\n", "  - 192\n  - 256\n")
        assert "- 192" in config
    (target / "inference.json").write_text(json.dumps(document))
    (target / "inference.yml").write_text(config)
    program = read_program(source / "inference.json")
    stripped = {name: _DEEPCOPY.sub("", name) for name in program.parameters}
    table = static_name_table(TinyPose(spec), list(stripped.values()), str(source))
    state = load_state_dict(shared / "weights" / "openvino" / f"tinypose_{size}" / "model.xml", spec.name)
    arrays = {name: state[table[plain]].numpy() for name, plain in stripped.items()}
    write_pdiparams(target / "inference.pdiparams", arrays)
    check = load_state_dict(target, spec.name)
    assert all((check[k] == v).all() for k, v in state.items()), "written weights do not read back"
    return target
