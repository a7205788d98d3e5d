from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet_lightning.data.decode import BadImageError, decode


def _save(path: Path, image: Image.Image, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def test_modes_become_rgb_or_gray(tmp_path: Path) -> None:
    rgba = _save(tmp_path / "a.png", Image.new("RGBA", (5, 4), (255, 0, 0, 128)))
    cmyk = _save(tmp_path / "c.jpg", Image.new("CMYK", (5, 4), (0, 255, 0, 0)))
    palette = _save(tmp_path / "p.png", Image.new("RGB", (5, 4), (0, 0, 255)).convert("P"))
    deep = _save(tmp_path / "d.png", Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16)))
    for path in (rgba, cmyk, palette, deep):
        assert decode(path).shape == (3, 4, 5), path
        assert decode(path, channels=1).shape == (1, 4, 5), path
    assert decode(deep, channels=1).max() == 255


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (6, 3))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    path = _save(tmp_path / "r.jpg", image, exif=exif)
    assert decode(path).shape == (3, 6, 3)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert decode(path)[0].float().mean() > 200  # red


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"hello, not a jpeg", "not a readable image"), (None, "not a readable image")],
)
def test_bad_files_raise_bad_image(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "x.jpg"
    if content is None:  # a truncated JPEG
        _save(path, Image.new("RGB", (64, 64), (1, 2, 3)))
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(content)
    with pytest.raises(BadImageError, match=reason):
        decode(path)


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alexnet_lightning.data.decode.MAX_PIXELS", 100)
    path = _save(tmp_path / "big.png", Image.new("L", (20, 20)))
    with pytest.raises(BadImageError, match="too large"):
        decode(path)
