"""What every repository of the state table shares: the table, key reads, batched reads, conditional
updates and transactions. The repositories build their items; this module knows only pk/sk."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

BATCH_GET_KEYS = 100  # BatchGetItem takes at most 100 keys
TRANSACTION_ITEMS = 100  # TransactWriteItems takes at most 100 actions
TRANSACTION_BYTES = 3_000_000  # and 4 MB in all: stay well below it


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def is_cancelled(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "TransactionCanceledException"


def set_expression(attributes: dict[str, Any], names: dict[str, str], values: dict[str, Any],
                   sets: list[str]) -> str:
    """`SET` over `sets` and `attributes` (named #a0.., valued :a0..), filling `names` and `values`."""
    for index, (name, value) in enumerate(attributes.items()):
        names[f"#a{index}"] = name
        values[f":a{index}"] = value
        sets.append(f"#a{index} = :a{index}")
    return "SET " + ", ".join(sets)


class TableAccess:
    """One DynamoDB table (pk, sk) as the repositories read and write it."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def name(self) -> str:
        return str(self.table.name)

    def query_all(self, pk: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.query_pages(pk, **kwargs):
            yield from page.get("Items", [])

    def query_pages(self, pk: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk), **kwargs}
        while True:
            page = self.table.query(**params)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def any_item(self, pk: str, consistent: bool = False) -> bool:
        """True when the family `pk` holds any item (one item read, however large the family)."""
        reply = self.table.query(KeyConditionExpression=Key("pk").eq(pk), Limit=1, ProjectionExpression="sk",
                                 **({"ConsistentRead": True} if consistent else {}))
        return bool(reply.get("Items"))

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")

    def batch_get(self, pk: str, sks: Iterable[str], consistent: bool = False) -> dict[str, dict[str, Any]]:
        """Many items of one family by sort key; `consistent` asks for strongly consistent reads."""
        return {sk: item for (_, sk), item in self.get_items([(pk, sk) for sk in sks], consistent).items()}

    def get_items(self, keys: Iterable[tuple[str, str]], consistent: bool = True,
                  backoff: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
        """The items at `keys` ((pk, sk) pairs, of any families; missing ones left out), 100 keys a
        BatchGetItem request, unprocessed keys asked again (after a pause when `backoff`)."""
        # The resource's own client takes and returns plain Python values.
        client = self.table.meta.client
        found: dict[tuple[str, str], dict[str, Any]] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.name: {"Keys": [{"pk": pk, "sk": sk} for pk, sk in wanted[start : start + BATCH_GET_KEYS]],
                            **({"ConsistentRead": True} if consistent else {})}
            }
            attempt = 0
            while request:
                if attempt and backoff:  # throttled: back off before asking again
                    time.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))
                reply = client.batch_get_item(RequestItems=request)
                for item in reply["Responses"].get(self.name, []):
                    found[(item["pk"], item["sk"])] = item
                request = reply.get("UnprocessedKeys") or {}
                attempt += 1
        return found

    def update(self, pk: str, sk: str, attributes: dict[str, Any]) -> None:
        """Set `attributes` on the item (pk, sk), unconditionally."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        self.table.update_item(Key={"pk": pk, "sk": sk}, UpdateExpression=set_expression(attributes, names, values, []),
                               ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def put_if_new(self, item: dict[str, Any]) -> bool:
        """Put `item` unless its key holds one already; False (nothing written) when it does."""
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def write(self, actions: list[dict[str, Any]]) -> None:
        """TransactWriteItems of `actions` (all or nothing); any cancellation is raised."""
        self.table.meta.client.transact_write_items(TransactItems=actions)

    def transact(self, actions: list[dict[str, Any]]) -> bool:
        """Write `actions` in one transaction (all or nothing); False (and nothing changed) when the
        first action's condition fails. Any other cancellation is raised."""
        try:
            self.write(actions)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if is_cancelled(exc) and reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True
