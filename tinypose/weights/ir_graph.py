"""OpenVINO IR (``model.xml`` + ``model.bin``) without OpenVINO: a generic graph reader.

:func:`read_ir_graph` returns every layer of an IR (v10/v11) with its type, ``<data>`` attributes,
``rt_info`` (including ``fused_names``, the source framework's tensor and parameter names that the
converter fused into the layer), input/output ports with shapes, the edges, and the value of every
``Const`` decoded from the ``.bin`` with its element type. Helpers follow edges
(:meth:`IRGraph.producer`, :meth:`IRGraph.consumers`) and read a layer input's constant through
decompression ``Convert`` layers (:meth:`IRGraph.constant_input`, fp16 -> fp32). It knows nothing
about any model: the PP-TinyPose naming (:mod:`tinypose.weights.openvino_ir`) and the PP-PicoDet
execution-order matching (:mod:`tinypose.detect.weights`) both read its output.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import WeightsError

__all__ = ["ELEMENT_TYPES", "IREdge", "IRGraph", "IRLayer", "IRPort", "read_ir_graph"]

ELEMENT_TYPES: dict[str, np.dtype] = {
    "f16": np.dtype("<f2"),
    "f32": np.dtype("<f4"),
    "f64": np.dtype("<f8"),
    "bf16": np.dtype("<u2"),  # widened to float32 on read
    "i8": np.dtype(np.int8),
    "i16": np.dtype("<i2"),
    "i32": np.dtype("<i4"),
    "i64": np.dtype("<i8"),
    "u8": np.dtype(np.uint8),
    "u16": np.dtype("<u2"),
    "u32": np.dtype("<u4"),
    "u64": np.dtype("<u8"),
    "boolean": np.dtype(np.bool_),
}
"""IR ``element_type`` -> numpy dtype of the bytes in the ``.bin``."""


@dataclass(frozen=True)
class IRPort:
    """One input or output of a layer; ``shape`` has -1 for dynamic dimensions."""

    id: int
    precision: str | None
    shape: tuple[int, ...]
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class IREdge:
    """``from_layer:from_port -> to_layer:to_port``."""

    from_layer: int
    from_port: int
    to_layer: int
    to_port: int


@dataclass
class IRLayer:
    """One ``<layer>``; ``value`` holds a ``Const``'s data with its stored element type."""

    id: int
    name: str
    type: str
    version: str
    attributes: dict[str, str]
    rt_info: dict[str, str]
    inputs: list[IRPort]
    outputs: list[IRPort]
    value: np.ndarray | None = None

    @property
    def fused_names(self) -> tuple[str, ...]:
        """Source-framework names fused into this layer (``rt_info`` ``fused_names``)."""
        text = self.rt_info.get("fused_names", "")
        return tuple(name.strip() for name in text.split(",") if name.strip())

    def input(self, port: int) -> IRPort:
        """The input port with id ``port``."""
        return next(p for p in self.inputs if p.id == port)


@dataclass
class IRGraph:
    """A parsed IR: layers by id, edges, and ``<meta_data>`` / model ``<rt_info>`` as flat dicts."""

    xml_path: Path
    bin_path: Path | None
    name: str
    version: int
    layers: dict[int, IRLayer]
    edges: list[IREdge]
    meta_data: dict[str, str] = field(default_factory=dict)
    _producers: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict, repr=False)
    _consumers: dict[int, list[IREdge]] = field(default_factory=lambda: defaultdict(list), repr=False)

    def __post_init__(self) -> None:
        for edge in self.edges:
            self._producers[(edge.to_layer, edge.to_port)] = (edge.from_layer, edge.from_port)
            self._consumers[edge.from_layer].append(edge)

    def by_type(self, *types: str) -> list[IRLayer]:
        """Layers of the given types, in id order."""
        return [layer for layer in self.layers.values() if layer.type in types]

    def by_name(self, name: str) -> IRLayer:
        """The layer called ``name``."""
        for layer in self.layers.values():
            if layer.name == name:
                return layer
        raise KeyError(f"{self.xml_path}: no layer named {name!r}")

    @property
    def parameters(self) -> list[IRLayer]:
        """Graph inputs (``Parameter`` layers)."""
        return self.by_type("Parameter")

    @property
    def input_hw(self) -> tuple[int, int] | None:
        """(height, width) of the one 4-D image input, when the graph has exactly one with a static size."""
        inputs = [port for layer in self.parameters for port in layer.outputs]
        if len(inputs) == 1 and len(inputs[0].shape) == 4 and min(inputs[0].shape[2:]) > 0:
            return inputs[0].shape[2], inputs[0].shape[3]
        return None

    @property
    def results(self) -> list[IRLayer]:
        """Graph outputs (``Result`` layers)."""
        return self.by_type("Result")

    def producer(self, layer_id: int, port: int) -> tuple[IRLayer, int]:
        """(layer, output port) feeding input ``port`` of layer ``layer_id``."""
        source, source_port = self._producers[(layer_id, port)]
        return self.layers[source], source_port

    def consumers(self, layer_id: int, port: int | None = None) -> list[tuple[IRLayer, int]]:
        """(layer, input port) pairs reading layer ``layer_id`` (optionally one output port)."""
        return [
            (self.layers[e.to_layer], e.to_port)
            for e in self._consumers.get(layer_id, [])
            if port is None or e.from_port == port
        ]

    def constant_input(self, layer_id: int, port: int) -> np.ndarray | None:
        """Value of input ``port`` if it is a ``Const`` (through ``Convert`` layers, which are
        applied: fp16 weights with a decompression ``Convert`` come back as float32)."""
        layer, _ = self.producer(layer_id, port)
        converts: list[str] = []
        while layer.type == "Convert":
            converts.append(layer.attributes["destination_type"])
            layer, _ = self.producer(layer.id, layer.inputs[0].id)
        if layer.type != "Const" or layer.value is None:
            return None
        value = layer.value
        for destination in reversed(converts):
            value = value.astype(_numpy_type(destination, self.xml_path))
        return value

    def constant_source(self, layer_id: int, port: int) -> IRLayer | None:
        """The ``Const`` layer behind input ``port`` (skipping ``Convert`` layers), if any."""
        layer, _ = self.producer(layer_id, port)
        while layer.type == "Convert":
            layer, _ = self.producer(layer.id, layer.inputs[0].id)
        return layer if layer.type == "Const" else None


def _numpy_type(element_type: str, path: Path) -> np.dtype:
    if element_type == "bf16":
        return np.dtype(np.float32)
    try:
        return ELEMENT_TYPES[element_type]
    except KeyError:
        raise WeightsError(f"{path}: unsupported element type {element_type!r}") from None


def _ports(element: ElementTree.Element | None) -> list[IRPort]:
    if element is None:
        return []
    ports = []
    for port in element.findall("port"):
        dims = tuple(-1 if d.text in (None, "?", "-1") else int(d.text) for d in port.findall("dim"))
        names = tuple(n.strip() for n in port.get("names", "").split(",") if n.strip())
        ports.append(IRPort(int(port.get("id", "0")), port.get("precision"), dims, names))
    return ports


def _rt_info(element: ElementTree.Element | None) -> dict[str, str]:
    if element is None:
        return {}
    info = {}
    for attribute in element.findall("attribute"):
        name = attribute.get("name")
        if name:
            info[name] = attribute.get("value", "")
    return info


def _flat(element: ElementTree.Element | None, prefix: str = "") -> dict[str, str]:
    if element is None:
        return {}
    out = {}
    for child in element:
        key = f"{prefix}{child.tag}"
        if "value" in child.attrib:
            out[key] = child.attrib["value"]
        out.update(_flat(child, key + "."))
    return out


def read_ir_graph(xml_path: str | Path, bin_path: str | Path | None = None) -> IRGraph:
    """Parse an OpenVINO IR ``.xml`` and decode its constants from the ``.bin`` next to it.

    ``bin_path`` defaults to the ``.xml`` path with a ``.bin`` suffix; a missing ``.bin`` is an
    error only when the graph has constants. Raises :class:`WeightsError` for unreadable XML, a
    ``.bin`` too short for a constant, or a constant whose byte size does not match its shape.
    """
    xml_path = Path(xml_path)
    if xml_path.is_dir():
        candidates = sorted(xml_path.glob("*.xml"))
        if len(candidates) != 1:
            raise WeightsError(f"{xml_path}: expected exactly one .xml IR in this folder, found {len(candidates)}")
        xml_path = candidates[0]
    try:
        text = xml_path.read_bytes()
    except OSError as error:
        raise WeightsError(f"{xml_path}: cannot read: {error}") from None
    if b"<!DOCTYPE" in text[:4096] or b"<!ENTITY" in text[:4096]:
        raise WeightsError(f"{xml_path}: refusing an IR with a DOCTYPE/ENTITY declaration (not written by OpenVINO)")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise WeightsError(f"{xml_path}: not a readable OpenVINO IR XML (truncated or corrupt?): {error}") from None
    if root.tag != "net" or root.find("layers") is None:
        raise WeightsError(f"{xml_path}: not an OpenVINO IR (no <net><layers>)")

    bin_path = Path(bin_path) if bin_path is not None else xml_path.with_suffix(".bin")
    blob: bytes | None = None
    layers: dict[int, IRLayer] = {}
    for element in root.find("layers"):  # type: ignore[union-attr]
        data = element.find("data")
        attributes = dict(data.attrib) if data is not None else {}
        layer = IRLayer(
            id=int(element.get("id", "-1")),
            name=element.get("name", ""),
            type=element.get("type", ""),
            version=element.get("version", ""),
            attributes=attributes,
            rt_info=_rt_info(element.find("rt_info")),
            inputs=_ports(element.find("input")),
            outputs=_ports(element.find("output")),
        )
        if layer.type == "Const":
            if blob is None:
                try:
                    blob = bin_path.read_bytes()
                except OSError as error:
                    raise WeightsError(f"{bin_path}: cannot read the IR weights: {error}") from None
            layer.value = _decode_const(layer, blob, bin_path)
        layers[layer.id] = layer
    edges_element = root.find("edges")
    edges = [
        IREdge(
            int(e.attrib["from-layer"]), int(e.attrib["from-port"]), int(e.attrib["to-layer"]), int(e.attrib["to-port"])
        )
        for e in (edges_element if edges_element is not None else [])
    ]
    meta = _flat(root.find("meta_data"))
    meta.update(_flat(root.find("rt_info")))
    return IRGraph(
        xml_path,
        bin_path if blob is not None else None,
        root.get("name", ""),
        int(root.get("version", "0")),
        layers,
        edges,
        meta,
    )


def _decode_const(layer: IRLayer, blob: bytes, bin_path: Path) -> np.ndarray:
    attributes = layer.attributes
    element_type = attributes.get("element_type", "")
    if element_type not in ELEMENT_TYPES:
        raise WeightsError(f"{bin_path}: constant {layer.name} has unsupported element type {element_type!r}")
    dtype = ELEMENT_TYPES[element_type]
    shape = tuple(int(d) for d in attributes.get("shape", "").replace(" ", "").split(",") if d)
    offset, size = int(attributes.get("offset", "0")), int(attributes.get("size", "0"))
    count = int(np.prod(shape, dtype=np.int64))
    if size != count * dtype.itemsize:
        raise WeightsError(
            f"{bin_path}: constant {layer.name} declares {size} bytes for shape {shape} of {element_type}"
        )
    if offset < 0 or offset + size > len(blob):
        raise WeightsError(
            f"{bin_path}: constant {layer.name} needs bytes {offset}..{offset + size} but the file has "
            f"{len(blob)} (truncated .bin, or it belongs to another .xml?)"
        )
    value = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
    if element_type == "bf16":
        value = (value.astype(np.uint32) << 16).view(np.float32)
    return value
