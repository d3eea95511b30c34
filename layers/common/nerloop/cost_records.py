"""What the loop records, as it goes, for pricing its rounds (`nerloop.round_cost`).

Item families in the state table, beside those `nerloop.state` keeps:
- COST-DETECT-INPUT / <input key>  a detection job's input as Comprehend bills it: documents, characters,
                                   units (100 characters, at least 3 a document: `nerloop.pricing`);
                                   written when the input is made, before the job starts
- COST-LABELING / <job name>       a completed Ground Truth labeling job's LabelCounters.TotalLabeled
                                   (botocore sagemaker model, DescribeLabelingJob; Ground Truth bills each
                                   object labeled, by people or by its automated labeling)

A version's training time is kept on its VERSION item (`training_started_at`, `training_ended_at`: the
TrainingStartTime / TrainingEndTime DescribeEntityRecognizer answers, botocore comprehend model), written
by the watch stage with the status change it reads them with. Human loops are the LOOP items.

A repeated write has no second effect: a detection input's measure is fixed by its key (the same
item is put again), a labeling job's record is put only once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from nerloop.pricing import inference_units
from nerloop.state import now

DETECT_INPUT_PK = "COST-DETECT-INPUT"
LABELING_PK = "COST-LABELING"
TRAINING_TIMES = {"TrainingStartTime": "training_started_at", "TrainingEndTime": "training_ended_at"}


@dataclass(frozen=True)
class InputMeasure:
    """A detection input as billed: its documents, their characters and Comprehend's units."""

    documents: int = 0
    characters: int = 0
    units: int = 0

    def add(self, text: str) -> InputMeasure:
        """This measure with one more document of `text`."""
        return InputMeasure(self.documents + 1, self.characters + len(text),
                            self.units + inference_units(len(text)))


@dataclass(frozen=True)
class LabelingRecord:
    """A completed labeling job: the objects Ground Truth labeled, and when the loop converted them."""

    job: str
    labeled: int
    recorded_at: str


def measure_lines(lines: Iterable[bytes]) -> InputMeasure:
    """The measure of a ONE_DOC_PER_LINE input (one document a line, UTF-8)."""
    measure = InputMeasure()
    for line in lines:
        measure = measure.add(line.decode("utf-8").rstrip("\r\n"))
    return measure


def record_detection_input(table: Any, input_key: str, measure: InputMeasure) -> None:
    table.put_item(Item={"pk": DETECT_INPUT_PK, "sk": input_key, "documents": measure.documents,
                         "characters": measure.characters, "units": measure.units})


def detection_inputs(table: Any) -> dict[str, InputMeasure]:
    """Every recorded detection input's measure, by input key."""
    return {str(item["sk"]): InputMeasure(int(item["documents"]), int(item["characters"]), int(item["units"]))
            for item in _query(table, DETECT_INPUT_PK)}


def record_labeling_job(table: Any, job: str, described: Mapping[str, Any]) -> None:
    """Keep a labeling job's labeled-object count, from its DescribeLabelingJob answer. Only the first
    record stands: a conversion run again keeps the time that places the job before its round."""
    counters = described.get("LabelCounters") or {}
    try:
        table.put_item(Item={"pk": LABELING_PK, "sk": job, "labeled": int(counters.get("TotalLabeled") or 0),
                             "recorded_at": now()}, ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise


def labeling_jobs(table: Any) -> list[LabelingRecord]:
    return [LabelingRecord(str(item["sk"]), int(item["labeled"]), str(item.get("recorded_at", "")))
            for item in _query(table, LABELING_PK)]


def training_times(properties: Mapping[str, Any]) -> dict[str, str]:
    """The version item's training_started_at / training_ended_at (ISO 8601, UTC) from
    EntityRecognizerProperties; only those present. Named *_at, as the loop's other times are."""
    times = {}
    for field, attribute in TRAINING_TIMES.items():
        value = properties.get(field)
        if isinstance(value, datetime):
            times[attribute] = value.isoformat()
        elif value:
            times[attribute] = str(value)
    return times


def _query(table: Any, pk: str) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk)}
    while True:
        page = table.query(**params)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
