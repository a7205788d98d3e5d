"""The page in a real headless Chromium: pick an image, see the top class, its bars and its heatmaps."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import free_port, write_digit_images

from alexnet_lightning.checkpoint import load_classifier
from alexnet_lightning.inference import Predictor
from alexnet_lightning.serve import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make install adds it")
if not shutil.which(CHROMIUM):
    pytest.skip(
        f"{CHROMIUM} is missing: `apt-get install chromium` (make test tries it as root)", allow_module_level=True
    )


def test_page_shows_the_top_class(tiny_checkpoint, tmp_path: Path) -> None:
    import uvicorn

    predictor = Predictor(load_classifier(tiny_checkpoint[0]), torch.device("cpu"))
    image = write_digit_images(tmp_path, per_class=1)[3]
    expected = predictor.top_k(predictor.probabilities(predictor.preprocess(image)[None])[0], 5)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(predictor, 2**20, 5, 8), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#top-class", timeout=30_000)
            assert page.inner_text("#top-class") == expected[0][0]
            assert page.locator("#bars .row").count() == 5
            assert page.locator("#bars .label").all_inner_texts() == [c for c, _ in expected]
            for method in ("gradcam", "occlusion"):  # the overlay PNGs, decoded at the model's input size
                page.wait_for_function(f"document.getElementById('heatmap-{method}')?.naturalWidth === 64",
                                       timeout=30_000)  # fmt: skip
            page.set_input_files("#file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"})
            page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
            assert "not an image" in page.inner_text("#error")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
