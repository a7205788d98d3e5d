"""The HTTP API against a real server process started with the command a user runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import REPO, free_port, write_digit_images
from PIL import Image

from alexnet_lightning.attribution import overlay_png
from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.inference import Predictor

LIMIT_MB = 0.05  # 51,200 bytes


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen]]:
    ckpt, _ = tiny_checkpoint
    port = free_port()
    run_dir = tmp_path_factory.mktemp("serve")
    process = subprocess.Popen(
        [sys.executable, "-m", "alexnet_lightning.serve", f"ckpt_path={ckpt}", f"port={port}",
         f"max_upload_mb={LIMIT_MB}", "log_level=warning", f"hydra.run.dir={run_dir}"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.stdout.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("server did not start within 120 s")
    yield url, process
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    return write_digit_images(tmp_path_factory.mktemp("digits"), per_class=1)


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor(load_classifier(tiny_checkpoint[0]), torch.device("cpu"))


def _post(url: str, content: bytes, name: str = "x.png", content_type: str = "image/png") -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"file": (name, content, content_type)}, timeout=60)


def test_health_and_page(server) -> None:
    url, _ = server
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["classes"] == [str(i) for i in range(10)]
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and 'type="file"' in page.text and "predict" in page.text


def test_predictions_match_predict(server, images: list[Path], predictor: Predictor) -> None:
    url, _ = server
    for path in images[:4]:
        body = _post(url, path.read_bytes()).json()
        expected = predictor.probabilities(predictor.preprocess(path)[None])[0]
        assert body["class"] == predictor.class_names[int(expected.argmax())]
        assert len(body["top_k"]) == 5
        for item in body["top_k"]:
            assert item["probability"] == pytest.approx(float(expected[int(item["class"])]), abs=1e-5)


def _noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_bad_uploads_get_clear_errors_and_the_service_survives(server, images: list[Path]) -> None:
    url, _ = server
    huge, over = _noise_png(300), _noise_png(140)  # ~270 kB (refused from its header), ~59 kB (after reading)
    assert len(huge) > 200_000 and 51_200 < len(over) < 100_000
    for content in (huge, over):
        response = _post(url, content)
        assert response.status_code == 413 and "larger than" in response.json()["detail"]
    response = _post(url, b"hello, I am text", "notes.txt", "text/plain")
    assert response.status_code == 415 and "not an image" in response.json()["detail"]
    png = images[0].read_bytes()
    response = _post(url, png[: len(png) // 2])
    assert response.status_code == 400 and "truncated" in response.json()["detail"]
    assert _post(url, b"").status_code == 400
    for _ in range(20):  # repeated bad input neither crashes nor wedges the server
        assert _post(url, b"\x89PNG\r\n\x1a\n garbage").status_code in (400, 415)
    assert httpx.get(f"{url}/health").status_code == 200
    assert _post(url, png).status_code == 200


def test_32_concurrent_requests(server, images: list[Path], predictor: Predictor) -> None:
    url, _ = server
    path = images[5]
    expected = predictor.probabilities(predictor.preprocess(path)[None])[0]
    content = path.read_bytes()

    def one(_: int) -> httpx.Response:
        return _post(url, content)

    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(one, range(64)))
    assert [r.status_code for r in responses] == [200] * 64
    for r in responses:  # batched with others or alone, the same answer
        assert r.json()["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


def _explain(url: str, content: bytes, method: str) -> httpx.Response:
    return httpx.post(f"{url}/explain?method={method}", files={"file": ("x.png", content, "image/png")}, timeout=60)


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
def test_explain_returns_the_overlay_the_library_draws(server, images: list[Path], predictor: Predictor,
                                                       method: str) -> None:  # fmt: skip
    url, _ = server
    path = images[2]
    response = _explain(url, path.read_bytes(), method)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    served = _pixels(response.content)
    expected = _pixels(overlay_png(predictor, predictor.preprocess(path), method))
    assert served.shape == (64, 64, 3)  # the image as the model saw it: the checkpoint's size, in colour
    assert np.abs(served - expected).mean() < 1.0


def test_explain_refuses_bad_requests_clearly(server) -> None:
    url, _ = server
    response = _explain(url, _noise_png(32), "lime")
    assert response.status_code == 422 and "use gradcam or occlusion" in response.json()["detail"]
    response = httpx.post(f"{url}/explain", files={"file": ("notes.txt", b"plain text", "text/plain")}, timeout=60)
    assert response.status_code == 415 and "not an image" in response.json()["detail"]


def test_explanations_amid_concurrent_predictions(server, images: list[Path], predictor: Predictor) -> None:
    """Grad-CAM hooks the shared network: batched predictions running meanwhile must neither break it nor change."""
    url, _ = server
    content = images[7].read_bytes()
    expected = float(predictor.probabilities(predictor.preprocess(images[7])[None])[0].max())
    predictions, explanations = [], []
    with ThreadPoolExecutor(32) as pool:
        for _ in range(40):  # without the lock this failed every time: some explanations answered 500
            predictions += [pool.submit(_post, url, content) for _ in range(4)]
            explanations.append(pool.submit(_explain, url, content, "gradcam"))
    assert all(f.result().status_code == 200 for f in predictions + explanations)
    assert all(f.result().json()["probability"] == pytest.approx(expected, abs=1e-5) for f in predictions)
    first = _pixels(explanations[0].result().content)
    assert all(np.array_equal(_pixels(f.result().content), first) for f in explanations)


def test_binds_to_localhost_only(server) -> None:
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    tcp = Path("/proc/net/tcp")
    if not tcp.is_file():
        pytest.skip("no /proc/net/tcp to read listening sockets from (not Linux)")
    listening = [line.split()[1] for line in tcp.read_text().splitlines()[1:] if line.split()[3] == "0A"]
    ours = [address for address in listening if int(address.split(":")[1], 16) == port]
    assert ours == ["0100007F:" + f"{port:04X}"]  # 127.0.0.1, not 0.0.0.0
