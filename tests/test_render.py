"""Rendering: reductions, signs, clipping, styles, and empty or NaN maps."""

import numpy as np
import pytest
import torch
from PIL import Image

from saliency.choices import STYLES
from saliency.geometry import Geometry
from saliency.pictures.render import (
    EmptyMapWarning,
    RenderOptions,
    colormap_lut,
    draw,
    normalize,
    reduce_map,
    render,
)

PHOTO = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
GEOMETRY = Geometry((40, 30), (0.0, 0.0, 40.0, 30.0), (8, 6))


def test_reductions_and_signs():
    maps = torch.tensor([[[1.0, -4.0]], [[-2.0, 3.0]], [[0.5, 0.0]]])  # (3, 1, 2)
    assert reduce_map(maps, "max", "abs").tolist() == [[2.0, 4.0]]
    assert reduce_map(maps, "sum", "abs").tolist() == [[3.5, 7.0]]
    assert reduce_map(maps, "max", "positive").tolist() == [[1.0, 3.0]]
    assert reduce_map(maps, "max", "negative").tolist() == [[2.0, 4.0]]
    assert reduce_map(maps, "max", "all").tolist() == [[-2.0, -4.0]]  # keeps the sign
    assert reduce_map(maps, "sum", "all").tolist() == [[-0.5, -1.0]]


def test_percentile_clip():
    values = torch.arange(1, 101, dtype=torch.float32)
    out = normalize(values, 50.0)
    assert out.max() == 1.0 and abs(float(out[0]) - 1 / 50.5) < 1e-6
    assert normalize(torch.zeros(5)) is None


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("bad", ["zero", "nan"])
def test_empty_maps_render_as_empty_with_a_warning(style, bad):
    maps = torch.zeros(3, 6, 8) if bad == "zero" else torch.full((3, 6, 8), float("nan"))
    with pytest.warns(EmptyMapWarning):
        picture = render(PHOTO, maps, GEOMETRY, RenderOptions(style=style))
    array = np.asarray(picture)
    assert picture.size == PHOTO.size and np.isfinite(array).all()
    if style == "overlay":
        assert np.array_equal(array, np.asarray(PHOTO))  # the photo alone, no solid colour
    else:
        assert len(np.unique(array.reshape(-1, 3), axis=0)) == 1  # one neutral fill


def test_overlay_leaves_quiet_pixels_alone_and_colours_strong_ones():
    maps = torch.zeros(3, 6, 8)
    maps[:, 0, 0] = 5.0  # one strong pixel in the top-left corner
    picture = np.asarray(render(PHOTO, maps, GEOMETRY, RenderOptions(clip_percentile=100)))
    photo = np.asarray(PHOTO)
    assert np.array_equal(picture[20:, 20:], photo[20:, 20:])
    hot = colormap_lut("inferno")[255].astype(float)
    expected = 0.3 * photo[0, 0] + 0.7 * hot
    assert np.abs(picture[0, 0] - expected).max() <= 1.0


def test_rgb_style_is_gray_where_the_map_is_zero():
    maps = torch.zeros(3, 6, 8)
    maps[0, 3, 4] = 1.0
    picture = np.asarray(render(PHOTO, maps, GEOMETRY, RenderOptions(style="rgb")))
    assert tuple(picture[0, 0]) == (128, 128, 128)


def test_bad_options():
    for kwargs, match in [
        ({"style": "x"}, "valid: overlay, heatmap, rgb, grayscale"),
        ({"sign": "x"}, "valid: abs, positive, negative, all"),
        ({"cmap": "nope"}, "unknown colormap"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"clip_percentile": 0}, r"\(0, 100\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            RenderOptions(**kwargs)
    assert RenderOptions(sign="all").colormap == "coolwarm"
    assert RenderOptions().colormap == "inferno"


def test_one_channel_maps_draw_in_every_style():
    """Grad-CAM maps have one channel: rgb draws them gray, the others as usual."""
    cam = torch.zeros(1, 12, 16)
    cam[0, 4:8, 6:10] = 1.0
    geometry = Geometry(PHOTO.size, (0.0, 0.0, *map(float, PHOTO.size)), (16, 12))
    for style in ("overlay", "heatmap", "rgb", "grayscale"):
        picture, empty = draw(PHOTO, cam, geometry, RenderOptions(style=style))
        assert picture.size == PHOTO.size and not empty
    rgb = np.asarray(draw(PHOTO, cam, geometry, RenderOptions(style="rgb"))[0]).astype(int)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
