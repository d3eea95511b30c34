"""The DynamoDB condition, update and key-condition expressions nerloop writes, evaluated for the
table stand-in of bench/standins.py."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

_MISSING = object()


def _condition_failed(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ConditionalCheckFailedException",
                                  "Message": "The conditional request failed"}}, operation)


class _Expression:
    """The DynamoDB expression subset nerloop writes: `attribute_exists(x)`, `attribute_not_exists(x)`,
    comparisons `a = b`, `a <> b`, `a < b`, `a <= b`, `a > b`, `a >= b` joined by AND / OR (no
    parentheses), `SET a = :v, ...` (a value may be `if_not_exists(a, :v)`), `ADD a :n` and `REMOVE a`."""

    def __init__(self, names: dict[str, str] | None, values: dict[str, Any] | None) -> None:
        self.names = names or {}
        self.values = values or {}

    def name(self, token: str) -> str:
        return self.names[token] if token.startswith("#") else token

    def operand(self, token: str, item: dict[str, Any]) -> Any:
        if token.startswith(":"):
            return self.values[token]
        return item.get(self.name(token), _MISSING)

    def check(self, expression: str, item: dict[str, Any] | None) -> bool:
        item = item or {}
        return any(all(self._term(term.strip(), item) for term in re.split(r"\s+AND\s+", alternative))
                   for alternative in re.split(r"\s+OR\s+", expression))

    def _term(self, term: str, item: dict[str, Any]) -> bool:
        match = re.fullmatch(r"(attribute_exists|attribute_not_exists)\(\s*([#\w]+)\s*\)", term)
        if match:
            present = self.name(match.group(2)) in item
            return present if match.group(1) == "attribute_exists" else not present
        match = re.fullmatch(r"([#:\w]+)\s*(<>|<=|>=|=|<|>)\s*([#:\w]+)", term)
        if not match:
            raise NotImplementedError(f"condition term {term!r}")
        left, operator, right = match.group(1), match.group(2), match.group(3)
        a, b = self.operand(left, item), self.operand(right, item)
        if a is _MISSING or b is _MISSING:
            return operator == "<>"
        return {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[operator]

    def update(self, expression: str, item: dict[str, Any]) -> list[str]:
        """Apply an update expression to `item` in place; return the names it set."""
        changed: list[str] = []
        for clause, body in re.findall(r"(SET|ADD|REMOVE)\s+(.*?)(?=\s+(?:SET|ADD|REMOVE)\s+|$)",
                                       expression.strip()):
            for part in re.split(r",(?![^(]*\))", body):  # not the comma inside if_not_exists(a, :v)
                if clause == "REMOVE":
                    item.pop(self.name(part.strip()), None)
                    continue
                if clause == "SET":
                    target, value = (piece.strip() for piece in part.split("=", 1))
                    default = re.fullmatch(r"if_not_exists\(\s*([#\w]+)\s*,\s*([#:\w]+)\s*\)", value)
                    if default:
                        current = self.operand(default.group(1), item)
                        item[self.name(target)] = (self.operand(default.group(2), item) if current is _MISSING
                                                   else current)
                    else:
                        item[self.name(target)] = self.operand(value, item)
                else:
                    target, value = part.split()
                    current = item.get(self.name(target), 0)
                    item[self.name(target)] = current + self.operand(value, item)
                changed.append(self.name(target))
        return changed


def _key_condition(condition: Any) -> str:
    """The partition key value of a `Key("pk").eq(value)` condition (the only one nerloop queries by)."""
    expression = condition.get_expression()
    key, value = expression["values"]
    if expression["operator"] != "=" or getattr(key, "name", None) != "pk":
        raise NotImplementedError(f"key condition {expression}")
    return str(value)
