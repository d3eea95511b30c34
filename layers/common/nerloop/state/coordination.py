"""Small items that coordinate the stages.

- COUNTER / <name>   atomic counters (reviews, snapshots)
- COUNTED / <marker> an effect already counted (`CounterRepository.count_once`)
- LOCK / TRAINING    the single-flight training lock
- LABELING / SEED    the batch whose Ground Truth job labels the seed set
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from nerloop.state._table import TableAccess, is_condition_failure, now
from nerloop.state.items import COUNTER_FIRST

COUNTER_PK = "COUNTER"
LOCK_KEY = {"pk": "LOCK", "sk": "TRAINING"}
SEED_KEY = {"pk": "LABELING", "sk": "SEED"}


def counter_add(table_name: str, counter: str, amount: int, first_epoch: int | None) -> dict[str, Any]:
    """The Update action adding `amount` to `counter` (and remembering `first_epoch`, see `add`)."""
    expression, values = "ADD #value :amount", {":amount": amount}
    names = {"#value": "value"}
    if first_epoch is not None:
        expression += " SET #first = if_not_exists(#first, :first)"
        names["#first"] = COUNTER_FIRST
        values[":first"] = first_epoch
    return {"Update": {"TableName": table_name, "Key": {"pk": COUNTER_PK, "sk": counter},
                       "UpdateExpression": expression, "ExpressionAttributeNames": names,
                       "ExpressionAttributeValues": values}}


class CounterRepository:
    """Atomic counters (atomic ADD), and counts made once however often their effect is retried."""

    def __init__(self, access: TableAccess) -> None:
        self.access = access

    def add(self, name: str, amount: int = 1, first_epoch: int | None = None) -> int:
        """Atomically add `amount` to a counter and return its new value. With `first_epoch`, the
        counter also remembers that time unless it holds one already: when the first count since
        `restamp` last cleared it was made."""
        update = counter_add(self.access.name, name, amount, first_epoch)["Update"]
        reply = self.access.table.update_item(
            Key=update["Key"], UpdateExpression=update["UpdateExpression"],
            ExpressionAttributeNames=update["ExpressionAttributeNames"],
            ExpressionAttributeValues=update["ExpressionAttributeValues"], ReturnValues="UPDATED_NEW",
        )
        return int(reply["Attributes"]["value"])

    def get(self, name: str) -> int:
        item = self.access.get(COUNTER_PK, name)
        return int(item["value"]) if item else 0

    def get_stamped(self, name: str) -> tuple[int, int | None]:
        """A counter's value and the time (epoch seconds) it remembers (None when it holds none)."""
        item = self.access.get(COUNTER_PK, name) or {}
        first = item.get(COUNTER_FIRST)
        return int(item.get("value", 0)), (int(first) if first is not None else None)

    def restamp(self, name: str, value: int, taken_epoch: int) -> None:
        """The counts up to `value` were consumed at `taken_epoch` (read before that time): forget
        the remembered time when no count came after them, else move it up to `taken_epoch` (those
        later counts were made after the read). Each write is conditional and never moves the time
        back, so a repeat, or one that arrives late, changes nothing."""
        for update, condition in (
            ("REMOVE #first", "#value = :value AND #first <= :taken"),
            ("SET #first = :taken", "#value > :value AND #first < :taken"),
            ("SET #first = :taken", "#value > :value AND attribute_not_exists(#first)"),
        ):
            if self._update_if(name, update, condition, {":taken": taken_epoch, ":value": value}):
                return

    def set(self, name: str, value: int) -> None:
        """Raise a counter to `value` (never lowers it, so a late redelivery cannot undo progress)."""
        self._update_if(name, "SET #value = :value", "attribute_not_exists(#value) OR #value < :value",
                        {":value": value})

    def _update_if(self, name: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        """Update counter `name` if `condition` holds; False (nothing changed) when it does not."""
        names = {"#value": "value", **({"#first": COUNTER_FIRST} if "#first" in update + condition else {})}
        try:
            self.access.table.update_item(Key={"pk": COUNTER_PK, "sk": name}, UpdateExpression=update,
                                          ConditionExpression=condition, ExpressionAttributeNames=names,
                                          ExpressionAttributeValues=values)
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False
        return True

    def count_once(self, marker: str, counter: str) -> bool:
        """Add 1 to `counter` unless `marker` was counted before: the marker item (COUNTED /
        <marker>) and the count are written in one transaction, so a retried effect counts once.
        False (and nothing changed) when the marker was already there."""
        return self.access.transact([{"Update": {
            "TableName": self.access.name, "Key": {"pk": "COUNTED", "sk": marker},
            "UpdateExpression": "SET #counter = :counter, counted_at = :now",
            "ConditionExpression": "attribute_not_exists(pk)",
            "ExpressionAttributeNames": {"#counter": "counter"},
            "ExpressionAttributeValues": {":counter": counter, ":now": now()},
        }}, counter_add(self.access.name, counter, 1, None)])


class TrainingLock:
    """The single-flight training lock."""

    def __init__(self, access: TableAccess) -> None:
        self.access = access

    def acquire(self, holder: str, stale_after_seconds: int = 24 * 3600) -> bool:
        """Take the lock; False when another training holds it.

        A lock older than `stale_after_seconds` is taken over, so a lost release cannot stop the loop.
        A lock `holder` already holds is left as it is: it may carry what its snapshot still owes
        (`rename`), which a new item would drop.
        """
        acquired = int(time.time())
        try:
            self.access.table.put_item(
                Item={**LOCK_KEY, "holder": holder, "acquired_at": now(), "acquired_epoch": acquired},
                ConditionExpression="attribute_not_exists(pk) OR acquired_epoch < :stale",
                ExpressionAttributeValues={":stale": acquired - stale_after_seconds},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return self.holder() == holder
            raise
        return True

    def rename(self, holder: str, new_holder: str, **owed: int) -> None:
        """Hand the lock to `new_holder`, recording `owed` (counter name → value) with it: counters
        to raise once the holder's snapshot is written (see `owed`)."""
        names = {f"#o{i}": f"owed_{name}" for i, name in enumerate(owed)}
        values: dict[str, Any] = {":new": new_holder, ":old": holder}
        values.update({f":o{i}": value for i, value in enumerate(owed.values())})
        sets = ["holder = :new", *(f"#o{i} = :o{i}" for i in range(len(owed)))]
        self.access.table.update_item(
            Key=LOCK_KEY,
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="holder = :old",
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),
        )

    def owed(self, holder: str) -> dict[str, int]:
        """The counters `holder` recorded with the lock (empty when it does not hold it)."""
        item = self.access.get(LOCK_KEY["pk"], LOCK_KEY["sk"])
        if item is None or item.get("holder") != holder:
            return {}
        return {name.removeprefix("owed_"): int(value) for name, value in item.items() if name.startswith("owed_")}

    def holder(self) -> str | None:
        item = self.access.get(LOCK_KEY["pk"], LOCK_KEY["sk"])
        return item["holder"] if item else None

    def release(self, holder: str) -> None:
        """Release the lock if `holder` still holds it (a redelivered release does nothing)."""
        try:
            self.access.table.delete_item(Key=LOCK_KEY, ConditionExpression="holder = :holder",
                                          ExpressionAttributeValues={":holder": holder})
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise


class SeedLabeling:
    """Which batch's Ground Truth job labels the seed set (one at a time)."""

    def __init__(self, access: TableAccess) -> None:
        self.access = access

    def claim(self, batch: str, replacing: str | None = None) -> bool:
        """Make `batch` the one whose Ground Truth job labels the seed set; False when another batch
        holds that place. `replacing` names a holder whose job ended without labels: it is taken over."""
        condition = "attribute_not_exists(pk) OR #batch = :batch"
        values = {":batch": batch}
        if replacing:
            condition += " OR #batch = :old"
            values[":old"] = replacing
        try:
            self.access.table.put_item(
                Item={**SEED_KEY, "batch": batch, "claimed_at": now()},
                ConditionExpression=condition,
                ExpressionAttributeNames={"#batch": "batch"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def batch(self) -> str | None:
        item = self.access.get(SEED_KEY["pk"], SEED_KEY["sk"])
        return str(item["batch"]) if item else None
