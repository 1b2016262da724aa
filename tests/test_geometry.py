"""Fit modes: a bright square in the photo maps back to the same place."""

import numpy as np
import pytest
import torch
from PIL import Image

from saliency.choices import FIT_MODES
from saliency.models.preprocess import Preprocessing

PREP = Preprocessing(64, 73, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")


def bright_square(width=150, height=100, box=(80, 40, 100, 60)):
    array = np.zeros((height, width, 3), dtype=np.uint8)
    left, top, right, bottom = box
    array[top:bottom, left:right] = 255
    return Image.fromarray(array), box


def centroid(weights):
    ys, xs = torch.meshgrid(
        torch.arange(weights.shape[0], dtype=torch.float32),
        torch.arange(weights.shape[1], dtype=torch.float32),
        indexing="ij",
    )
    total = weights.sum()
    return float((xs * weights).sum() / total), float((ys * weights).sum() / total)


@pytest.mark.parametrize("fit", FIT_MODES)
@pytest.mark.parametrize("size", [(150, 100), (100, 150)])
def test_round_trip(fit, size):
    width, height = size
    box = (60, 40, 80, 60) if width > height else (40, 60, 60, 80)
    image, (left, top, right, bottom) = bright_square(width, height, box)
    tensor, geometry = PREP(image, fit)
    assert tuple(tensor.shape[1:]) == geometry.input_size[::-1]
    brightness = (tensor.mean(0) > 0).float()  # the square, seen at model resolution
    back = geometry.to_image(brightness)
    assert back.shape == (height, width)
    cx, cy = centroid(back)
    assert abs(cx - (left + right) / 2) < 1.0 and abs(cy - (top + bottom) / 2) < 1.0
    mask = back > 0.5
    ys, xs = torch.nonzero(mask, as_tuple=True)
    assert abs(int(xs.min()) - left) <= 1 and abs(int(xs.max()) + 1 - right) <= 1
    assert abs(int(ys.min()) - top) <= 1 and abs(int(ys.max()) + 1 - bottom) <= 1


def test_native_keeps_aspect_and_crop_is_empty_outside():
    image, _ = bright_square(150, 100)
    tensor, geometry = PREP(image, "native")
    assert geometry.input_size == (96, 64)
    _, crop = PREP(image, "crop")
    back = crop.to_image(torch.ones(64, 64))
    left, top, right, bottom = crop.box
    assert back[:, : int(left) - 1].abs().sum() == 0 and back[:, int(right) + 1 :].abs().sum() == 0
    assert back[: int(top) - 1].abs().sum() == 0 and back[int(bottom) + 1 :].abs().sum() == 0
    inside = back[int(top) + 1 : int(bottom) - 1, int(left) + 1 : int(right) - 1]
    torch.testing.assert_close(inside, torch.ones_like(inside))


def test_crop_matches_torchvision_transform():
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    t = weights.transforms()
    prep = Preprocessing(224, t.resize_size[0], tuple(t.mean), tuple(t.std), "bilinear")
    image = Image.open("sample_images/chelsea.png").convert("RGB")
    ours, _ = prep(image, "crop")
    assert (ours - t(image)).abs().mean() < 1e-3


def test_bad_fit():
    with pytest.raises(ValueError, match="valid fit modes: native, crop, resize"):
        PREP(Image.new("RGB", (5, 5)), "stretch")


@pytest.mark.parametrize("orientation", [1, 6])
@pytest.mark.parametrize("fit", FIT_MODES)
def test_reduced_jpeg_decode_matches_full_decode(tmp_path, orientation, fit):
    """A camera-size JPEG decoded at a reduced DCT scale gives the same geometry and input."""
    from saliency import load_image

    photo = Image.open("sample_images/chelsea.png").convert("RGB").resize((2400, 1600))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "big.jpg"
    photo.save(path, quality=95, exif=exif)
    prep = Preprocessing(224, 256, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic")
    full = load_image(path)
    reduced = load_image(path, lambda size: prep.source_size(size, fit))
    assert (
        reduced.info["full_size"]
        == full.size
        == ((1600, 2400) if orientation == 6 else (2400, 1600))
    )
    assert reduced.size[0] < full.size[0] / 2  # decoded at 1/4 or 1/8 scale
    a, geometry_a = prep(full, fit)
    b, geometry_b = prep(reduced, fit)
    assert geometry_a == geometry_b
    assert (a - b).abs().mean() < 0.02  # normalized units: about 1 grey level out of 255
