"""Serve a checkpoint over HTTP: POST /predict (multipart image), POST /explain (its heatmap as a PNG),
GET /health, GET / (a page with bars and heatmaps).

python -m alexnet_lightning.serve ckpt_path=FILE [port=8000] [host=127.0.0.1]

Concurrent requests are batched: each forward pass takes every image queued at that moment
(up to ``max_batch``), so a lone request waits for nobody and a crowd shares the work. An
explanation holds the model alone: Grad-CAM's hooks would otherwise record a concurrent batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import torch
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from omegaconf import DictConfig

from alexnet_lightning.attribution import METHODS, overlay_png
from alexnet_lightning.command import hydra_command
from alexnet_lightning.data.decode import BadImageError
from alexnet_lightning.errors import UserError
from alexnet_lightning.inference import Predictor

PAGE = Path(__file__).parent / "static" / "index.html"
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the file


class Batcher:
    """Runs queued images through the model together, one forward pass at a time, off the event loop."""

    def __init__(self, predictor: Predictor, max_batch: int, lock: threading.Lock) -> None:
        self.predictor, self.max_batch, self.lock = predictor, max_batch, lock
        self.queue: asyncio.Queue[tuple[torch.Tensor, asyncio.Future]] = asyncio.Queue()

    async def __call__(self, x: torch.Tensor) -> torch.Tensor:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((x, future))
        return await future

    async def run(self) -> None:
        while True:
            items = [await self.queue.get()]
            while len(items) < self.max_batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
            try:
                probs = await asyncio.to_thread(self._probabilities, torch.stack([x for x, _ in items]))
            except Exception as e:  # a failed batch fails its requests, never the service
                for _, future in items:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), p in zip(items, probs, strict=True):
                if not future.done():  # the client may have gone away
                    future.set_result(p)

    def _probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.predictor.probabilities(batch)


def _bad_image(error: BadImageError) -> HTTPException:
    reason = str(error)
    if "cannot identify image file" in reason or "empty file" in reason:
        return HTTPException(415, "not an image: upload a JPEG, PNG, BMP, GIF, WebP or TIFF file")
    if "too large" in reason or "decompression bomb" in reason:
        return HTTPException(413, f"image has too many pixels: {reason}")
    return HTTPException(400, f"corrupt or truncated image: {reason.removeprefix('not a readable image: ')}")


def create_app(predictor: Predictor, max_upload_bytes: int, top_k: int, max_batch: int) -> FastAPI:
    model_lock = threading.Lock()  # one forward (or explanation) at a time
    batcher = Batcher(predictor, max_batch, model_lock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title="alexnet-lightning", lifespan=lifespan)
    too_large = f"upload larger than {max_upload_bytes / 2**20:g} MiB: send a smaller image (limit: max_upload_mb)"

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        """Refuse before reading the body when the client announces its size."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload_bytes + MULTIPART_OVERHEAD:
            return JSONResponse({"detail": too_large}, status_code=413, headers={"Connection": "close"})
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.read_text()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "classes": predictor.class_names, "device": str(predictor.device)}

    async def read_image(file: UploadFile) -> torch.Tensor:
        """The upload, preprocessed, or the HTTP error that says what is wrong with it."""
        data = await file.read(max_upload_bytes + 1)
        await file.close()
        if len(data) > max_upload_bytes:
            raise HTTPException(413, too_large)
        if not data:
            raise HTTPException(400, "empty upload: choose an image file")
        try:
            return await run_in_threadpool(predictor.preprocess, data)
        except BadImageError as e:
            raise _bad_image(e) from None

    def explain_png(x: torch.Tensor, method: str) -> bytes:
        with model_lock:
            return overlay_png(predictor, x, method)

    @app.post("/predict")
    async def predict(file: UploadFile = File(...)) -> dict:  # noqa: B008 (FastAPI's declaration style)
        x = await read_image(file)
        probs = await batcher(x)
        top = predictor.top_k(probs, top_k)
        return {
            "filename": file.filename,
            "class": top[0][0],
            "probability": top[0][1],
            "top_k": [{"class": c, "probability": p} for c, p in top],
        }

    @app.post("/explain", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def explain(file: UploadFile = File(...), method: str = "gradcam") -> Response:  # noqa: B008
        """The image as the model saw it, under the heatmap of its predicted class (``method``: gradcam or
        occlusion, finer but 169 forward passes)."""
        if method not in METHODS:
            raise HTTPException(422, f"method={method} is unknown: use {' or '.join(METHODS)}")
        x = await read_image(file)
        return Response(await run_in_threadpool(explain_png, x, method), media_type="image/png")

    return app


def build_app(cfg: DictConfig) -> FastAPI:
    if cfg.max_upload_mb <= 0 or cfg.max_batch < 1 or cfg.top_k < 1:
        raise UserError("max_upload_mb, max_batch and top_k must be positive")
    predictor = Predictor.load(cfg.ckpt_path, cfg.device)
    return create_app(predictor, int(cfg.max_upload_mb * 2**20), cfg.top_k, cfg.max_batch)


def serve(cfg: DictConfig) -> None:
    """Build the app from the checkpoint and serve it until interrupted."""
    import uvicorn

    app = build_app(cfg)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {cfg.host}: anyone who can reach this machine can use the service")
    api = "page: /, API: POST /predict, POST /explain, GET /health"
    print(f"serving {cfg.ckpt_path} on http://{cfg.host}:{cfg.port} ({api})")
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


main = hydra_command("serve", serve)


if __name__ == "__main__":
    main()
