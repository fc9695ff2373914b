"""Loading handwriting images: always RGB, black strokes on a white background.

CROHME / MNE images as packaged for the CoMER / PosFormer line of work are 8-bit grayscale with **white strokes on
black**; the official Uni-MuMER prompt files use black-on-white JPEGs. Every code path that reads an image (data
building, inference, CDM) goes through :func:`load_image`, so the model always sees the training polarity.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError


def is_dark_background(gray) -> bool:
    """True when a grayscale image (``PIL.Image`` mode ``L``) has a dark background.

    The background is taken as the median of the border pixels (one pixel wide frame), which for handwriting is
    almost all background; ties at exactly 128 count as light.
    """
    import numpy as np

    a = np.asarray(gray)
    if a.size == 0:
        return False
    border = np.concatenate([a[0, :], a[-1, :], a[:, 0], a[:, -1]])
    return float(np.median(border)) < 128


def load_image(path: str | os.PathLike):
    """Load ``path`` as an RGB ``PIL.Image`` with black strokes on white, whatever the source polarity.

    - transparency is composited on white;
    - a dark background (see :func:`is_dark_background`) is inverted;
    - the pixel size is unchanged.

    Raises :class:`~unimumer.errors.InputError` if the file is missing or is not a readable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: image not found")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{p}: not a readable image ({exc.__class__.__name__})") from None
    if is_dark_background(rgb.convert("L")):
        rgb = ImageOps.invert(rgb)
    return rgb


def save_image(image, path: str | os.PathLike, quality: int = 95) -> Path:
    """Save an image (format from the suffix: ``.jpg``/``.jpeg`` → JPEG ``quality``, else PNG) atomically."""
    from .files import atomic_open

    p = Path(path)
    fmt = "JPEG" if p.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_open(p, "wb") as fh:
        image.save(fh, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return p
