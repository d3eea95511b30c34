"""Human loops.

- LOOP / <loop name>      a human loop: document, version, status
- OPEN-LOOP / <loop name> present while that loop is InProgress: written and deleted in the same
                          transaction as the loop's status, so "is any loop open?" is one read

A loop's end is the decision that moves the other families with it: `complete_counted` counts the
review, `merge_review` also writes its gold labels and marks the pool, each in one transaction. They
live here, in the family that owns the decision, and build the other families' actions with those
families' own helpers (`pool_update`, `counter_add`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from nerloop.state._table import TRANSACTION_ITEMS, TableAccess, is_cancelled, is_condition_failure, now
from nerloop.state.coordination import counter_add
from nerloop.state.items import GOLD, LOOP_OPEN, OPEN_LOOP_PK, GoldDocument, Loop, gold_item_of, loop_from_item
from nerloop.state.pool import pool_update

if TYPE_CHECKING:
    from collections.abc import Iterable

PK = "LOOP"


class LoopRepository:
    """Human loops and their open-loop markers."""

    def __init__(self, access: TableAccess) -> None:
        self.access = access

    def put(self, loop: Loop) -> bool:
        """Record a started human loop; False when a loop of that name is already recorded. An open
        loop (InProgress) gets its OPEN-LOOP marker in the same transaction."""
        return self.access.transact(self._puts(loop, now()))

    def put_many(self, loops: list[Loop]) -> list[bool]:
        """`put` for many loops, up to 50 in one transaction (each open loop is two actions: the
        loop and its marker): for each, True when it was recorded now, False when a loop of that name
        was already recorded. When any is already there the transaction records nothing, and each
        loop is then recorded on its own."""
        recorded: list[bool] = []
        per_transaction = TRANSACTION_ITEMS // 2
        for start in range(0, len(loops), per_transaction):
            chunk = loops[start : start + per_transaction]
            if len(chunk) > 1 and len({loop.name for loop in chunk}) == len(chunk):
                stamp = now()
                try:
                    self.access.write([action for loop in chunk for action in self._puts(loop, stamp)])
                except ClientError as exc:
                    if not is_cancelled(exc):
                        raise
                else:
                    recorded.extend(True for _ in chunk)
                    continue
            recorded.extend(self.put(loop) for loop in chunk)
        return recorded

    def _puts(self, loop: Loop, stamp: str) -> list[dict[str, Any]]:
        """The transaction actions recording `loop`: the loop (only if new), and its open-loop marker."""
        actions: list[dict[str, Any]] = [{"Put": {
            "TableName": self.access.name,
            "Item": {"pk": PK, "sk": loop.name, "doc": loop.doc, "version": loop.version,
                     "status": loop.status, "failure": loop.failure, "started_at": stamp},
            "ConditionExpression": "attribute_not_exists(pk)"}}]
        if loop.status == LOOP_OPEN:
            actions.append({"Put": {"TableName": self.access.name,
                                    "Item": {"pk": OPEN_LOOP_PK, "sk": loop.name, "opened_at": stamp}}})
        return actions

    def get(self, name: str) -> Loop | None:
        item = self.access.get(PK, name)
        return loop_from_item(item) if item else None

    def any_open(self) -> bool:
        """True while any human loop is InProgress: one strongly consistent read of at most one
        marker, however many loops there are (markers are written and deleted with the loop's
        status, in one transaction: `put`, `finish`, `complete_counted`, `merge_review`)."""
        return self.access.any_item(OPEN_LOOP_PK, consistent=True)

    def open_unchecked_since(self, stamp: str, limit: int) -> list[str]:
        """Up to `limit` open loops neither opened nor checked since `stamp` (a `now()` stamp),
        least recently checked first."""
        markers = self.access.query_all(OPEN_LOOP_PK, ProjectionExpression="sk, opened_at, checked_at",
                                        ConsistentRead=True)
        seen = sorted((max(str(m.get("opened_at", "")), str(m.get("checked_at", ""))), str(m["sk"]))
                      for m in markers)
        return [name for last, name in seen if last < stamp][:limit]

    def mark_checked(self, name: str, stamp: str) -> None:
        """Note that loop `name` was found still open at `stamp` (unless it has closed meanwhile)."""
        try:
            self.access.table.update_item(
                Key={"pk": OPEN_LOOP_PK, "sk": name}, UpdateExpression="SET checked_at = :at",
                ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues={":at": stamp})
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def finish(self, name: str, status: str, failure: str = "") -> bool:
        """Move a loop from InProgress to `status` and drop its open-loop marker, in one transaction;
        False (and nothing changed) when it had already finished (a redelivery)."""
        return self.access.transact([self._finish(name, status, failure), self._open_delete(name)])

    def complete_counted(self, name: str, counter: str, first_epoch: int | None = None) -> bool:
        """Move a loop from InProgress to Completed, drop its open-loop marker and add 1 to `counter`,
        in one transaction; False (and nothing changed) when the loop had already finished.

        One transaction, so a failure between the writes cannot leave a finished loop whose review
        was never counted (a retry would find the loop finished and count nothing), nor a finished
        loop still counted as open. `first_epoch`: see `CounterRepository.add`."""
        return self.access.transact([self._finish(name, "Completed", ""),
                                     counter_add(self.access.name, counter, 1, first_epoch),
                                     self._open_delete(name)])

    def merge_review(self, name: str, gold: GoldDocument, counter: str, first_epoch: int | None = None) -> bool:
        """`complete_counted` with the review's gold labels in the same transaction: the gold
        document put (replacing earlier labels, as `GoldRepository.put`) and its pool item marked gold.
        All or nothing, so a retry never finds labels written for a loop still open, nor a finished
        loop without its labels; False (and nothing changed) when the loop had already finished.

        A document no longer in the pool fails the pool update's condition and cancels the
        transaction; it is then written without that update, as `GoldRepository.put` leaves such a
        document alone. DynamoDB lists a cancelled transaction's `CancellationReasons` in the order of
        its actions, and no two actions may target one item (botocore `dynamodb`
        TransactionCanceledException, TransactWriteItems;
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html)."""
        table = self.access.name
        pool = pool_update(table, gold.doc, GOLD, {}, now())
        actions = [self._finish(name, "Completed", ""), {"Put": {"TableName": table, "Item": gold_item_of(gold)}},
                   pool, self._open_delete(name), counter_add(table, counter, 1, first_epoch)]
        try:
            return self.access.transact(actions)
        except ClientError as exc:
            failed = [reason.get("Code") == "ConditionalCheckFailed"
                      for reason in exc.response.get("CancellationReasons") or []]
            if len(failed) != len(actions) or failed.count(True) != 1 or not failed[actions.index(pool)]:
                raise
        return self.access.transact([action for action in actions if action is not pool])

    def _finish(self, name: str, status: str, failure: str) -> dict[str, Any]:
        return {"Update": {
            "TableName": self.access.name, "Key": {"pk": PK, "sk": name},
            "UpdateExpression": "SET #status = :status, failure = :failure, finished_at = :now",
            "ConditionExpression": "attribute_exists(pk) AND #status = :open",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": status, ":failure": failure, ":now": now(),
                                          ":open": LOOP_OPEN},
        }}

    def _open_delete(self, name: str) -> dict[str, Any]:
        # Unconditional: a loop recorded before markers existed has none, and deleting nothing is fine.
        return {"Delete": {"TableName": self.access.name, "Key": {"pk": OPEN_LOOP_PK, "sk": name}}}

    # Last: below it, `list` in an annotation would name this method.
    def list(self, statuses: Iterable[str] | None = None) -> list[Loop]:
        """Every loop (those of `statuses` only, when given), in name order."""
        wanted = set(statuses) if statuses is not None else None
        return [loop_from_item(item) for item in self.access.query_all(PK)
                if wanted is None or item.get("status") in wanted]
