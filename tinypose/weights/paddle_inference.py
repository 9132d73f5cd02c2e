"""Read Paddle inference models (the exported program + its ``.pdiparams``) without Paddle.

Two program formats exist, both with the same parameter file:

- **PaddleX / Paddle 3 PIR**: ``inference.json`` (the program as JSON, ``base_code.magic == "pir"``)
  + ``inference.pdiparams`` (+ ``inference.yml``). Parameters are the ``builtin.parameter`` ops
  (``"#": "p"``) of the top-level block; the feed is the ``pd_op.data`` op.
- **PaddleDetection legacy**: ``model.pdmodel`` (a protobuf ``ProgramDesc``, decoded here with a
  small wire-format reader, no generated code) + ``model.pdiparams`` (+ ``infer_cfg.yml``).
  Parameters are the persistable dense-tensor variables of block 0; the feed is the ``feed`` op.

``.pdiparams`` is what Paddle's ``save_combine`` writes: the program's persistable tensors one after
the other, **sorted by name** (``paddle.static.io.save_vars`` / ``pir_io.save_vars_pir`` and
``paddle.jit.save`` all sort), each serialized as a dense tensor:

====================  =====================================================================
``uint32``            tensor version, 0
``uint64``            LoD levels ``L``; then per level ``uint64`` byte size + that many bytes
``uint32``            tensor version, 0
``int32``             size of the ``TensorDesc`` protobuf that follows
``TensorDesc``        ``data_type`` (field 1, ``VarType.Type``), ``dims`` (field 2, int64)
raw data              ``prod(dims) * itemsize`` bytes, little endian, C order
====================  =====================================================================

Names are normalized by dropping the ``_deepcopy_N`` suffix that ``paddle.jit.save`` appends to
parameters it deep-copies (``conv2d_268.w_0_deepcopy_1342`` -> ``conv2d_268.w_0``).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import WeightsError
from .raw import RawWeights

__all__ = [
    "PaddleProgram",
    "find_inference_files",
    "read_paddle_inference",
    "read_pdiparams",
    "read_program",
    "write_pdiparams",
]

# VarType.Type values of paddle/fluid/framework/framework.proto that can hold parameters.
PADDLE_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.bool_),
    1: np.dtype("<i2"),
    2: np.dtype("<i4"),
    3: np.dtype("<i8"),
    4: np.dtype("<f2"),
    5: np.dtype("<f4"),
    6: np.dtype("<f8"),
    20: np.dtype(np.uint8),
    21: np.dtype(np.int8),
    22: np.dtype("<u2"),  # bfloat16, widened to float32 on read
}
_BF16 = 22
_DENSE_TENSOR = 7  # VarType.Type of a variable that holds a (LoD) dense tensor
_PIR_DTYPES = {
    "t_bool": 0, "t_i16": 1, "t_i32": 2, "t_i64": 3, "t_f16": 4, "t_f32": 5, "t_f64": 6,
    "t_ui8": 20, "t_i8": 21, "t_bf16": 22,
}  # fmt: skip
_DEEPCOPY = re.compile(r"_deepcopy_\d+$")
_CONFIG_NAMES = ("inference.yml", "infer_cfg.yml")


@dataclass
class PaddleProgram:
    """What the reader needs from an exported program: parameter specs and the feed shape."""

    path: Path
    kind: str
    """``"pir"`` (``inference.json``) or ``"legacy"`` (``.pdmodel`` ProgramDesc)."""
    parameters: dict[str, tuple[int, tuple[int, ...]]]
    """Persistable tensor name (as stored) -> (``VarType.Type`` dtype, shape)."""
    feeds: dict[str, tuple[int, ...]]
    """Feed variable name -> shape (``-1`` for dynamic dimensions)."""
    fetches: list[str]


# --------------------------------------------------------------------------- protobuf wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: bytes) -> dict[int, list[Any]]:
    """Decode one protobuf message into ``{field_number: [raw values]}`` (ints or bytes)."""
    out: dict[int, list[Any]] = {}
    pos, end = 0, len(buf)
    value: int | bytes
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} for field {number}")
        if pos > end:
            raise ValueError(f"field {number} runs past the end of its message")
        out.setdefault(number, []).append(value)
    return out


def _repeated_ints(values: list[Any]) -> list[int]:
    """A repeated integer field, packed (bytes) or not (ints)."""
    ints: list[int] = []
    for value in values:
        if isinstance(value, bytes):
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                ints.append(_signed64(item))
        else:
            ints.append(_signed64(value))
    return ints


def _tensor_desc(buf: bytes) -> tuple[int, tuple[int, ...]]:
    """``VarType.TensorDesc``: (data_type, dims)."""
    fields = _fields(buf)
    if 1 not in fields:
        raise ValueError("TensorDesc without data_type")
    return int(fields[1][0]), tuple(_repeated_ints(fields.get(2, [])))


def _legacy_program(path: Path, data: bytes) -> PaddleProgram:
    """ProgramDesc: blocks (1) -> BlockDesc: vars (3), ops (4); VarDesc: name (1), type (2),
    persistable (3); VarType: type (1), dense_tensor (3) -> DenseTensorDesc: tensor (1);
    OpDesc: inputs (1), outputs (2), type (3); OpDesc.Var: parameter (1), arguments (2)."""
    program = _fields(data)
    if 1 not in program:
        raise ValueError("no blocks in ProgramDesc")
    block = _fields(program[1][0])
    parameters: dict[str, tuple[int, tuple[int, ...]]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for raw_var in block.get(3, []):
        var = _fields(raw_var)
        name = var[1][0].decode()
        var_type = _fields(var[2][0])
        if int(var_type[1][0]) != _DENSE_TENSOR or 3 not in var_type:
            continue
        dtype, dims = _tensor_desc(_fields(var_type[3][0])[1][0])
        shapes[name] = dims
        if var.get(3, [0])[0]:
            parameters[name] = (dtype, dims)
    feeds: dict[str, tuple[int, ...]] = {}
    fetches: list[str] = []
    for raw_op in block.get(4, []):
        op = _fields(raw_op)
        op_type = op[3][0].decode()
        if op_type not in ("feed", "fetch"):
            continue
        slots = op[2] if op_type == "feed" else op[1]
        for raw_slot in slots:
            slot = _fields(raw_slot)
            for argument in slot.get(2, []):
                name = argument.decode()
                if op_type == "feed":
                    feeds[name] = shapes.get(name, ())
                else:
                    fetches.append(name)
    return PaddleProgram(path, "legacy", parameters, feeds, fetches)


def _pir_program(path: Path, data: bytes) -> PaddleProgram:
    document = json.loads(data)
    if document.get("base_code", {}).get("magic") != "pir":
        raise ValueError("not a Paddle PIR program (base_code.magic is not 'pir')")
    ops = document["program"]["regions"][0]["blocks"][0]["ops"]
    parameters: dict[str, tuple[int, tuple[int, ...]]] = {}
    feeds: dict[str, tuple[int, ...]] = {}
    fetches: list[str] = []
    for op in ops:
        kind = op.get("#")
        if kind == "p":  # builtin.parameter: A = [..., name], O = {"TT": {"D": [dtype, shape, ...]}}
            name = next(a for a in op["A"] if isinstance(a, str))
            dtype_tag, shape = op["O"]["TT"]["D"][:2]
            dtype = _PIR_DTYPES.get(dtype_tag["#"].split(".", 1)[-1], -1)
            parameters[name] = (dtype, tuple(int(d) for d in shape))
        elif kind in ("1.data", "1.fetch"):
            attrs = {a["N"]: a["AT"]["D"] for a in op.get("A", [])}
            if kind == "1.data":
                feeds[str(attrs.get("name"))] = tuple(int(d) for d in attrs.get("shape", ()))
            else:
                fetches.append(str(attrs.get("name")))
    return PaddleProgram(path, "pir", parameters, feeds, fetches)


def read_program(path: str | Path) -> PaddleProgram:
    """Parse an exported Paddle program: PIR ``.json`` or legacy protobuf ``.pdmodel``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise WeightsError(f"{path}: cannot read the program: {error}") from None
    try:
        if path.suffix == ".json":
            return _pir_program(path, data)
        return _legacy_program(path, data)
    except (ValueError, KeyError, IndexError, TypeError, StopIteration, UnicodeDecodeError) as error:
        kind = "PIR JSON program" if path.suffix == ".json" else "ProgramDesc protobuf"
        raise WeightsError(f"{path}: not a readable Paddle {kind} (truncated or corrupt?): {error}") from None


# --------------------------------------------------------------------------- .pdiparams
def read_pdiparams(path: str | Path, names: list[str]) -> dict[str, np.ndarray]:
    """Read a ``save_combine`` file holding exactly the tensors ``names`` (stored sorted)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise WeightsError(f"{path}: cannot read: {error}") from None
    arrays: dict[str, np.ndarray] = {}
    pos = 0
    for index, name in enumerate(sorted(names)):
        where = f"{path}: tensor {index + 1}/{len(names)} ({name}) at byte {pos}"
        try:
            array, pos = _read_tensor(data, pos)
        except ValueError as error:
            raise WeightsError(f"{where}: {error} (truncated or not a .pdiparams file?)") from None
        arrays[name] = array
    if pos != len(data):
        raise WeightsError(
            f"{path}: {len(data) - pos} bytes left after the {len(names)} tensors the program names; "
            "this .pdiparams does not belong to this program"
        )
    return arrays


def _take(data: bytes, pos: int, size: int) -> bytes:
    if pos + size > len(data):
        raise ValueError(f"file ends {pos + size - len(data)} bytes early")
    return data[pos : pos + size]


def _read_tensor(data: bytes, pos: int) -> tuple[np.ndarray, int]:
    (version,) = struct.unpack("<I", _take(data, pos, 4))
    if version != 0:
        raise ValueError(f"unsupported tensor version {version}")
    (levels,) = struct.unpack("<Q", _take(data, pos + 4, 8))
    pos += 12
    if levels > 16:
        raise ValueError(f"implausible LoD level count {levels}")
    for _ in range(levels):
        (size,) = struct.unpack("<Q", _take(data, pos, 8))
        pos += 8 + len(_take(data, pos + 8, size))
    version, desc_size = struct.unpack("<Ii", _take(data, pos, 8))
    if version != 0 or not 0 < desc_size < 1 << 16:
        raise ValueError(f"bad tensor header (version {version}, desc size {desc_size})")
    dtype_code, dims = _tensor_desc(_take(data, pos + 8, desc_size))
    pos += 8 + desc_size
    if dtype_code not in PADDLE_DTYPES:
        raise ValueError(f"unsupported data type {dtype_code}")
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimension in {dims}")
    dtype = PADDLE_DTYPES[dtype_code]
    count = int(np.prod(dims, dtype=np.int64))
    raw = _take(data, pos, count * dtype.itemsize)
    array = np.frombuffer(raw, dtype=dtype, count=count).reshape(dims).copy()
    if dtype_code == _BF16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array, pos + len(raw)


def write_pdiparams(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write tensors the way Paddle's ``save_combine`` does (sorted by name, no LoD).

    Used by the tests to rebuild a ``.pdiparams`` from a ``.pdparams`` checkpoint; the output is
    byte-identical to Paddle's own export of the same weights.
    """
    codes = {dtype: code for code, dtype in PADDLE_DTYPES.items() if code != _BF16}
    path = Path(path)
    with path.open("wb") as file:
        for name in sorted(arrays):
            array = np.ascontiguousarray(arrays[name])
            code = codes.get(array.dtype.newbyteorder("<"))
            if code is None:
                raise WeightsError(f"{path}: cannot store {name} of dtype {array.dtype}")
            desc = bytes([0x08]) + _encode_varint(code)
            for dim in array.shape:
                desc += bytes([0x10]) + _encode_varint(dim)
            file.write(struct.pack("<IQIi", 0, 0, 0, len(desc)))
            file.write(desc)
            file.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return path


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --------------------------------------------------------------------------- model folders
def find_inference_files(path: str | Path) -> tuple[Path, Path]:
    """(program, params) for a folder, a program file or a ``.pdiparams`` file.

    A folder may hold PaddleX's ``inference.json`` or PaddleDetection's ``model.pdmodel`` (or any
    ``<stem>.json``/``<stem>.pdmodel``) next to ``<stem>.pdiparams``; PIR JSON wins when both exist.
    """
    path = Path(path)
    if path.is_dir():
        params = sorted(path.glob("*.pdiparams"))
        for stem in ["inference", "model", *(p.stem for p in params)]:
            for suffix in (".json", ".pdmodel"):
                program = path / f"{stem}{suffix}"
                if program.is_file() and (path / f"{stem}.pdiparams").is_file():
                    return program, path / f"{stem}.pdiparams"
        raise WeightsError(
            f"{path}: no Paddle inference model here (expected inference.json + inference.pdiparams "
            "or model.pdmodel + model.pdiparams)"
        )
    if path.suffix == ".pdiparams":
        for suffix in (".json", ".pdmodel"):
            if path.with_suffix(suffix).is_file():
                return path.with_suffix(suffix), path
        raise WeightsError(f"{path}: no {path.stem}.json or {path.stem}.pdmodel program next to it")
    params_file = path.with_suffix(".pdiparams")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if not params_file.is_file():
        raise WeightsError(f"{path}: the parameters file {params_file.name} is missing next to the program")
    return path, params_file


def _read_config(folder: Path) -> tuple[Path | None, dict[str, Any]]:
    for name in _CONFIG_NAMES:
        file = folder / name
        if file.is_file():
            try:
                config = yaml.safe_load(file.read_text())
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                raise WeightsError(f"{file}: not a readable YAML config: {error}") from None
            return file, config if isinstance(config, dict) else {}
    return None, {}


def _input_hw(program: PaddleProgram, config_path: Path | None, config: dict[str, Any]) -> tuple[int, int] | None:
    """(height, width) input size that the export declares (config ``trainsize`` and feed shape), cross-checked."""
    sizes: dict[str, tuple[int, int]] = {}
    for step in config.get("Preprocess") or []:
        if isinstance(step, dict) and step.get("type") == "TopDownEvalAffine" and step.get("trainsize"):
            width, height = step["trainsize"]
            sizes[f"{config_path} (trainsize)"] = (int(height), int(width))
    for name, shape in program.feeds.items():
        if len(shape) == 4 and shape[2] > 0 and shape[3] > 0:
            sizes[f"{program.path} (feed {name!r})"] = (int(shape[2]), int(shape[3]))
    if len(set(sizes.values())) > 1:
        raise WeightsError("inconsistent input sizes: " + ", ".join(f"{k}: {h}x{w}" for k, (h, w) in sizes.items()))
    return next(iter(sizes.values()), None)


def read_paddle_inference(path: str | Path) -> RawWeights:
    """Read a Paddle/PaddleX inference model as static-named arrays, with what its config declares
    (``Global.model_name``, ``arch``) and its input size."""
    program_path, params_path = find_inference_files(path)
    program = read_program(program_path)
    if not program.parameters:
        raise WeightsError(f"{program_path}: the program declares no parameters")
    stored = read_pdiparams(params_path, list(program.parameters))
    arrays: dict[str, np.ndarray] = {}
    for name, array in stored.items():
        _, shape = program.parameters[name]
        if tuple(array.shape) != shape:
            raise WeightsError(
                f"{params_path}: tensor {name} has shape {tuple(array.shape)} but {program_path.name} "
                f"declares {shape}; the parameters file does not belong to this program"
            )
        arrays[_DEEPCOPY.sub("", name)] = array
    config_path, config = _read_config(program_path.parent)
    model_name = (config.get("Global") or {}).get("model_name")
    architecture = config.get("arch")
    return RawWeights(
        params_path,
        "paddle_inference",
        arrays,
        "static",
        model_name=None if model_name is None else str(model_name),
        input_hw=_input_hw(program, config_path, config),
        architecture=None if architecture is None else str(architecture),
        declared_in=config_path,
    )
