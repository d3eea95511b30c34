"""The stages' typed results: each variant's JSON is the shape the handlers returned before, and a
stored result is rebuilt as the one variant whose fields are its keys."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from nerloop.stages import results
from nerloop.stages.results import (
    ConversionContinued,
    ConversionSkipped,
    Converted,
    LoopIgnored,
    Polled,
    ReviewMerged,
    StageResult,
    UnknownResultShape,
    from_dict,
)

# What each stage function returns (a union of variants, or one type).
RETURNS = {
    "preprocess_object": results.PreprocessResult,
    "convert_labeling_job": results.ConversionResult,
    "start_training": results.TrainingResult,
    "poll_in_flight": results.Polled,
    "handle_recognizer_status": results.RecognizerStatusResult,
    "handle_evaluation_status": results.EvaluationResult,
    "detect_batch": results.BatchResult,
    "route_detection_output": results.RouteResult,
    "merge_human_loop": results.MergeResult,
}


@pytest.mark.parametrize("function", RETURNS)
def test_every_stage_returns_frozen_slotted_variants_told_apart_by_their_keys(function: str) -> None:
    variants = typing.get_args(RETURNS[function]) or (RETURNS[function],)

    for variant in variants:
        assert issubclass(variant, StageResult)
        params = getattr(variant, "__dataclass_params__")  # noqa: B009
        assert params.frozen and "__slots__" in vars(variant), variant
    keys = [frozenset(field.name for field in dataclasses.fields(variant)) for variant in variants]
    assert len(set(keys)) == len(keys)  # so a stored result names its variant


def test_the_stage_functions_are_annotated_with_those_results() -> None:
    import importlib

    for module in ("preprocess", "convert", "train", "watch", "detect", "route", "merge"):
        stage = importlib.import_module(f"nerloop.stages.{module}")
        for function in set(RETURNS) & set(vars(stage)):
            hints = typing.get_type_hints(getattr(stage, function))
            assert hints["return"] == RETURNS[function], function


def test_a_result_is_the_json_object_of_its_fields_in_order() -> None:
    result = Converted(job="j", manifest="s3://b/m", label_attribute="label", lines=3, documents=2, repeated=1,
                       spans=4, quarantined=0, trimmed=1, quarantine=None, snapshot="v1")

    assert list(result.to_dict().items()) == [
        ("job", "j"), ("manifest", "s3://b/m"), ("label_attribute", "label"), ("lines", 3), ("documents", 2),
        ("repeated", 1), ("spans", 4), ("quarantined", 0), ("trimmed", 1), ("quarantine", None),
        ("snapshot", "v1")]


def test_the_constant_fields_of_a_variant_are_in_its_json() -> None:
    assert LoopIgnored(loop="l", status="InProgress").to_dict() == {
        "loop": "l", "status": "InProgress", "merged": False, "ignored": True}


def test_a_poll_names_the_reconciled_loops_only_when_there_are_some() -> None:
    assert Polled(changes=[], started=[], snapshot=None).to_dict() == {"changes": [], "started": [], "snapshot": None}
    assert Polled(changes=[], started=["j1"], snapshot="v2", reconciled=["l: Stopped"]).to_dict()["reconciled"] == [
        "l: Stopped"]


def test_a_stored_result_is_rebuilt_as_the_variant_with_its_keys() -> None:
    variants = (ConversionSkipped, ConversionContinued, Converted)
    continued = ConversionContinued(job="j", manifest="s3://b/m", lines=10, documents=5,
                                    continued={"sequence": 1, "checkpoint": "c"})

    assert from_dict(continued.to_dict(), variants) == continued
    assert from_dict({"job": "j", "skipped": "status Failed"}, variants) == ConversionSkipped("j", "status Failed")


def test_a_stored_result_of_no_known_shape_is_refused() -> None:
    with pytest.raises(UnknownResultShape):
        from_dict({"job": "j", "documents": 1}, (ConversionSkipped, ConversionContinued, Converted))


def test_merge_results_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ReviewMerged("l", "Completed", "d", "v1")  # type: ignore[misc]


def test_the_results_module_loads_nothing_else_of_nerloop() -> None:
    # The watch stage returns a typed result but guards nothing: its cold start must not load the
    # idempotency machinery (Powertools' idempotency utility) through the results module.
    import os
    import subprocess
    import sys

    probe = ("import sys, nerloop.stages.results; "
             "print(sorted(n for n in sys.modules if n.startswith(('nerloop', 'aws_lambda_powertools'))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True,
                          timeout=60)

    assert done.stdout.strip() == "['nerloop', 'nerloop.stages', 'nerloop.stages.results']"
