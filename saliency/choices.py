"""The named choices of the library, with no heavy import, so that the CLI can offer them without
loading torch. The modules that use a choice check it against these lists."""

from __future__ import annotations

STYLES = ("overlay", "heatmap", "rgb", "grayscale")
SIGNS = ("abs", "positive", "negative", "all")
REDUCTIONS = ("max", "sum")
FIT_MODES = ("native", "crop", "resize")
BASELINES = ("black", "zero", "blurred")
SANITY_MODES = ("cascading", "independent")
GRANULARITIES = ("stage", "layer")
FIGURE_FORMATS = ("png", "pdf")
PICTURE_FORMATS = ("png", "jpg", "webp")  # how folder runs store pictures (png: lossless)
RAW_FORMATS = ("npy", "safetensors")  # how --save-raw stores maps: a file each, or containers
# evaluate's; the pointing game is a detector's
METRICS = ("deletion", "insertion", "road_morf", "road_lerf", "class_sensitivity", "pointing_game")
FILLS = ("blur", "mean")  # what deletion's removed pixels become, and insertion starts from
