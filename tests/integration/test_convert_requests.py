"""Convert's gold writes (issue 13): a document met again in a later batch is written again only when
its labels changed, so gold writes follow the distinct documents, not the manifest's lines."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.client import BaseClient

from nerloop.stages import convert
from tests.integration.test_convert import completed_job


def line(text: str, entities: list[tuple[int, int, str]]) -> bytes:
    return json.dumps({
        "source": text,
        "job": {"annotations": {"entities": [{"startOffset": b, "endOffset": e, "label": t} for b, e, t in entities]}},
        "job-metadata": {"type": "groundtruth/text-span", "job-name": "labeling-job/job"},
    }).encode() + b"\n"


@pytest.fixture
def gold_puts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sort key of every gold item a BatchWriteItem request puts."""
    written: list[str] = []
    call = BaseClient._make_api_call

    def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "BatchWriteItem":
            # the table resource's client is handed plain values (boto3 serializes them after this point)
            written.extend(request["PutRequest"]["Item"]["sk"] for requests in params["RequestItems"].values()
                           for request in requests if request["PutRequest"]["Item"]["pk"] == "GOLD")
        return call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    return written


@pytest.mark.parametrize(("again", "writes"), [
    ([(0, 9, "SERVICE")], 2),  # the same label again: nothing new
    ([], 2),  # unlabelled the second time
    ([(10, 19, "VERSION")], 3),  # a new label: the union is written
])
def test_a_repeat_in_a_later_batch_is_written_again_only_with_new_labels(
    emulated, event, lambda_context, sagemaker_stub, monkeypatch, gold_puts, again, writes
):
    # Given a batch of one document, and a document met again two batches later
    monkeypatch.setattr(convert, "GOLD_BUFFER", 1)
    text = "Amazon S3 version 2 is out"
    completed_job(emulated, event, sagemaker_stub,
                  line(text, [(0, 9, "SERVICE")]) + line("AWS Lambda is here", [(0, 10, "SERVICE")])
                  + line(text, again), attribute="job")

    result = emulated.handler("ConvertFunction")(event("convert"), lambda_context)

    # Then it is written again only when the repeat added a label; the gold set holds the union either way
    assert len(gold_puts) == writes and result["documents"] == 2 and result["repeated"] == 1
    spans = {gold.text: [(s.begin, s.end, s.type) for s in gold.spans] for gold in emulated.state.gold.documents()}
    assert spans[text] == sorted({(0, 9, "SERVICE"), *again})
