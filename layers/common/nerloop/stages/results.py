"""What the stages return: typed results, one frozen dataclass per variant (a skip, a continuation, a
finished run), and the JSON a handler returns to Lambda (`to_dict`, the dataclass's fields in order).

The idempotency record keeps that JSON; a repeat rebuilds the variant whose fields are its keys
(`from_dict`, used by nerloop.idempotency.run_stage_once). Nothing here imports the idempotency
machinery: the watch stage returns a result but guards nothing, and its cold start stays without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class StageResult:
    """Base of the result variants (each a `@dataclass(frozen=True, slots=True)`)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the handler returns: every field, in declaration order (nested values as they are)."""
        instance = cast("DataclassInstance", self)
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(instance)}


class UnknownResultShape(ValueError):
    """A stored result whose keys match none of the variants a stage returns."""


def from_dict(stored: Mapping[str, Any], variants: tuple[type[StageResult], ...]) -> StageResult:
    """The variant whose field names are exactly `stored`'s keys, built from it."""
    keys = set(stored)
    for variant in variants:
        if {field.name for field in dataclasses.fields(cast("type[DataclassInstance]", variant))} == keys:
            return variant(**stored)
    raise UnknownResultShape(f"no result variant among {[v.__name__ for v in variants]} has keys {sorted(keys)}")
