"""Inputs of one shape run as one batch: the grouping that every batched command shares."""

from __future__ import annotations

from collections.abc import Hashable, Iterable


def by_shape(shapes: Iterable[Hashable]) -> list[list[int]]:
    """The indices of items grouped by their shape, groups in order of first appearance and
    indices in order within each, so outputs follow inputs."""
    groups: dict[Hashable, list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(index)
    return list(groups.values())
