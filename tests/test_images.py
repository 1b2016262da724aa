"""load_image: every format and mode to the right RGB pixels; failures as ImageError."""

import io

import numpy as np
import pytest
from PIL import Image

from saliency import ImageError, load_image

RGB = (200, 100, 50)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_formats(tmp_path, fmt):
    path = tmp_path / f"img.{fmt.lower()}"
    options = {"JPEG": {"quality": 100}, "WEBP": {"lossless": True}}.get(fmt, {})
    Image.new("RGB", (30, 20), RGB).save(path, fmt, **options)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (30, 20)
    assert np.abs(np.asarray(image, dtype=int) - RGB).max() <= (8 if fmt in "JPEG GIF" else 0)


def test_format_by_content_not_extension(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    Image.new("RGB", (4, 4), RGB).save(path, "PNG")
    assert load_image(path).getpixel((0, 0)) == RGB


def test_animated_gif_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert load_image(path).getpixel((3, 3)) == (255, 0, 0)


def pixel(image):
    return load_image(image).getpixel((1, 1))


def save(tmp_path, image, name="img.png", **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_modes(tmp_path):
    assert pixel(save(tmp_path, Image.new("L", (3, 3), 77))) == (77, 77, 77)
    # alpha is composited on white: 50% black over white is mid gray
    assert pixel(save(tmp_path, Image.new("LA", (3, 3), (0, 128)))) == (127, 127, 127)
    assert pixel(save(tmp_path, Image.new("RGBA", (3, 3), (255, 0, 0, 0)))) == (255, 255, 255)
    assert pixel(save(tmp_path, Image.new("RGBA", (3, 3), (255, 0, 0, 255)))) == (255, 0, 0)
    palette = Image.new("P", (3, 3), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    assert pixel(save(tmp_path, palette)) == (10, 20, 30)
    palette.info["transparency"] = 1
    assert pixel(save(tmp_path, palette, transparency=1)) == (255, 255, 255)
    cmyk = save(tmp_path, Image.new("CMYK", (3, 3), (0, 255, 255, 0)), "cmyk.jpg", quality=100)
    r, g, b = pixel(cmyk)
    assert r > 240 and g < 15 and b < 15


def test_high_bit_depths_are_scaled_not_clipped(tmp_path):
    sixteen = Image.fromarray(np.full((3, 3), 65535 // 2, dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert pixel(save(tmp_path, sixteen)) == (127, 127, 127)
    int32 = Image.fromarray(np.full((3, 3), 65535, dtype=np.int32))
    assert int32.mode == "I"
    assert pixel(save(tmp_path, int32, "i.tif")) == (255, 255, 255)
    floats = Image.fromarray(np.full((3, 3), 0.5, dtype=np.float32))
    assert floats.mode == "F"
    assert pixel(save(tmp_path, floats, "f.tif")) == (128, 128, 128)


@pytest.mark.parametrize(
    "orientation, size, corner",
    [
        (1, (40, 20), (0, 0)),
        (3, (40, 20), (39, 19)),
        (6, (20, 40), (19, 0)),
        (8, (20, 40), (0, 39)),
    ],
)
def test_exif_orientation(tmp_path, orientation, size, corner):
    """A red mark at the stored image's top-left corner lands where a viewer shows it."""
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 4, 4))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path, stored, "rot.jpg", exif=exif, quality=100)
    image = load_image(path)
    assert image.size == size
    r, g, b = image.getpixel(corner)
    assert r > 200 and b < 60


def test_errors(tmp_path):
    cases = {
        "missing.jpg": (None, "no such file"),
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"hello, I am not a picture\n" * 10, "not an image"),
    }
    png = io.BytesIO()
    Image.new("RGB", (64, 64), RGB).save(png, "PNG")
    cases["truncated.png"] = (png.getvalue()[: len(png.getvalue()) // 2], "broken image")
    for name, (content, reason) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ImageError, match=reason) as info:
            load_image(path)
        assert info.value.path == path and str(path) in str(info.value)
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
