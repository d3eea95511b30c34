"""POOL / <doc hash>: documents waiting for the model, accepted, in review or gold.

The route stage reads and writes the pool once per document of a detection output: `get_items` reads
100 pool items per BatchGetItem and `mark_many` makes up to 100 conditional changes per
TransactWriteItems (IAM authorizes a transaction by its items' actions: UpdateItem, PutItem), not one
request each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from nerloop.state._table import (
    TRANSACTION_BYTES,
    TRANSACTION_ITEMS,
    TableAccess,
    is_cancelled,
    is_condition_failure,
    now,
    set_expression,
)
from nerloop.state.items import WAITING, PoolDocument, pool_from_item

PK = "POOL"
Change = tuple[str, str, dict[str, str]]  # (doc, status, attributes)


def pool_update(table_name: str, doc: str, status: str, attributes: dict[str, str], stamp: str,
                unless: list[str] | None = None) -> dict[str, Any]:
    """The Update action `mark` makes: set the status (and `attributes`) if pooled and its status is
    none of `unless`."""
    names = {"#status": "status", "#updated": "updated_at"}
    values: dict[str, Any] = {":status": status, ":now": stamp}
    skip = unless or []
    values.update({f":not{i}": value for i, value in enumerate(skip)})
    expression = set_expression(attributes, names, values, ["#status = :status", "#updated = :now"])
    condition = "attribute_exists(pk)" + "".join(f" AND #status <> :not{i}" for i in range(len(skip)))
    return {"Update": {"TableName": table_name, "Key": {"pk": PK, "sk": doc}, "UpdateExpression": expression,
                       "ConditionExpression": condition, "ExpressionAttributeNames": names,
                       "ExpressionAttributeValues": values}}


class PoolRepository:
    """The pool of documents."""

    def __init__(self, access: TableAccess) -> None:
        self.access = access

    def add(self, doc: str, text: str, batch: str) -> bool:
        """Add a document to the pool; False when it is already there (or already gold)."""
        return self.access.put_if_new({"pk": PK, "sk": doc, "text": text, "status": WAITING, "batch": batch,
                                       "seen_by": "", "updated_at": now()})

    def get(self, doc: str) -> PoolDocument | None:
        item = self.access.get(PK, doc)
        return pool_from_item(item) if item else None

    def documents(self, statuses: Iterable[str] | None = None) -> Iterator[PoolDocument]:
        """Every pooled document (those of `statuses` only, when given), in document-hash order."""
        wanted = set(statuses) if statuses is not None else None
        for item in self.access.query_all(PK):
            if wanted is None or item.get("status") in wanted:
                yield pool_from_item(item)

    def pooled(self, docs: Iterable[str]) -> list[str]:
        """Which of `docs` are in the pool."""
        return list(self.access.batch_get(PK, docs))

    def mark(self, doc: str, status: str, **attributes: str) -> bool:
        """Set a pooled document's status; False when the document is not in the pool."""
        update = pool_update(self.access.name, doc, status, attributes, now())["Update"]
        try:
            self.access.table.update_item(**{name: value for name, value in update.items() if name != "TableName"})
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def get_items(self, docs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The pool items (every attribute) of those of `docs` that are pooled, by hash; read
        consistently, 100 a request, unprocessed keys asked again after a pause."""
        found = self.access.get_items([(PK, doc) for doc in docs], consistent=True, backoff=True)
        return {sk: item for (_, sk), item in found.items()}

    @staticmethod
    def document(item: dict[str, Any]) -> PoolDocument:
        """A pool item (as `get_items` returns it) as a PoolDocument."""
        return pool_from_item(item)

    def mark_many(self, changes: Iterable[Change], unless: Iterable[str] = ()) -> list[str]:
        """Make many `mark` changes, each (doc, status, attributes), leaving alone a document whose
        current status is one of `unless`. Returns the documents changed (not those absent from the
        pool or left alone).

        Up to 100 changes go in one transaction; when any of them cannot be made (its condition
        fails, or a concurrent write conflicts), the transaction changes nothing and each of its
        changes is then made on its own. A document named twice is changed in the given order."""
        skip = list(dict.fromkeys(unless))
        stamp = now()
        changed: list[str] = []
        for chunk in transactions(changes):
            updates = [pool_update(self.access.name, doc, status, attributes, stamp, skip)
                       for doc, status, attributes in chunk]
            if len(updates) > 1:
                try:
                    self.access.write(updates)
                except ClientError as exc:
                    if not is_cancelled(exc):
                        raise
                else:
                    changed.extend(doc for doc, _, _ in chunk)
                    continue
            changed.extend(self._mark_each([update["Update"] for update in updates]))
        return changed

    def _mark_each(self, updates: list[dict[str, Any]]) -> Iterator[str]:
        """One change, or a cancelled transaction's: each on its own; yields the documents changed."""
        for update in updates:
            try:
                self.access.table.update_item(**{name: value for name, value in update.items() if name != "TableName"})
            except ClientError as exc:
                if is_condition_failure(exc):
                    continue
                raise
            yield update["Key"]["sk"]


def transactions(changes: Iterable[Change]) -> Iterator[list[Change]]:
    """`changes` cut into transactions: at most 100 each, below the size limit, no item twice."""
    chunk: list[Change] = []
    docs: set[str] = set()
    size = 0
    for change in changes:
        doc, status, attributes = change
        bytes_ = 200 + len(doc) + len(status) + sum(len(k) + len(v) for k, v in attributes.items())
        if chunk and (doc in docs or len(chunk) == TRANSACTION_ITEMS or size + bytes_ > TRANSACTION_BYTES):
            yield chunk
            chunk, docs, size = [], set(), 0
        chunk.append(change)
        docs.add(doc)
        size += bytes_
    if chunk:
        yield chunk
