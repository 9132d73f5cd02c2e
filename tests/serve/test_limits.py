"""Every limit of the service on a real server: body size, pixel count before decoding, bad files,
URL scheme/address/redirect/time/size guards, the bounded queue (503 + Retry-After), graceful shutdown."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tinypose.serve.core import Limits, RequestError, inspect_image
from tinypose.serve.fetch import AddressPolicy, fetch_image

from .conftest import SERVER_OPTIONS, Client, ImageHost, ServeProcess, b64
from .test_contract import INFER, assert_error


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real 1-bit PNG of ``width`` x ``height`` black pixels (~110 KB for 900 Mpx)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 1000) for _ in range(height // 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_header_check_refuses_before_decoding() -> None:
    bomb = png_bomb()
    assert len(bomb) < 200_000
    with pytest.raises(RequestError) as refused:
        inspect_image(bomb, 4_000_000)
    assert refused.value.status == 413 and "900,000,000 pixels" in refused.value.message
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, "PNG")
    assert inspect_image(buffer.getvalue(), 4_000_000) == ("PNG", 40, 30)
    with pytest.raises(RequestError, match="not an image file"):
        inspect_image(b"GIF89a? no", 100)


def test_address_policy() -> None:
    policy = AddressPolicy(())
    for address in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1"):
        assert policy.refusal(address) is not None, address
    for address in ("::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1", "224.0.0.1", "fd00::1"):
        assert policy.refusal(address) is not None, address
    assert policy.refusal("93.184.216.34") is None and policy.refusal("2606:4700::1111") is None
    allowed = AddressPolicy(("10.0.0.0/8", "127.0.0.1", "images.internal"))
    assert allowed.refusal("10.9.9.9") is None and allowed.refusal("127.0.0.1") is None
    assert allowed.refusal("127.0.0.2") is not None
    assert allowed.host_allowed("Images.Internal.")


def test_host_names_are_resolved_and_checked() -> None:
    """``localhost`` resolves to loopback addresses only: refused without an allow-list entry."""
    with pytest.raises(RequestError, match="resolves to .* loopback address: refused"):
        asyncio.run(fetch_image("http://localhost:9/x.jpg", Limits()))


def test_body_limit(client: Client) -> None:
    big = json.dumps({"image": "A" * (3 * 1024 * 1024 + 10)}).encode()
    status, _, body = client.post(INFER, big)
    assert_error(status, body, 413, "over the limit")
    # a chunked body (no Content-Length) is cut off as it streams in
    connection = http.client.HTTPConnection("127.0.0.1", client.port, timeout=60)
    connection.putrequest("POST", INFER)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    piece = b"A" * (256 * 1024)
    try:
        for part in [b'{"image": "'] + [piece] * 16:
            connection.send(b"%x\r\n%s\r\n" % (len(part), part))
        connection.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server may answer and close before the whole body is sent
    response = connection.getresponse()
    assert_error(response.status, json.loads(response.read()), 413, "over the limit")
    connection.close()


def test_bad_images(client: Client, photos: list[Path]) -> None:
    photo = photos[0].read_bytes()
    cases = [
        ({"image": "not base64 at all!"}, 400, "neither an http(s) URL nor valid base64"),
        ({"image": b64(b"just some text, no image")}, 400, "not an image file"),
        ({"image": b64(photo[: len(photo) // 2])}, 400, "could not be decoded"),
        ({"image": b64(png_bomb())}, 413, "900,000,000 pixels"),
        ({"image": ""}, 400, "empty"),
        ({"image": "ftp://example.com/a.jpg"}, 400, "use http or https"),
        ({"image": "file:///etc/passwd"}, 400, "use http or https"),
    ]
    for payload, status, fragment in cases:
        got, _, body = client.post(INFER, payload)
        assert_error(got, body, status, fragment)


def test_image_urls(client: Client, image_host: ImageHost, photos: list[Path]) -> None:
    status, _, direct = client.post(INFER, {"image": b64(photos[-1].read_bytes()), "visualize": False})
    assert status == 200
    status, _, fetched = client.post(INFER, {"image": image_host.url("/photo.jpg"), "visualize": False})
    assert status == 200 and fetched["result"] == direct["result"]
    status, _, redirected = client.post(INFER, {"image": image_host.url("/redirect-ok"), "visualize": False})
    assert status == 200 and redirected["result"] == direct["result"]
    refused = f"http://127.0.0.2:{image_host.port}/photo.jpg"
    cases = [
        (refused, 400, "127.0.0.2 is a loopback address: refused"),
        (image_host.url("/redirect-refused"), 400, "127.0.0.2 is a loopback address: refused"),
        (f"http://169.254.169.254:{image_host.port}/latest", 400, "link-local address: refused"),
        (image_host.url("/big"), 413, "more than the limit"),
        (image_host.url("/page.html"), 400, "not an image file"),
        (image_host.url("/missing.jpg"), 400, "HTTP 404"),
    ]
    for url, code, fragment in cases:
        status, _, body = client.post(INFER, {"image": url})
        assert_error(status, body, code, fragment)
    start = time.monotonic()
    status, _, body = client.post(INFER, {"image": image_host.url("/hang")})
    assert_error(status, body, 400, "did not answer within 3 s")
    assert time.monotonic() - start < 30


def test_full_queue_answers_503_with_retry_after(client: Client, image_host: ImageHost) -> None:
    """16 requests inside (fetching a URL that holds its answer) fill the queue: one more is refused at once.

    The probe is sent only once the image host holds all 16 fetches, so the requests are inside the
    server whatever the machine's load. A held fetch gives up after the server's url_timeout (3 s):
    each of the 16 clients sends its held request again until the probe is answered, so that a slow
    start (a loaded machine) cannot leave the queue short for good.
    """
    image_host.release.clear()
    stop = threading.Event()

    def hold() -> list[int]:
        statuses = []
        while not stop.is_set():
            statuses.append(client.post(INFER, {"image": image_host.url("/held.jpg"), "visualize": False})[0])
        return statuses

    refused = None
    try:
        with ThreadPoolExecutor(16) as pool:
            held = [pool.submit(hold) for _ in range(16)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and refused is None:
                if image_host.held < 16:
                    time.sleep(0.02)
                    continue
                status, headers, body = client.post(INFER, {"image": "aGVsbG8="})
                if status == 503:
                    refused = (status, headers, body)
                else:  # a held fetch had just timed out (the host may still count it): look again shortly
                    time.sleep(0.05)
            stop.set()
            image_host.release.set()
            # held ones finish: answered, or 400 when a hold outlasted url_timeout
            assert all(code in (200, 400) for future in held for code in future.result())
    finally:
        stop.set()
        image_host.release.set()
    assert refused is not None, "the queue never filled"
    assert_error(refused[0], refused[2], 503, "busy")
    assert refused[1]["retry-after"] == "1"
    status, _, _ = client.get("/health")
    assert status == 200


@pytest.mark.slow
def test_graceful_shutdown_finishes_requests_inside(openvino_dir: Path, tmp_path: Path, photos: list[Path]) -> None:
    """SIGTERM while requests are inside: each gets its answer, new ones get 503, exit code 0."""
    host = ImageHost(photos[-1].read_bytes())
    process = ServeProcess(openvino_dir, SERVER_OPTIONS, tmp_path / "serve.log")
    try:
        client = process.client
        with ThreadPoolExecutor(6) as pool:
            inside = [
                pool.submit(client.post, INFER, {"image": host.url("/slow.jpg"), "visualize": False}) for _ in range(4)
            ]
            inside += [pool.submit(client.post, INFER, {"image": b64(p.read_bytes())}) for p in photos[:2]]
            time.sleep(1.0)
            stopper = threading.Thread(target=process.stop)
            stopper.start()
            time.sleep(0.5)
            try:
                status, _, body = client.post(INFER, {"image": b64(photos[0].read_bytes())})
                assert_error(status, body, 503, "shutting down")
            except OSError:
                pass  # or the listening socket is already closed
            answers = [future.result() for future in inside]
            stopper.join(60)
        assert [status for status, _, _ in answers] == [200] * 6, [a[2] for a in answers if a[0] != 200]
        assert process.process.returncode == 0, process.log_path.read_text()[-2000:]
    finally:
        process.stop()
        host.close()


def test_no_internal_details_in_errors(client: Client) -> None:
    status, _, body = client.post("/keypoint-detection", {"image": b64(b"x" * 10), "boxes": [["a"]]})
    assert_error(status, body, 422)
    status, _, body = client.get("/does-not-exist")
    assert_error(status, body, 404, "Not Found")
    status, _, body = client.request("GET", INFER)
    assert_error(status, body, 405, "Method Not Allowed")
