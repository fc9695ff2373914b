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


def _to_8bit(im):
    """A 16-bit / 32-bit integer or float grayscale image as mode ``L`` (PIL's own ``convert`` clips at 255, so a
    16-bit scan comes out all white). Integers are scaled from their bit depth (16-bit ``0..65535`` → ``0..255``;
    ``I`` images whose values fit in 8 bits are kept); floats in ``[0, 1]`` are scaled by 255, others clipped."""
    import numpy as np
    from PIL import Image

    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        a = a * 255.0 if a.size and np.nanmax(a) <= 1.0 else a
    else:
        a = a.astype(np.int64)
        if im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0
    return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), mode="L")


def load_image(path: str | os.PathLike):
    """Load ``path`` as an RGB ``PIL.Image`` with black strokes on white, whatever the source polarity.

    - 16-bit (and 32-bit / float) grayscale is scaled to 8 bits, palette images keep their colours;
    - transparency is composited on white;
    - a dark background (see :func:`is_dark_background`) is inverted;
    - the pixel size is unchanged.

    Raises :class:`~unimumer.errors.InputError` if the file is missing, is not a readable image, is truncated or is a
    decompression bomb (over twice ``PIL.Image.MAX_IMAGE_PIXELS``); data builders count such records as skipped.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: image not found")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("I", "F") or im.mode.startswith("I;16"):
                im = _to_8bit(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            rgb = im.convert("RGB")
    except Image.DecompressionBombError:
        raise InputError(f"{p}: image too large (over {2 * Image.MAX_IMAGE_PIXELS} pixels: decompression bomb)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
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


#: Largest long-side / short-side ratio the Qwen-VL processors accept (qwen-vl-utils ``smart_resize``: "absolute
#: aspect ratio must be smaller than 200").
MAX_ASPECT_RATIO = 200


def load_model_image(path: str | os.PathLike, max_aspect_ratio: float = MAX_ASPECT_RATIO):
    """:func:`load_image`, refusing an image the Qwen-VL processor would reject (aspect ratio > ``max_aspect_ratio``).

    Raises :class:`~unimumer.errors.InputError` (unreadable, or ``"<path>: extreme aspect ratio W x H"``) so that
    callers record a counted skip instead of failing a whole batch.
    """
    img = load_image(path)
    w, h = img.size
    if min(w, h) == 0 or max(w, h) / min(w, h) > max_aspect_ratio:
        raise InputError(f"{path}: extreme aspect ratio {w} x {h} (over {max_aspect_ratio}:1)")
    return img
