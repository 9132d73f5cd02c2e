"""Default weights: find them locally or download them once, verified, converted to safetensors.

:func:`resolve_pretrained` returns the weights file behind ``build_model(pretrained=True)`` and the
predictor's default weights. It looks, in this order, at:

1. ``$TINYPOSE_WEIGHTS``: an explicit weights file or folder (any supported format), used as is;
2. the cache, ``$TINYPOSE_HOME`` (default ``$XDG_CACHE_HOME/tinypose`` or ``~/.cache/tinypose``):
   ``<model>.safetensors`` converted earlier;
3. ``$TINYPOSE_WEIGHTS_DIR``: a folder searched for the known file names and layouts of the
   released weights (:func:`local_candidates`, with the family's upstream layouts), e.g.
   ``tinypose_128x96/model.xml``;
4. a download of the model's registered sources (``ModelSpec.weights``, in order) into
   ``<cache>/downloads/``: bounded in time and size, sha256-checked where the hash is published
   (the server's ``Content-MD5`` otherwise, then the sha256 is recorded next to the file), written
   to a temp file and renamed, then converted once to ``<cache>/<model>.safetensors``.

``TINYPOSE_OFFLINE=1`` skips step 4. With nothing found, the error lists the URLs to fetch and
where to put them. The same search serves every model family (:class:`~tinypose.weights.family.WeightFamily`);
the detector's step 1 reads ``$TINYPOSE_DETECTOR_WEIGHTS``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._version import __version__
from ..files import atomic_write
from ..vocab import WeightSource
from .convert import convert
from .errors import WeightsError
from .family import ENV_WEIGHTS, WeightFamily
from .raw import detect_format, sha256_of

__all__ = [
    "ENV_HOME",
    "ENV_OFFLINE",
    "ENV_WEIGHTS",
    "ENV_WEIGHTS_DIR",
    "cache_dir",
    "download_file",
    "local_candidates",
    "resolve_pretrained",
]

ENV_WEIGHTS_DIR = "TINYPOSE_WEIGHTS_DIR"
ENV_HOME = "TINYPOSE_HOME"
ENV_OFFLINE = "TINYPOSE_OFFLINE"

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
"""No released PP-TinyPose file is above 6 MB; anything past this is not what we asked for."""
DOWNLOAD_TIMEOUT_S = 300.0
"""Whole-file deadline of one download."""
SOCKET_TIMEOUT_S = 30.0
"""Longest wait for the connection or for the next bytes."""

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$TINYPOSE_HOME``, else ``$XDG_CACHE_HOME/tinypose``, else ``~/.cache/tinypose``."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tinypose"


def local_candidates(spec: Any, family: WeightFamily) -> list[tuple[str, WeightSource | None]]:
    """Relative paths looked for in ``$TINYPOSE_WEIGHTS_DIR``, best first, each with the registered
    source it is a copy of (for the sha256 check) or ``None``.

    Our own safetensors first, then the download layout of :func:`resolve_pretrained` (the
    registered sources' file names), then the family's upstream layouts (``family.local_names``:
    for PP-TinyPose PaddleX's ``<model>_pretrained.pdparams``/``<model>_infer/``, PaddleDetection's
    ``tinypose_128x96.pdparams``/``tinypose_128x96/`` and the OpenVINO IR copies
    ``tinypose_128x96/model.xml`` as in ../shared/weights/openvino). An ``.xml`` is taken as a copy
    of the registered OpenVINO IR source.
    """
    ir_source = next((s for s in spec.weights if s.format == "openvino"), None)
    extra = family.local_names(spec)
    candidates: list[tuple[str, WeightSource | None]] = [(f"{spec.name}.safetensors", None)]
    candidates += [(name, None) for name in extra if name.endswith(".safetensors")]
    candidates += [(source.filename, source) for source in spec.weights]
    candidates += [
        (name, ir_source if name.endswith(".xml") else None) for name in extra if not name.endswith(".safetensors")
    ]
    return candidates


def _find_local(spec: Any, family: WeightFamily, folder: Path) -> Path | None:
    for relative, source in local_candidates(spec, family):
        path = folder / relative
        if not path.exists():
            continue
        if path.is_dir():
            try:
                if detect_format(path) != "paddle_inference":
                    continue
            except WeightsError:
                continue
        if relative.endswith("model.pdiparams"):
            path = path.parent
        if source is not None and source.sha256:
            _warn_if_modified(path, source, spec)
        return path
    return None


def _warn_if_modified(path: Path, source: WeightSource, spec: Any) -> None:
    expected = {Path(source.filename).name: source.sha256}
    expected.update({Path(name).name: sha for _, sha, name in source.companions})
    for name, sha in expected.items():
        file = path.parent / name
        if sha and file.is_file() and sha256_of(file) != sha:
            warnings.warn(
                f"{file}: sha256 differs from the released {spec.name} file ({source.url}); using it anyway",
                stacklevel=3,
            )


def resolve_pretrained(
    spec: Any,
    family: WeightFamily,
    *,
    download: bool | None = None,
    progress: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Path of the default weights of ``spec``, a registry entry of ``family`` (a
    :class:`~tinypose.weights.family.PretrainedSpec`; see the module docstring for the search order).

    ``download=None`` downloads unless ``$TINYPOSE_OFFLINE`` is set to a true value. Step 1 reads
    ``family.env_var`` (``$TINYPOSE_WEIGHTS``; the person detector's is ``$TINYPOSE_DETECTOR_WEIGHTS``).
    """
    env_var = family.env_var
    searched: list[str] = []
    explicit = os.environ.get(env_var)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise WeightsError(f"{path}: no such file or folder (named by ${env_var})")
        return path
    searched.append(f"${env_var} (not set)")

    cache = cache_dir()
    cached = cache / f"{spec.name}.safetensors"
    if cached.is_file():
        return cached
    searched.append(str(cached))

    folder = os.environ.get(ENV_WEIGHTS_DIR)
    if folder:
        found = _find_local(spec, family, Path(folder).expanduser())
        if found is not None:
            return found
        looked = ", ".join(r for r, _ in local_candidates(spec, family))
        searched.append(f"${ENV_WEIGHTS_DIR}={folder} (looked for {looked})")
    else:
        searched.append(f"${ENV_WEIGHTS_DIR} (not set)")

    if download is None:
        download = os.environ.get(ENV_OFFLINE, "").lower() not in ("1", "true", "yes", "on")
    errors: list[str] = []
    for source in spec.weights:
        try:
            files = _fetch_source(source, cache / "downloads", download, progress, timeout, max_bytes)
        except WeightsError as error:
            errors.append(f"{source.url}: {error}")
            continue
        if files is None:
            continue
        try:
            return convert(files, cached, family, model_name=spec.name, force=True)
        except WeightsError as error:
            errors.append(f"{source.url}: downloaded but not usable: {error}")
    raise WeightsError(_not_found_message(spec, family, cache, searched, errors, download))


def _fetch_source(
    source: WeightSource, downloads: Path, download: bool, progress: bool, timeout: float, max_bytes: int
) -> Path | None:
    """The main file of ``source`` in ``downloads`` (downloading what is missing), or ``None`` offline."""
    files = [(source.url, source.sha256, source.filename), *source.companions]
    for url, sha256, filename in files:
        destination = downloads / filename
        if destination.is_file():
            _check_existing(destination, sha256)
            continue
        if not download:
            return None
        download_file(url, destination, sha256, progress=progress, timeout=timeout, max_bytes=max_bytes)
    return downloads / source.filename


def _check_existing(path: Path, sha256: str | None) -> None:
    recorded = path.with_name(path.name + ".sha256")
    expected = sha256 or (recorded.read_text().split()[0] if recorded.is_file() else None)
    if expected and sha256_of(path) != expected:
        raise WeightsError(f"{path}: sha256 does not match {expected} any more; delete it to download it again")


def download_file(
    url: str,
    destination: str | Path,
    sha256: str | None = None,
    *,
    progress: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    socket_timeout: float = SOCKET_TIMEOUT_S,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Download ``url`` to ``destination`` atomically (temp file + rename), verified.

    Checks the sha256 when given, otherwise the server's ``Content-MD5`` if it sends one (Baidu
    BOS does) and records the sha256 in ``<destination>.sha256`` so a later reuse is checked. Stops
    after ``timeout`` seconds or ``max_bytes`` bytes. Raises :class:`WeightsError`.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WeightsError(
            f"{destination.parent}: cannot create the download folder ({error}); set ${ENV_HOME}"
        ) from None
    deadline = time.monotonic() + timeout
    sha = hashlib.sha256()
    md5 = hashlib.md5()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": f"tinypose/{__version__}"})
    try:
        with atomic_write(destination) as temporary:
            with urllib.request.urlopen(request, timeout=min(socket_timeout, timeout)) as response:
                length = response.headers.get("Content-Length")
                expected_length = int(length) if length and length.isdigit() else None
                if expected_length is not None and expected_length > max_bytes:
                    raise WeightsError(
                        f"{url}: server announces {expected_length} bytes, more than the {max_bytes} allowed"
                    )
                content_md5 = response.headers.get("Content-MD5")
                with (
                    temporary.open("wb") as file,
                    tqdm(
                        total=expected_length, unit="B", unit_scale=True, desc=destination.name, disable=not progress
                    ) as bar,
                ):
                    while chunk := response.read1(1 << 16):
                        received += len(chunk)
                        if received > max_bytes:
                            raise WeightsError(f"{url}: more than {max_bytes} bytes, stopped")
                        if time.monotonic() > deadline:
                            raise WeightsError(f"{url}: not complete after {timeout:g} s, stopped")
                        file.write(chunk)
                        sha.update(chunk)
                        md5.update(chunk)
                        bar.update(len(chunk))
            if expected_length is not None and received != expected_length:
                raise WeightsError(f"{url}: got {received} of {expected_length} bytes (connection cut?)")
            digest = sha.hexdigest()
            if sha256 and digest != sha256:
                raise WeightsError(f"{url}: sha256 {digest} does not match the expected {sha256}")
            if not sha256 and content_md5 and _md5_header(content_md5) not in (None, md5.hexdigest()):
                raise WeightsError(f"{url}: md5 {md5.hexdigest()} does not match the server's Content-MD5")
    except WeightsError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as error:  # TimeoutError is an OSError
        reason = getattr(error, "reason", error)
        raise WeightsError(f"{url}: download failed: {reason}") from None
    if not sha256:
        destination.with_name(destination.name + ".sha256").write_text(f"{digest}  {destination.name}\n")
        log.warning(
            "%s has no published sha256; checked %s, recorded sha256 %s in %s.sha256",
            url,
            "the server's Content-MD5" if content_md5 else "size and format only",
            digest,
            destination.name,
        )
    return destination


def _md5_header(value: str) -> str | None:
    """Content-MD5 is base64 of the digest (RFC 1864); some servers send hex."""
    value = value.strip().strip('"')
    if len(value) == 32 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return None


def _not_found_message(
    spec: Any, family: WeightFamily, cache: Path, searched: Sequence[str], errors: Sequence[str], download: bool
) -> str:
    lines = [f"no weights found for {spec.name}."]
    lines.append("Looked at: " + "; ".join(searched) + ".")
    if errors:
        lines.append("Downloads failed:")
        lines += [f"  - {e}" for e in errors]
    elif not download:
        lines.append(f"Downloading is off (${ENV_OFFLINE} is set).")
    lines.append("To fix it, on a machine with internet download one of these sources:")
    for number, source in enumerate(spec.weights, 1):
        files = [(source.url, source.filename), *((url, name) for url, _, name in source.companions)]
        lines.append(f"  {number}. {source.description}:")
        lines += [f"       {url}  ->  $DIR/{name}" for url, name in files]
    lines.append(
        f"then set {ENV_WEIGHTS_DIR}=$DIR (or point {family.env_var} at the file), or convert once with "
        f"`python convert_weights.py FILE -o {cache / (spec.name + '.safetensors')} --model {spec.name}`."
    )
    return "\n".join(lines)
