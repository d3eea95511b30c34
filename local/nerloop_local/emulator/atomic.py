"""Make moto's DynamoDB writes atomic, as the real service's are, at a cost that grows with the
items a write touches, not with the table.

Two fixes, installed once per process by `make_dynamodb_writes_atomic`:
- moto checks a write's condition and then applies it in two steps, so two threads can both pass
  the same `attribute_not_exists` check. DynamoDB never lets that happen, and the loop relies on it
  (the training lock, loop records, counters). One process-wide lock around moto's write paths
  restores the guarantee; reads stay concurrent.
- moto's `transact_write_items` deep-copies every table a transaction names before it starts, to
  roll back on a failure: each transaction costs O(table), and a routed batch of 100 documents on a
  pool of 10,000 spent seconds copying. `transact_write_items_undo_log` keeps DynamoDB's
  all-or-nothing result by saving only the items the transaction touches and restoring those.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
# DynamoDB's TransactWriteItems limit, "up to 100 action requests"
# (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).
MAX_TRANSACT_ITEMS = 100


def make_dynamodb_writes_atomic() -> None:
    """Patch moto's DynamoDB backend once per process (later calls do nothing)."""
    if not getattr(DynamoDBBackend.transact_write_items, "_nerloop_undo_log", False):
        DynamoDBBackend.transact_write_items = transact_write_items_undo_log  # type: ignore[method-assign]
    for name in _WRITES:
        method = getattr(DynamoDBBackend, name, None)
        if method is None or getattr(method, "_nerloop_atomic", False):
            continue

        def atomic(self: Any, *args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _LOCK:
                return __method(self, *args, **kwargs)

        functools.update_wrapper(atomic, method)
        atomic._nerloop_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, atomic)


Action = tuple[str, dict[str, Any], dict[str, Any]]  # (type, request, key)
Reason = tuple[str | None, str | None, dict[str, Any] | None]  # (code, message, old item)


def transact_write_items_undo_log(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's `DynamoDBBackend.transact_write_items` with an undo log of the touched items.

    As DynamoDB's TransactWriteItems does (API reference): a request that is malformed as a whole
    (over 100 actions, two actions on one item, an entry with several actions) is refused with a
    ValidationException before anything is written; otherwise every action's condition is checked
    and its write applied, and if any action fails, none takes effect and the call raises
    TransactionCanceledException with one reason per action, in order ("None" for those that
    would have succeeded).
    """
    actions = _checked_actions(self, transact_items)
    undo = [_saved_item(self, request["TableName"], key) for _, request, key in actions]
    reasons = [_apply_action(self, action, request, key) for action, request, key in actions]
    if any(code is not None for code, _, _ in reasons):
        for saved in reversed(undo):
            _restore_item(*saved)
        raise TransactionCanceledException(reasons)


def _checked_actions(backend: Any, transact_items: list[dict[str, Any]]) -> list[Action]:
    """The request's actions as (type, request, key), or the ValidationException DynamoDB answers to a
    request malformed as a whole."""
    if len(transact_items) > MAX_TRANSACT_ITEMS:
        raise TooManyTransactionsException()
    actions: list[Action] = []
    targets: set[tuple[str, str]] = set()
    for entry in transact_items:
        if len(entry) != 1:
            raise TransactWriteSingleOpException()
        action, request = next(iter(entry.items()))
        if action not in ("ConditionCheck", "Put", "Delete", "Update"):
            raise ValueError(f"Unsupported transaction operation {action}")
        key = _key_of(backend, action, request)
        target = (str(request["TableName"]), repr(sorted(key.items())))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        actions.append((action, request, key))
    return actions


def _apply_action(backend: Any, action: str, request: dict[str, Any], key: dict[str, Any]) -> Reason:
    """Check one action's condition and apply its write; its cancellation reason (code, message, old
    item), all None when it succeeded."""
    table_name = request["TableName"]
    condition = request.get("ConditionExpression")
    names = request.get("ExpressionAttributeNames")
    values = request.get("ExpressionAttributeValues")
    try:
        current = backend.get_item(table_name, key)
        if condition is not None and not get_filter_expression(condition, names, values).expr(current):
            old = None
            if request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None:
                old = current.to_json()["Attributes"]
            return ("ConditionalCheckFailed", "The conditional request failed", old)
        if action == "Put":
            backend.put_item(table_name, request["Item"], condition_expression=condition,
                          expression_attribute_names=names, expression_attribute_values=values)
        elif action == "Delete":
            backend.delete_item(table_name, key, condition_expression=condition,
                             expression_attribute_names=names, expression_attribute_values=values)
        elif action == "Update":
            backend.update_item(table_name, key, update_expression=request["UpdateExpression"],
                             condition_expression=condition, expression_attribute_names=names,
                             expression_attribute_values=values)
        return (None, None, None)
    except ConditionalCheckFailed as exc:
        return ("ConditionalCheckFailed", str(exc.message), None)
    except Exception as exc:  # any other refusal of one action cancels the transaction, as moto does
        return (type(exc).__name__, str(exc), None)


def _key_of(backend: Any, action: str, request: dict[str, Any]) -> dict[str, Any]:
    """The primary key an action names: its `Key`, or the key attributes of a Put's `Item`."""
    if action != "Put":
        return dict(request["Key"])
    table = backend.get_table(request["TableName"])
    item = request["Item"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def _saved_item(backend: Any, table_name: str, key: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(table, hash value, range value, a copy of the item or None) to put back on a rollback."""
    table = backend.get_table(table_name)
    hash_value, range_value = backend.get_keys_value(table, key)
    return table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))


def _restore_item(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
    """Put the table's item at (hash, range) back as it was: `item`, or absent when None."""
    if range_value is not None:
        rows = table.items[hash_value]
        if item is None:
            rows.pop(range_value, None)
        else:
            rows[range_value] = item
    elif item is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = item


transact_write_items_undo_log._nerloop_undo_log = True  # type: ignore[attr-defined]
