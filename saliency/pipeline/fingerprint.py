"""What produced a picture, as one short hash per manifest row, so a rerun can tell what changed.

A picture depends on its input (recorded apart, as a :class:`~saliency.files.sources.SourceId`)
and on everything here: the model (architecture, every weight, preprocessing, class names), the
method and the options its maps depend on, the fit, and how the map is drawn and stored. The
target is in the row's key (the picture's name says top1, topN or the class index). Options that
change only the speed (batch size, threads, device) are left out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from ..engine.options import method_settings
from ..engine.registry import get_method
from ..engine.settings import hash_tensor
from ..models.loading import LoadedModel
from .options import JobOptions


def model_identity(loaded: LoadedModel) -> str:
    """SHA-256 of the model's name, preprocessing, classes and every parameter and buffer: the
    same weights give the same identity wherever they were loaded from (about 30 ms per
    100 MB of weights)."""
    digest = hashlib.sha256()
    head: dict[str, object] = {
        "name": loaded.name,
        "preprocessing": asdict(loaded.preprocessing),
        "categories": loaded.categories,
    }
    if loaded.seed is not None:  # random weights: the seed they were drawn from
        head["random_weights_seed"] = loaded.seed
    digest.update(json.dumps(head, sort_keys=True).encode())
    for name, tensor in loaded.model.state_dict().items():
        hash_tensor(digest, name, tensor)
    return digest.hexdigest()


def settings_fingerprint(model: str, method: str, options: JobOptions) -> str:
    """The hash of what ``method``'s pictures depend on under ``options`` with the model whose
    identity is ``model``: equal hashes draw equal pictures from equal inputs."""
    method_options = options.method_options
    used = method_settings(get_method(method), method_options)
    if method_options.smooth:
        used.update(
            smooth=method_options.smooth, noise=method_options.noise, seed=method_options.seed
        )
    settings = {
        "model": model,
        "method": method,
        "method_options": used,
        "fit": options.fit,
        "render": asdict(options.render),
        "encoding": asdict(options.encoding),
        "drawn_on_device": bool(options.resident),  # slightly different pixels
        "save_raw": options.save_raw and options.raw_format,
    }
    # a class is in the picture's name; a reference is not, nor what a detector's are cut to,
    # nor what is outlined on the picture: the plan says
    settings.update(options.target.fingerprint())
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
