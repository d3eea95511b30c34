"""What the stages return: typed results, one frozen dataclass per variant (a skip, a continuation, a
finished run), and the JSON a handler returns to Lambda (`to_dict`, the dataclass's fields in order).

The idempotency record keeps that JSON; a repeat rebuilds the variant whose fields are its keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from nerloop.idempotency import run_once

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class StageResult:
    """Base of the result variants (each a `@dataclass(frozen=True, slots=True)`)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the handler returns: every field, in declaration order (nested values as they are)."""
        instance = cast("DataclassInstance", self)
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(instance)}


R = TypeVar("R", bound=StageResult)


class UnknownResultShape(ValueError):
    """A stored result whose keys match none of the variants a stage returns."""


def from_dict(stored: Mapping[str, Any], variants: tuple[type[StageResult], ...]) -> StageResult:
    """The variant whose field names are exactly `stored`'s keys, built from it."""
    keys = set(stored)
    for variant in variants:
        if {field.name for field in dataclasses.fields(cast("type[DataclassInstance]", variant))} == keys:
            return variant(**stored)
    raise UnknownResultShape(f"no result variant among {[v.__name__ for v in variants]} has keys {sorted(keys)}")


def run_stage_once(table_name: str, action: str, key: dict[str, Any], effect: Callable[[], R],
                   *variants: type[StageResult]) -> R:
    """`run_once` for an effect with a typed result: the record stores its `to_dict()`; a repeat returns
    it rebuilt as one of `variants` (those `effect` may return)."""
    ran: list[R] = []

    def once() -> dict[str, Any]:
        ran.append(effect())
        return ran[-1].to_dict()

    stored = run_once(table_name, action, key, once)
    if ran:
        return ran[-1]
    return cast(R, from_dict(stored, variants))  # one of the effect's own variants, by its keys
