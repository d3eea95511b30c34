"""TrainingMode Flywheel's decisions (nerloop.flywheel, nerloop.flywheel_resource), against a recording
stand-in for the Comprehend client: when an iteration starts, how its statuses read as the loop's, which
model a detection job names, and how a version is promoted."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from nerloop import flywheel
from nerloop.flywheel_resource import FlywheelProperties, create_flywheel, delete_flywheel, flywheel_arn
from nerloop.settings import SettingsError, load_settings
from nerloop.state import Version
from nerloop_local.emulator.stack import Stack

FLYWHEEL = "arn:aws:comprehend:us-east-1:123456789012:flywheel/nerloop-1234abcd"
MODEL = "arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/nerloop-1234abcd/version/20261205T090000Z"


def settings_for(mode: str) -> Any:
    environment = Stack.load({"TrainingMode": mode}).function_environment("DetectFunction")
    environment["FLYWHEEL_ARN"] = FLYWHEEL if mode == "Flywheel" else ""
    return load_settings(environment)


class Comprehend:
    """Answers what it is told and records every call."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, operation: str) -> Any:
        def call(**params: Any) -> Any:
            self.calls.append((operation, params))
            answer = self.answers[operation]
            if isinstance(answer, Exception):
                raise answer
            return answer(params) if callable(answer) else answer
        return call


class Aws:
    def __init__(self, comprehend: Comprehend) -> None:
        self.comprehend = comprehend


def flywheel_version(**flywheel_fields: Any) -> Version:
    return Version("v2", "SUBMITTED", metrics={"flywheel": {"datasets": ["ds-train", "ds-test"], **flywheel_fields}})


def dataset(status: str, message: str = "") -> dict[str, Any]:
    return {"DatasetProperties": {"Status": status, "Message": message}}


def test_flywheel_mode_needs_the_flywheel_s_arn():
    environment = Stack.load({"TrainingMode": "Flywheel"}).function_environment("DetectFunction")
    environment["FLYWHEEL_ARN"] = ""
    with pytest.raises(SettingsError, match="FLYWHEEL_ARN"):
        load_settings(environment)
    assert settings_for("Recognizer").training_mode == "Recognizer"


def test_no_iteration_starts_while_a_dataset_is_still_being_created():
    statuses = iter([dataset("COMPLETED"), dataset("CREATING")])
    comprehend = Comprehend(describe_dataset=lambda params: next(statuses))
    poll = flywheel.poll_version(Aws(comprehend), settings_for("Flywheel"), flywheel_version())
    assert poll.status is None
    assert [name for name, _ in comprehend.calls] == ["describe_dataset", "describe_dataset"]


def test_the_iteration_starts_once_every_dataset_is_in_with_a_token_of_the_version():
    comprehend = Comprehend(describe_dataset=dataset("COMPLETED"),
                            start_flywheel_iteration={"FlywheelIterationId": "20261205T090000Z"})
    settings = settings_for("Flywheel")
    poll = flywheel.poll_version(Aws(comprehend), settings, flywheel_version())
    assert poll.status == "TRAINING" and poll.flywheel["iteration"] == "20261205T090000Z"
    (start,) = [params for name, params in comprehend.calls if name == "start_flywheel_iteration"]
    assert start == {"FlywheelArn": FLYWHEEL, "ClientRequestToken": flywheel.request_token(FLYWHEEL, "v2", "iteration")}
    # The same version asks with the same token: a redelivered poll gets the same iteration back.
    assert flywheel.request_token(FLYWHEEL, "v2", "iteration") != flywheel.request_token(FLYWHEEL, "v3", "iteration")


def test_a_failed_dataset_ends_the_version_in_error_with_comprehend_s_reason():
    comprehend = Comprehend(describe_dataset=dataset("FAILED", "annotations.csv: bad header"))
    poll = flywheel.poll_version(Aws(comprehend), settings_for("Flywheel"), flywheel_version())
    assert poll.status == "IN_ERROR" and "bad header" in poll.message
    assert all(name != "start_flywheel_iteration" for name, _ in comprehend.calls)


@pytest.mark.parametrize(("iteration_status", "version_status"), [
    ("TRAINING", "TRAINING"), ("EVALUATING", "TRAINING"), ("STOP_REQUESTED", "STOP_REQUESTED"),
    ("FAILED", "IN_ERROR"), ("STOPPED", "STOPPED"),
])
def test_an_unfinished_or_failed_iteration_reads_as_the_version_s_status(iteration_status, version_status):
    comprehend = Comprehend(describe_flywheel_iteration={"FlywheelIterationProperties": {
        "Status": iteration_status, "Message": "why"}})
    poll = flywheel.poll_version(Aws(comprehend), settings_for("Flywheel"), flywheel_version(iteration="it-1"))
    assert (poll.status, poll.message) == (version_status, "why")


def test_a_completed_iteration_reads_as_its_trained_model_with_both_models_figures_kept():
    metrics = {"AverageF1Score": 81.0}
    comprehend = Comprehend(
        describe_flywheel_iteration={"FlywheelIterationProperties": {
            "Status": "COMPLETED", "TrainedModelArn": MODEL, "TrainedModelMetrics": metrics,
            "EvaluatedModelArn": "arn:active", "EvaluatedModelMetrics": {"AverageF1Score": 79.0}}},
        describe_entity_recognizer={"EntityRecognizerProperties": {"Status": "TRAINED_WITH_WARNING",
                                                                   "Message": "few VERSION mentions"}})
    poll = flywheel.poll_version(Aws(comprehend), settings_for("Flywheel"), flywheel_version(iteration="it-1"))
    assert (poll.status, poll.model_arn, poll.message) == ("TRAINED_WITH_WARNING", MODEL, "few VERSION mentions")
    assert poll.flywheel["trained_model_metrics"] == metrics
    assert poll.flywheel["evaluated_model"] == "arn:active"


def test_pool_jobs_of_the_active_version_name_the_flywheel_and_every_other_job_its_model():
    version = Version("v2", "TRAINED", arn=MODEL)
    assert flywheel.detection_model(settings_for("Flywheel"), version, active="v2") == {"FlywheelArn": FLYWHEEL}
    # A queued request of a version no longer active keeps its own model.
    assert flywheel.detection_model(settings_for("Flywheel"), version, active="v3") == {"EntityRecognizerArn": MODEL}
    assert flywheel.detection_model(settings_for("Recognizer"), version, active="v2") == {"EntityRecognizerArn": MODEL}


class Versions:
    def __init__(self, version: Version) -> None:
        self.version = version
        self.active: tuple[str, float] | None = None

    def get(self, name: str) -> Version | None:
        return self.version if name == self.version.version else None

    def activate(self, name: str, f1: float) -> None:
        self.active = (name, f1)


class State:
    def __init__(self, version: Version) -> None:
        self.versions = Versions(version)

    @property
    def active(self) -> tuple[str, float] | None:
        return self.versions.active


def test_promotion_updates_the_flywheel_s_active_model_before_the_loop_s_record():
    comprehend = Comprehend(update_flywheel=RuntimeError("UpdateFlywheel failed"))
    state = State(Version("v2", "TRAINED", arn=MODEL))
    with pytest.raises(RuntimeError):
        flywheel.promote(state, Aws(comprehend), settings_for("Flywheel"), "v2", 0.8)  # type: ignore[arg-type]
    assert state.active is None  # a retry does both
    comprehend.answers["update_flywheel"] = {}
    flywheel.promote(state, Aws(comprehend), settings_for("Flywheel"), "v2", 0.8)  # type: ignore[arg-type]
    assert comprehend.calls[-1] == ("update_flywheel", {"FlywheelArn": FLYWHEEL, "ActiveModelArn": MODEL})
    assert state.active == ("v2", 0.8)


def test_recognizer_mode_promotes_without_a_flywheel():
    comprehend = Comprehend()
    state = State(Version("v2", "TRAINED", arn=MODEL))
    flywheel.promote(state, Aws(comprehend), settings_for("Recognizer"), "v2", 0.8)  # type: ignore[arg-type]
    assert comprehend.calls == [] and state.active == ("v2", 0.8)


def test_dataset_names_keep_comprehend_s_rule():
    assert flywheel.dataset_name("v12", "TRAIN") == "v12-train"
    assert len(flywheel.dataset_name("v" * 63, "TEST")) <= 63


# --- the Custom::Flywheel resource -------------------------------------------------------------------

PROPS = FlywheelProperties.model_validate({
    "FlywheelName": "nerloop", "DataAccessRoleArn": "arn:aws:iam::123456789012:role/comprehend",
    "DataLakeS3Uri": "s3://bucket/flywheel/", "LanguageCode": "en", "EntityTypes": "SERVICE,VERSION"})
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/nerloop/1111"


def not_found() -> ClientError:
    return ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "DescribeFlywheel")


def test_the_flywheel_is_created_for_a_new_model_with_the_entity_types_as_task_config():
    described = iter([not_found(), {"FlywheelProperties": {"Status": "CREATING"}},
                      {"FlywheelProperties": {"Status": "ACTIVE"}}])

    def describe(params: dict[str, Any]) -> Any:
        answer = next(described)
        if isinstance(answer, Exception):
            raise answer
        return answer

    waits: list[str] = []
    comprehend = Comprehend(describe_flywheel=describe, create_flywheel={"FlywheelArn": "arn:made"})
    physical_id, data = create_flywheel(PROPS, STACK_ID, Aws(comprehend), waits.append)  # type: ignore[arg-type]
    assert physical_id == data["Arn"] == "arn:made" and len(waits) == 1
    (create,) = [params for name, params in comprehend.calls if name == "create_flywheel"]
    assert create["ModelType"] == "CUSTOM_ENTITY_RECOGNIZER"
    assert create["TaskConfig"] == {"LanguageCode": "en", "EntityRecognitionConfig": {
        "EntityTypes": [{"Type": "SERVICE"}, {"Type": "VERSION"}]}}
    assert create["FlywheelName"] == PROPS.physical_name()
    assert flywheel_arn(STACK_ID, "x") == "arn:aws:comprehend:us-east-1:123456789012:flywheel/x"


def test_the_same_settings_find_the_same_flywheel_and_others_make_a_new_one():
    comprehend = Comprehend(describe_flywheel={"FlywheelProperties": {"Status": "ACTIVE"}})
    physical_id, _ = create_flywheel(PROPS, STACK_ID, Aws(comprehend), lambda what: None)  # type: ignore[arg-type]
    assert physical_id == flywheel_arn(STACK_ID, PROPS.physical_name())
    assert all(name != "create_flywheel" for name, _ in comprehend.calls)
    other = PROPS.model_copy(update={"entity_types": ("SERVICE",)})
    assert other.physical_name() != PROPS.physical_name()


def test_deleting_waits_while_an_iteration_runs_and_ends_when_the_flywheel_is_gone():
    answers = iter([ClientError({"Error": {"Code": "ResourceInUseException"}}, "DeleteFlywheel"), not_found()])

    def delete(params: dict[str, Any]) -> Any:
        raise next(answers)

    waits: list[str] = []
    delete_flywheel("arn:fw", Aws(Comprehend(delete_flywheel=delete)), waits.append)  # type: ignore[arg-type]
    assert len(waits) == 1
    delete_flywheel("nothing-created", Aws(Comprehend()), waits.append)  # type: ignore[arg-type]
