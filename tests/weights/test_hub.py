"""Default-weight resolution: env vars, cache, local folder layouts, and the download path, tested
against a loopback HTTP server (never the internet)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import tinypose
from tinypose.models import POSE_WEIGHTS, WeightSource, get_spec, load_state_dict
from tinypose.weights import WeightsError
from tinypose.weights.hub import ENV_HOME, ENV_OFFLINE, ENV_WEIGHTS, ENV_WEIGHTS_DIR, resolve_pretrained

SPEC = get_spec("PP-TinyPose_128x96")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, dict] = {}
        self.hits: dict[str, int] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        time.sleep(route.get("delay", 0.0))
        body: bytes = route["body"]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        for key, value in route.get("headers", {}).items():
            self.send_header(key, value)
        self.end_headers()
        chunk = route.get("drip")
        try:
            if chunk:
                for start in range(0, len(body), chunk):
                    self.wfile.write(body[start : start + chunk])
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path) -> Path:
    """Every test gets its own empty cache and none of the user's weight settings."""
    for name in (ENV_WEIGHTS, ENV_WEIGHTS_DIR, ENV_OFFLINE):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv(ENV_HOME, str(home))
    return home


def _served(server: _Server, path: str, body: bytes, **route) -> str:
    server.routes[path] = {"body": body, **route}
    server.hits.pop(path, None)
    return server.url(path)


def _pdparams_source(url: str, sha256: str | None) -> WeightSource:
    return WeightSource(url, sha256, f"{SPEC.name}_pretrained.pdparams", "pdparams", "test checkpoint")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_is_verified_converted_once_and_cached(server, clean_env, random_pdparams, random_model) -> None:
    body = random_pdparams.read_bytes()
    url = _served(server, "/ok.pdparams", body)
    spec = replace(SPEC, weights=(_pdparams_source(url, _sha(body)),))
    path = resolve_pretrained(spec, POSE_WEIGHTS, progress=False)
    assert path == clean_env / f"{SPEC.name}.safetensors"
    with safe_open(str(path), framework="pt") as file:
        assert file.metadata()["source_sha256"] == _sha(body)
    state = load_state_dict(path, SPEC.name)
    assert all(torch.equal(state[k], v) for k, v in random_model.state_dict().items())
    assert resolve_pretrained(spec, POSE_WEIGHTS, progress=False) == path
    assert server.hits["/ok.pdparams"] == 1  # the second call used the cache
    assert not list((clean_env / "downloads").glob(".*part"))


def test_sha256_mismatch_keeps_nothing(server, clean_env, random_pdparams) -> None:
    url = _served(server, "/tampered.pdparams", random_pdparams.read_bytes())
    spec = replace(SPEC, weights=(_pdparams_source(url, "0" * 64),))
    with pytest.raises(WeightsError, match=r"tampered.pdparams: sha256 [0-9a-f]{64} does not match the expected 0{64}"):
        resolve_pretrained(spec, POSE_WEIGHTS, progress=False)
    assert list((clean_env / "downloads").iterdir()) == []
    assert not (clean_env / f"{SPEC.name}.safetensors").exists()


def test_unresponsive_server_times_out(server, clean_env) -> None:
    url = _served(server, "/stuck.pdparams", b"x" * 10, delay=3.0)
    spec = replace(SPEC, weights=(_pdparams_source(url, None),))
    start = time.monotonic()
    with pytest.raises(WeightsError, match=r"stuck.pdparams: download failed: .*timed out"):
        resolve_pretrained(spec, POSE_WEIGHTS, progress=False, timeout=0.5)
    assert time.monotonic() - start < 2.5


def test_slow_download_hits_the_deadline(server, clean_env) -> None:
    url = _served(server, "/slow.pdparams", b"x" * 4000, drip=100)
    spec = replace(SPEC, weights=(_pdparams_source(url, None),))
    with pytest.raises(WeightsError, match=r"slow.pdparams: not complete after 0.5 s, stopped"):
        resolve_pretrained(spec, POSE_WEIGHTS, progress=False, timeout=0.5)
    assert list((clean_env / "downloads").iterdir()) == []


def test_oversized_download_is_stopped(server, clean_env) -> None:
    url = _served(server, "/huge.pdparams", b"x" * 5000)
    spec = replace(SPEC, weights=(_pdparams_source(url, None),))
    with pytest.raises(WeightsError, match=r"huge.pdparams: server announces 5000 bytes, more than the 1000 allowed"):
        resolve_pretrained(spec, POSE_WEIGHTS, progress=False, max_bytes=1000)


def test_unknown_sha_checks_content_md5_and_records_sha(server, clean_env, random_pdparams, caplog) -> None:
    """The PaddleX checkpoints have no published sha256: Baidu BOS sends Content-MD5 (base64)."""
    body = random_pdparams.read_bytes()
    good_md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    url = _served(server, "/bos.pdparams", body, headers={"Content-MD5": good_md5})
    spec = replace(SPEC, weights=(_pdparams_source(url, None),))
    resolve_pretrained(spec, POSE_WEIGHTS, progress=False)
    recorded = clean_env / "downloads" / f"{SPEC.name}_pretrained.pdparams.sha256"
    assert recorded.read_text().split()[0] == _sha(body)
    assert "no published sha256" in caplog.text and _sha(body) in caplog.text

    (clean_env / f"{SPEC.name}.safetensors").unlink()  # a changed download on disk is caught on reuse
    (clean_env / "downloads" / f"{SPEC.name}_pretrained.pdparams").write_bytes(body[:-1] + b"\0")
    with pytest.raises(WeightsError, match=r"pdparams: sha256 does not match [0-9a-f]{64} any more"):
        resolve_pretrained(spec, POSE_WEIGHTS, progress=False, download=False)


def test_wrong_content_md5_is_refused(server, clean_env, random_pdparams) -> None:
    bad_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    url = _served(server, "/badmd5.pdparams", random_pdparams.read_bytes(), headers={"Content-MD5": bad_md5})
    spec = replace(SPEC, weights=(_pdparams_source(url, None),))
    with pytest.raises(
        WeightsError, match=r"badmd5.pdparams: md5 [0-9a-f]{32} does not match the server's Content-MD5"
    ):
        resolve_pretrained(spec, POSE_WEIGHTS, progress=False)


def test_falls_back_to_the_next_source(server, clean_env, random_pdparams) -> None:
    body = random_pdparams.read_bytes()
    missing = _pdparams_source(server.url("/gone.pdparams"), None)
    mirror = replace(
        _pdparams_source(_served(server, "/mirror.pdparams", body), _sha(body)), filename="mirror.pdparams"
    )
    path = resolve_pretrained(replace(SPEC, weights=(missing, mirror)), POSE_WEIGHTS, progress=False)
    assert path.name == f"{SPEC.name}.safetensors" and server.hits["/gone.pdparams"] == 1


def test_openvino_ir_download_with_registered_hashes(server, clean_env, openvino_dir) -> None:
    """The registry's IR source (xml + bin companion, real sha256) served locally."""
    registered = next(s for s in SPEC.weights if s.format == "openvino")
    xml = (openvino_dir / "tinypose_128x96" / "model.xml").read_bytes()
    binary = (openvino_dir / "tinypose_128x96" / "model.bin").read_bytes()
    ((_, bin_sha, bin_name),) = registered.companions
    source = replace(
        registered,
        url=_served(server, "/ir/model.xml", xml),
        companions=((_served(server, "/ir/model.bin", binary), bin_sha, bin_name),),
    )
    path = resolve_pretrained(replace(SPEC, weights=(source,)), POSE_WEIGHTS, progress=False)
    converted = load_state_dict(path, SPEC.name)
    direct = load_state_dict(openvino_dir / "tinypose_128x96" / "model.xml", SPEC.name)
    assert all(torch.equal(converted[k], direct[k]) for k in direct)


def test_offline_error_says_what_to_download(monkeypatch, server) -> None:
    monkeypatch.setenv(ENV_OFFLINE, "1")
    with pytest.raises(WeightsError) as error:
        tinypose.build_model("PP-TinyPose_256x192", pretrained=True)
    message = str(error.value)
    spec = get_spec("PP-TinyPose_256x192")
    for source in spec.weights:
        assert source.url in message
        assert all(url in message for url, _, _ in source.companions)
    assert ENV_WEIGHTS_DIR in message and ENV_WEIGHTS in message and "convert_weights.py" in message


def test_explicit_file_wins(monkeypatch, clean_env, random_pdparams) -> None:
    (clean_env / f"{SPEC.name}.safetensors").parent.mkdir(parents=True)
    (clean_env / f"{SPEC.name}.safetensors").write_bytes(b"not used")
    monkeypatch.setenv(ENV_WEIGHTS, str(random_pdparams))
    assert resolve_pretrained(SPEC, POSE_WEIGHTS) == random_pdparams
    monkeypatch.setenv(ENV_WEIGHTS, str(random_pdparams.with_name("absent.pdparams")))
    with pytest.raises(WeightsError, match=rf"absent.pdparams: no such file or folder \(named by \${ENV_WEIGHTS}\)"):
        resolve_pretrained(SPEC, POSE_WEIGHTS)


def test_cache_comes_before_the_local_folder(monkeypatch, clean_env, tmp_path, random_pdparams) -> None:
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / f"{SPEC.name}_pretrained.pdparams").write_bytes(random_pdparams.read_bytes())
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(folder))
    assert resolve_pretrained(SPEC, POSE_WEIGHTS) == folder / f"{SPEC.name}_pretrained.pdparams"
    model = tinypose.build_model(SPEC.name, pretrained=True)  # loads the local PaddleX checkpoint
    assert isinstance(model, tinypose.TinyPose)
    cached = clean_env / f"{SPEC.name}.safetensors"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"converted earlier")
    assert resolve_pretrained(SPEC, POSE_WEIGHTS) == cached


@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_shared_openvino_layout_is_found(monkeypatch, openvino_dir, size) -> None:
    """The offline demo: TINYPOSE_WEIGHTS_DIR=../shared/weights/openvino python infer.py"""
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(openvino_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the registered sha256 match these files
        path = resolve_pretrained(get_spec(size), POSE_WEIGHTS)
    assert path == openvino_dir / f"tinypose_{size}" / "model.xml"


def test_modified_local_copy_is_flagged(monkeypatch, tmp_path, openvino_dir) -> None:
    folder = tmp_path / "weights" / "tinypose_128x96"
    folder.mkdir(parents=True)
    (folder / "model.xml").write_bytes((openvino_dir / "tinypose_128x96" / "model.xml").read_bytes())
    (folder / "model.bin").write_bytes(b"\0" * 16)
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(tmp_path / "weights"))
    with pytest.warns(UserWarning, match=r"model.bin: sha256 differs from the released PP-TinyPose_128x96 file"):
        assert resolve_pretrained(SPEC, POSE_WEIGHTS) == folder / "model.xml"
