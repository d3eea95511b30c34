"""GOLD / <doc hash>: the gold set, documents with the spans people agreed on."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from nerloop.state._table import TableAccess
from nerloop.state.items import GOLD, GoldDocument, gold_from_item, gold_item_of
from nerloop.state.pool import PoolRepository

PK = "GOLD"


class GoldRepository:
    """The gold set. Writing a gold document also marks its pool item gold."""

    def __init__(self, access: TableAccess, pool: PoolRepository) -> None:
        self.access = access
        self.pool = pool

    def put(self, gold: GoldDocument) -> None:
        """Write a gold document; a later write of the same document replaces the earlier labels."""
        self.access.table.put_item(Item=gold_item_of(gold))
        self.pool.mark(gold.doc, GOLD)

    def get(self, doc: str) -> GoldDocument | None:
        item = self.access.get(PK, doc)
        return gold_from_item(item) if item else None

    def get_many(self, docs: Iterable[str]) -> dict[str, GoldDocument]:
        """The gold documents among `docs`, by hash (100 a BatchGetItem request), read strongly
        consistent as `get` is: the convert stage reads back what it wrote a moment before."""
        return {doc: gold_from_item(item) for doc, item in self.access.batch_get(PK, docs, consistent=True).items()}

    def documents(self) -> Iterator[GoldDocument]:
        """Every gold document, in document-hash order (stable, so snapshots are repeatable)."""
        for item in self.access.query_all(PK):
            yield gold_from_item(item)

    def has_any(self) -> bool:
        """True once the gold set holds any document (one item read, however large the set)."""
        return self.access.any_item(PK)

    def hashes(self, docs: Iterable[str]) -> set[str]:
        """Which of `docs` are in the gold set."""
        return set(self.access.batch_get(PK, docs))


class TableWithPool(Protocol):
    """What the batch writer needs of a StateTable (nerloop.state.table, which builds this module's
    repository): the table resource and the pool repository."""

    @property
    def table(self) -> Any: ...

    @property
    def pool(self) -> PoolRepository: ...


class GoldBatchWriter:
    """`GoldRepository.put` for many documents at once (the convert stage's).

    Apart from the repositories because IAM grants are checked per function against every method of
    the classes it uses (tests/unit/test_template.py), and only the convert stage needs BatchWriteItem.

    A manifest of a million lines would cost two requests a document through `put`: this writes
    25 gold items a BatchWriteItem request, up to `WRITERS` requests at a time on a small thread
    pool (the requests are independent: each names other items), then one BatchGetItem per 100
    documents finds which are in the pool, and only those get the pool update `put` makes.
    Threads share the table resource's low-level client, which boto3 documents as thread-safe
    (resources are not, so no thread touches `table` itself).
    """

    BATCH = 25  # DynamoDB's BatchWriteItem limit
    ATTEMPTS = 8
    WRITERS = 4  # requests in flight at once; DynamoDB on-demand takes far more, Lambda's CPU fewer

    def __init__(self, state: TableWithPool, writers: int = WRITERS) -> None:
        self.pool = state.pool
        self.client = state.table.meta.client  # the resource's client takes plain Python values
        self.table_name = state.table.name
        self._threads = (ThreadPoolExecutor(max_workers=writers, thread_name_prefix="gold-writer")
                         if writers > 1 else None)

    def put_gold_many(self, golds: Iterable[GoldDocument]) -> int:
        """Write `golds` as `GoldRepository.put` would; a document named twice is written once, with
        its last labels. Returns how many pooled documents were marked GOLD. Every request has
        succeeded when it returns (the first failure is raised)."""
        latest = {gold.doc: gold for gold in golds}  # one request may not name a key twice
        items = [gold_item_of(gold) for gold in latest.values()]
        chunks = [items[start:start + self.BATCH] for start in range(0, len(items), self.BATCH)]
        if self._threads is None or len(chunks) < 2:
            for chunk in chunks:
                self._batch_put(chunk)
        else:
            for done in [self._threads.submit(self._batch_put, chunk) for chunk in chunks]:
                done.result()  # waits for all of them, in order; raises the first failure
        return sum(self.pool.mark(doc, GOLD) for doc in self.pool.pooled(latest))

    def close(self) -> None:
        """Stop the writer threads (they idle until then)."""
        if self._threads is not None:
            self._threads.shutdown(wait=True)

    def __enter__(self) -> GoldBatchWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        """Put up to 25 items in one BatchWriteItem, retrying what DynamoDB leaves unprocessed.

        DynamoDB returns the puts it did not make in `UnprocessedItems` (throttling, an internal
        error) and recommends retrying them with exponential back-off ("BatchWriteItem":
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html)."""
        request: dict[str, Any] = {self.table_name: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(self.ATTEMPTS):
            reply = self.client.batch_write_item(RequestItems=request)
            request = reply.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(min(0.05 * 2 ** attempt, 2.0))  # throttled: back off before the rest
        left = sum(len(requests) for requests in request.values())
        raise StateWriteIncomplete(f"{left} item(s) still unprocessed after {self.ATTEMPTS} BatchWriteItem attempts")


class StateWriteIncomplete(Exception):
    """DynamoDB kept leaving items of a batch write unprocessed (throttling outlasted the retries)."""
