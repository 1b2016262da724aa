"""Error and warning types raised by the library."""

from __future__ import annotations


class SaliencyError(Exception):
    """Base class of every error the library raises on purpose."""


class RuleError(SaliencyError):
    """A backprop rule cannot be applied to this model (compiled or scripted graphs)."""


class ModelError(SaliencyError):
    """A model could not be found, built or loaded."""


class WeightsUnavailable(ModelError):
    """Pretrained weights that cannot be had here (not cached, no network, none published):
    ``why`` says which, ``ways_out`` the offline ways, in Python's terms (the command words
    them as its options)."""

    def __init__(self, why: str, ways_out: str) -> None:
        super().__init__(f"{why}; {ways_out}")
        self.why = why
        self.ways_out = ways_out


class ImageError(SaliencyError):
    """An image could not be read or decoded."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RuleCoverageWarning(UserWarning):
    """A rule left some activations with their plain gradient, or found no unit to change."""


class OutputBusyError(SaliencyError):
    """Another run is writing into the same output folder."""

    def __init__(self, folder: object, holder: str) -> None:
        super().__init__(
            f"{folder} is in use by another saliency run ({holder}); wait for it to finish, or "
            "write to another folder"
        )
        self.folder = folder
        self.holder = holder


class UnsafePathError(SaliencyError, ValueError):
    """A name read from an output folder's files (a manifest row, a part, a report's source)
    leads outside the folder, or a file of the folder's own is a link: it is not followed."""

    def __init__(self, folder: object, name: str, reason: str) -> None:
        super().__init__(f"{name!r} in {folder} is refused: {reason}")
        self.folder = folder
        self.name = name
        self.reason = reason
