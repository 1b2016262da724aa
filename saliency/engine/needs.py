"""What a method may need of a model, and a kind of model provides (``Method.needs``,
``Kind.provides``): names, so that the engine and the kinds above it share them."""

from __future__ import annotations

CLASS_LOGITS = "class logits"  # an output (B, K) of one logit per class
BOX_TARGETS = "box targets"  # a detector's detections (B, N, 6)
FEATURE_LAYER = "feature layer"  # a layer a reader reads as a grid (B, C, h, w)
RELU_UNITS = "ReLU-family units"  # units the rules swap their backward pass at
ATTENTION = "attention"  # a transformer's attention weights, readable by hooks
LAYER_RULES = "relevance rules for every layer"  # LRP's: none for attention yet
NEEDS = (CLASS_LOGITS, BOX_TARGETS, FEATURE_LAYER, RELU_UNITS, ATTENTION, LAYER_RULES)
