"""Decode any image file a user may have into a uint8 CxHxW tensor, or say why not.

PIL handles the odd cases in one place: EXIF rotation, CMYK, palette and RGBA images,
16-bit PNGs, animated GIFs (first frame) and decompression bombs (refused).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 89_478_485  # PIL's own bomb limit: about 9,500 x 9,500
MIN_SIDE = 8  # smaller images (1x1 tracking pixels, icons) carry no class information
# A file, its bytes (an upload) or an image already in memory (the Python API's PIL images)
ImageSource = str | Path | bytes | Image.Image


class BadImageError(Exception):
    """An image that cannot be used; the message says why in a few words."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray((array / max(array.max(), 1.0) * 255.0).astype(np.uint8))
    if image.mode in ("P", "PA", "LA", "RGBA") and channels == 3:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("L" if channels == 1 else "RGB")


def decode(source: ImageSource, channels: int = 3, min_size: int | None = None) -> torch.Tensor:
    """Open, EXIF-rotate and convert an image; raise BadImageError with a short reason.

    With ``min_size``, JPEGs are decoded at 1/2, 1/4 or 1/8 scale (the DCT does it, several
    times faster) as long as both sides stay >= ``min_size``: a 500 px photo for 64 px training
    needs no full decode.
    """
    image, _ = _open(source, channels, draft=(min_size, min_size) if min_size else None)
    array = np.asarray(image, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array) if array.flags.writeable else array.copy())


def check(source: str | Path | bytes) -> tuple[int, int, str]:
    """Run every step of ``decode`` cheaply (JPEGs at reduced scale); return width, height, mode.

    Header problems, truncation, bombs and conversion failures raise the same BadImageError
    as ``decode``, so a file that passes here decodes during training. Images with a side
    below MIN_SIDE pixels (tracking pixels, icons) are refused too: they carry no class.
    """
    _, (width, height, mode) = _open(source, 3, draft=(64, 64))
    if min(width, height) < MIN_SIDE:
        raise BadImageError(f"too small ({width}x{height} pixels)")
    return width, height, mode


def _open(
    source: ImageSource, channels: int, draft: tuple[int, int] | None
) -> tuple[Image.Image, tuple[int, int, str]]:
    """The converted image and the file's own width, height and mode.

    A PIL image is the caller's: it is converted into a new image, never closed, rewound or drafted.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            in_memory = isinstance(source, Image.Image)
            opened: contextlib.AbstractContextManager[Image.Image]
            if isinstance(source, Image.Image):
                opened = contextlib.nullcontext(source)
            else:
                opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            with opened as image:
                if image.width * image.height > MAX_PIXELS:
                    raise BadImageError(f"too large ({image.width}x{image.height} pixels)")
                header = (image.width, image.height, image.mode)
                if not in_memory:
                    image.seek(0)
                if draft and not in_memory:
                    image.draft("RGB" if channels == 3 else "L", draft)  # JPEG DCT scaling; no-op for others
                if image.getexif().get(0x0112, 1) != 1:  # only rotated photos pay for the copy
                    image = ImageOps.exif_transpose(image)
                image = _to_mode(image, channels)
                image.load()
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImageError("decompression bomb (too many pixels)") from None
    except PermissionError:
        raise BadImageError("permission denied") from None
    except FileNotFoundError:
        raise BadImageError("file not found") from None
    except Exception as e:  # untrusted files fail in many ways inside PIL; each is one bad file
        reason = str(e).replace(f" {str(source)!r}", "")  # the path is reported next to the reason anyway
        if isinstance(source, (str, Path)) and Path(source).stat().st_size == 0:
            reason = "empty file"
        raise BadImageError(f"not a readable image: {reason}") from None
    return image, header


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray <-> RGB so that the data always matches ``model.in_channels``."""
    if image.shape[0] == channels:
        return image
    if channels == 1:
        return v2.functional.rgb_to_grayscale(image[:3])
    return image[:1].expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
