"""Event models, settings and recognizer helpers agree with the shared constants and AWS's rules."""

from __future__ import annotations

import typing

import pytest

from nerloop import constants, event_catalog
from nerloop.documents import document_hash, split_sentences
from nerloop.recognizer_versions import metrics_from_metadata
from nerloop.settings import SettingsError, load_settings


def literal(model: type, field: str) -> str:
    (value,) = typing.get_args(model.model_fields[field].annotation)
    return value


def test_event_models_use_the_shared_names():
    assert literal(event_catalog.RecognizerStatusChange, "source") == constants.EVENT_SOURCE
    assert literal(event_catalog.RecognizerStatusChange, "detail_type") == constants.RECOGNIZER_STATUS_DETAIL_TYPE
    assert literal(event_catalog.DetectionJobStatusChange, "detail_type") == constants.DETECTION_JOB_STATUS_DETAIL_TYPE
    assert literal(event_catalog.LabelingJobStateChange, "detail_type") == constants.LABELING_JOB_DETAIL_TYPE
    assert literal(event_catalog.HumanLoopStatusChange, "detail_type") == constants.HUMAN_LOOP_DETAIL_TYPE
    assert literal(event_catalog.S3ObjectCreated, "detail_type") == constants.S3_OBJECT_CREATED


def test_an_eventbridge_s3_key_is_taken_as_it_is(event):
    # EventBridge's Object Created carries the key with no URL encoding (S3 user guide, ev-events)
    key = "raw/C++ notes 100% été (2).txt"
    created = event("preprocess")
    created["detail"]["object"]["key"] = key
    parsed = event_catalog.S3ObjectCreated.model_validate(created)
    assert parsed.detail.object.key == key
    assert parsed.business_key()["key"] == key


MINIMAL = {
    "STATE_TABLE": "t", "DATA_BUCKET": "b", "ENTITY_TYPES": "SERVICE, VERSION", "CONFIDENCE_THRESHOLD": "0.8",
    "RETRAIN_BATCH_SIZE": "25", "RETRAIN_MAX_WAIT_MINUTES": "1440", "REVIEW_BUDGET": "0", "RECOGNIZER_NAME": "nerloop",
    "COMPREHEND_ROLE_ARN": "arn:aws:iam::1:role/c", "F1_TOLERANCE": "0.02", "VERSION_RETENTION": "3",
}


def test_settings_parse_the_environment():
    settings = load_settings(MINIMAL)
    assert settings.entity_types == ("SERVICE", "VERSION")
    assert settings.confidence_threshold == 0.8 and settings.workteam_arn == ""


def test_a_missing_variable_is_named_at_cold_start():
    environ = {k: v for k, v in MINIMAL.items() if k != "STATE_TABLE"}
    with pytest.raises(SettingsError, match="STATE_TABLE"):
        load_settings(environ)


def test_an_invalid_entity_type_is_refused():
    with pytest.raises(SettingsError, match="BAD TYPE"):
        load_settings({**MINIMAL, "ENTITY_TYPES": "SERVICE,BAD TYPE"})


def test_recognizer_metrics_are_kept_as_fractions():
    metrics = metrics_from_metadata({"EvaluationMetrics": {"Precision": 90.0, "Recall": 80.0, "F1Score": 84.7},
                                     "EntityTypes": [{"Type": "SERVICE", "EvaluationMetrics": {"F1Score": 100.0}}]})
    assert metrics["f1"] == pytest.approx(0.847)
    assert metrics["per_type"]["SERVICE"]["f1"] == pytest.approx(1.0)


def test_documents_differing_only_in_white_space_share_an_id():
    assert document_hash("Amazon  S3\tlaunches") == document_hash(" Amazon S3 launches ")
    assert document_hash("Amazon S3") != document_hash("amazon s3")


def test_sentences_split_at_ends_followed_by_a_capital():
    assert split_sentences("AWS Lambda 1.2 is out. It adds Python. e.g. this stays") == [
        "AWS Lambda 1.2 is out.", "It adds Python. e.g. this stays"]
