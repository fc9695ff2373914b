"""unimumer.images: every handwriting image is read as RGB, black strokes on white, whatever its source polarity.

Real data: the CROHME 2014 test images bundled in tests/fixtures/images/crohme2014 (8-bit grayscale, white strokes
on black, as packaged for CoMER / PosFormer). Variants (black-on-white PNG / JPEG, transparent PNG, 1-bit,
palette) are derived from them with Pillow in tmp_path.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps

from unimumer.errors import InputError
from unimumer.images import is_dark_background, load_image, save_image


def _gray(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def test_crohme_sources_are_white_on_black(crohme_samples):
    assert len(crohme_samples) == 6
    for s in crohme_samples:
        with Image.open(s.path) as im:
            assert im.mode == "L"
            assert is_dark_background(im)


def test_crohme_is_inverted_to_black_on_white_rgb(crohme_samples):
    for s in crohme_samples:
        src = _gray(s.path)
        img = load_image(s.path)
        assert img.mode == "RGB"
        assert img.size == (src.shape[1], src.shape[0])  # pixel size unchanged
        rgb = np.asarray(img)
        # exact inversion of every pixel, identical in the three channels
        for c in range(3):
            np.testing.assert_array_equal(rgb[:, :, c], 255 - src)
        assert not is_dark_background(img.convert("L"))
        # strokes (the minority) are now dark, the background white
        assert (rgb[:, :, 0] < 128).mean() < 0.5
        assert np.median(rgb) == 255


def test_black_on_white_sources_are_left_unchanged(crohme_samples, tmp_path):
    for s in crohme_samples:
        bow = ImageOps.invert(Image.open(s.path).convert("L"))
        png = tmp_path / f"{s.img_id}.png"
        bow.save(png)
        np.testing.assert_array_equal(np.asarray(load_image(png))[:, :, 1], np.asarray(bow))
        # JPEG (the official prompt files' format): lossy, but it must not be inverted a second time
        jpg = tmp_path / f"{s.img_id}.jpg"
        bow.convert("RGB").save(jpg, quality=95)
        loaded = np.asarray(load_image(jpg).convert("L")).astype(int)
        assert np.abs(loaded - np.asarray(bow).astype(int)).mean() < 8


def test_rgb_white_on_black_is_inverted(crohme_samples, tmp_path):
    s = crohme_samples[0]
    rgb_path = tmp_path / "rgb.png"
    Image.open(s.path).convert("RGB").save(rgb_path)
    np.testing.assert_array_equal(np.asarray(load_image(rgb_path))[:, :, 2], 255 - _gray(s.path))


def test_transparent_background_is_composited_on_white(crohme_samples, tmp_path):
    s = crohme_samples[1]
    strokes = _gray(s.path)  # 255 where ink
    rgba = np.zeros(strokes.shape + (4,), dtype=np.uint8)  # black ink, alpha = ink mask, transparent elsewhere
    rgba[:, :, 3] = strokes
    path = tmp_path / "ink.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = np.asarray(load_image(path))
    np.testing.assert_array_equal(out[:, :, 0], 255 - strokes)
    # LA (grayscale + alpha) goes the same way
    la = Image.merge("LA", [Image.new("L", (strokes.shape[1], strokes.shape[0]), 0), Image.fromarray(strokes)])
    la.save(tmp_path / "ink_la.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "ink_la.png"))[:, :, 1], 255 - strokes)


def test_bilevel_and_palette_sources(crohme_samples, tmp_path):
    s = crohme_samples[2]
    src = _gray(s.path)
    Image.open(s.path).convert("1").save(tmp_path / "bilevel.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "bilevel.png"))[:, :, 0], 255 - src)
    Image.open(s.path).convert("P").save(tmp_path / "palette.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "palette.png"))[:, :, 0], 255 - src)


def test_is_dark_background_uses_the_border():
    dark = Image.new("L", (20, 10), 10)
    dark.paste(255, (5, 2, 15, 8))  # a big bright blob inside does not change the decision
    assert is_dark_background(dark)
    light = Image.new("L", (20, 10), 240)
    light.paste(0, (1, 1, 19, 9))
    assert not is_dark_background(light)
    assert not is_dark_background(Image.new("L", (4, 4), 128))  # tie counts as light
    assert not is_dark_background(Image.new("L", (0, 0)))


def test_missing_and_unreadable_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="image not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "caption.png").write_text("x ^ { 2 }\n")
    with pytest.raises(InputError, match=r"caption\.png: not a readable image") as exc:
        load_image(tmp_path / "caption.png")
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError):
        load_image(tmp_path)  # a folder
    # truncated PNG: the header parses, the data does not
    good = tmp_path / "good.png"
    Image.new("L", (64, 64), 0).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(InputError, match="not a readable image"):
        load_image(tmp_path / "cut.png")


def test_save_image_roundtrip_and_atomicity(crohme_samples, tmp_path):
    img = load_image(crohme_samples[3].path)
    out = save_image(img, tmp_path / "sub" / "x.png")
    assert out == tmp_path / "sub" / "x.png"
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(img))
    jpg = save_image(img, tmp_path / "x.jpg")
    with Image.open(jpg) as im:
        assert im.format == "JPEG"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.png"]  # no temporary left behind
    with pytest.raises(AttributeError):
        save_image("not an image", tmp_path / "bad.png")  # the write fails midway: nothing is left behind
    assert not list(tmp_path.glob(".bad*")) and not (tmp_path / "bad.png").exists()


def test_loaded_image_feeds_a_qwen_image_processor(crohme_samples):
    """The loader's output is what the VLM processors take (also inside vLLM): plain RGB PIL images."""
    from transformers import Qwen2VLImageProcessor

    proc = Qwen2VLImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 262144})
    img = load_image(crohme_samples[4].path)
    out = proc(images=[img], return_tensors="np")
    t, h, w = out["image_grid_thw"][0]
    assert t == 1 and h * 14 >= 56 and w * 14 >= 56 and h * w * 14 * 14 <= 262144


def test_loader_does_not_import_torch():
    code = (
        "import sys; from unimumer.images import load_image; "
        "load_image('tests/fixtures/images/crohme2014/img/501_em_23.png'); "
        "print('torch' in sys.modules)"
    )
    from unimumer.paths import REPO_ROOT

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == "False"
