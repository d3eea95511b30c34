"""Settings from environment variables, parsed once into a typed model.

A missing or malformed variable fails at cold start with a message naming it.
"""

from __future__ import annotations

import functools
import os
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator, model_validator

from nerloop.comprehend_training import entity_type_problem
from nerloop.constants import MAX_DETECTION_LINES
from nerloop.recognizer_versions import MAX_NAME_LENGTH, NAME_PATTERN
from nerloop.test_set import DEFAULT_TEST_MINIMUM, DEFAULT_TEST_SHARE


def split_comma_separated(value: object) -> object:
    """Split "A, B," into ("A", "B"): how an environment variable or a template parameter lists names."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


CommaSeparated = Annotated[tuple[str, ...], BeforeValidator(split_comma_separated)]


class SettingsError(RuntimeError):
    """An environment variable is missing or malformed."""


class Settings(BaseModel):
    """What every stage needs to know about its stack."""

    state_table: str = Field(alias="STATE_TABLE", min_length=1)
    data_bucket: str = Field(alias="DATA_BUCKET", min_length=1)
    entity_types: CommaSeparated = Field(alias="ENTITY_TYPES")
    confidence_threshold: float = Field(alias="CONFIDENCE_THRESHOLD", ge=0.0, le=1.0)
    retrain_batch_size: int = Field(alias="RETRAIN_BATCH_SIZE", ge=1)
    # Pending reviews start a retrain once the oldest has waited this long (0 = never by time alone).
    retrain_max_wait_minutes: int = Field(alias="RETRAIN_MAX_WAIT_MINUTES", ge=0)
    review_budget: int = Field(alias="REVIEW_BUDGET", ge=0)  # human loops per detection job, 0 = no limit
    # Documents a version detects in a round (the detection after a training), 0 = every eligible one;
    # at most the 1,000,000 lines Comprehend reads in one ONE_DOC_PER_LINE job ("Inputs for asynchronous
    # custom analysis"). Only the detect stage reads it (its own variable in template.yaml).
    detection_documents_per_round: int = Field(alias="DETECTION_DOCUMENTS_PER_ROUND", default=0, ge=0,
                                               le=MAX_DETECTION_LINES)
    recognizer_name: str = Field(alias="RECOGNIZER_NAME", pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)
    comprehend_role_arn: str = Field(alias="COMPREHEND_ROLE_ARN", min_length=1)
    # Only the route stage starts human loops; the others run without it.
    flow_definition_arn: str = Field(alias="FLOW_DEFINITION_ARN", default="")
    # The gate (nerloop.gate): a new version stays inactive only when it is worse than the active one
    # on the shared test documents, significantly and by more than this much F1.
    f1_tolerance: float = Field(alias="F1_TOLERANCE", ge=0.0, le=1.0)
    # The stable test set (nerloop.test_set): the gold set's share held out by document hash, and the
    # documents it needs before Comprehend and the gate use it.
    test_share: float = Field(alias="TEST_SHARE", default=DEFAULT_TEST_SHARE, ge=0.0, lt=1.0)
    test_minimum: int = Field(alias="TEST_MINIMUM", default=DEFAULT_TEST_MINIMUM, ge=1)
    version_retention: int = Field(alias="VERSION_RETENTION", ge=1)
    # --- TrainingMode (issue 15 part 2, nerloop.flywheel) ---
    # Recognizer: each snapshot a CreateEntityRecognizer version. Flywheel: datasets and iterations of
    # the stack's flywheel (FLYWHEEL_ARN, set only in that mode).
    training_mode: Literal["Recognizer", "Flywheel"] = Field(alias="TRAINING_MODE", default="Recognizer")
    flywheel_arn: str = Field(alias="FLYWHEEL_ARN", default="")
    # --- end of TrainingMode ---
    language_code: str = Field(alias="LANGUAGE_CODE", default="en")
    # Ground Truth is optional: with no workteam, gold labels come from manifests and reviews only.
    workteam_arn: str = Field(alias="WORKTEAM_ARN", default="")
    labeling_role_arn: str = Field(alias="LABELING_ROLE_ARN", default="")
    labeling_job_prefix: str = Field(alias="LABELING_JOB_PREFIX", default="nerloop")

    @field_validator("entity_types")
    @classmethod
    def check_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not 1 <= len(value) <= 25:
            raise ValueError("needs 1 to 25 entity types")
        bad = [f"{name!r}: {problem}" for name in value if (problem := entity_type_problem(name))]
        if bad:
            raise ValueError(f"invalid entity type names: {'; '.join(bad)}")
        return value

    @model_validator(mode="after")
    def check_flywheel(self) -> Settings:
        if self.training_mode == "Flywheel" and not self.flywheel_arn:
            raise ValueError("TRAINING_MODE Flywheel needs FLYWHEEL_ARN (the stack's flywheel)")
        return self


def require(value: str, variable: str) -> str:
    """`value`, or a SettingsError naming `variable` when it is empty."""
    if not value:
        raise SettingsError(f"invalid configuration: {variable} is not set")
    return value


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Parse settings from `environ` (default: the process environment)."""
    environ = dict(os.environ if environ is None else environ)
    try:
        return Settings.model_validate(environ)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from exc


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, parsed on first use and kept."""
    return load_settings()
