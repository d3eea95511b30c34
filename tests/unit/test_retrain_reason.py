"""When a retrain is due (nerloop.retrain.retrain_reason): a pure decision over what the state table holds."""

from __future__ import annotations

import pytest

from nerloop.retrain import BATCH, LOOPS_ENDED, REQUESTED, WAITED, RetrainPolicy, retrain_reason
from nerloop.settings import load_settings

NOW = 1_000_000
HOUR = RetrainPolicy(batch_size=10, max_wait_minutes=60)


def reason(policy: RetrainPolicy = HOUR, *, requested: bool = False, pending: int = 0, loops_open: bool = True,
           waited: int | None = 0) -> str | None:
    return retrain_reason(policy, requested=requested, pending=pending, loops_open=loops_open,
                          pending_since=None if waited is None else NOW - waited, now=NOW)


@pytest.mark.parametrize(("case", "expected"), [
    ({}, None),  # nothing pending
    ({"loops_open": False}, None),  # every loop ended, but no review is pending
    ({"requested": True}, REQUESTED),  # a labeling job changed the gold set
    ({"pending": 9}, None),  # short of a batch, loops still open, not waited long
    ({"pending": 10}, BATCH),
    ({"pending": 1, "loops_open": False}, LOOPS_ENDED),  # the last loop ended: no more reviews can come
    ({"pending": 1, "waited": 3599}, None),
    ({"pending": 1, "waited": 3600}, WAITED),
    ({"pending": 1, "waited": None}, WAITED),  # merged before times were kept: it has waited long enough
])
def test_a_retrain_is_due_for_exactly_one_of_four_reasons(case, expected):
    assert reason(**case) == expected


def test_a_time_limit_of_zero_never_decides():
    assert reason(RetrainPolicy(batch_size=10, max_wait_minutes=0), pending=1, waited=10**9) is None
    assert reason(RetrainPolicy(batch_size=10, max_wait_minutes=0), pending=1, loops_open=False) == LOOPS_ENDED


def test_the_policy_comes_from_the_settings():
    settings = load_settings({
        "STATE_TABLE": "t", "DATA_BUCKET": "b", "ENTITY_TYPES": "SERVICE", "CONFIDENCE_THRESHOLD": "0.8",
        "RETRAIN_BATCH_SIZE": "25", "RETRAIN_MAX_WAIT_MINUTES": "1440", "REVIEW_BUDGET": "0",
        "RECOGNIZER_NAME": "nerloop", "COMPREHEND_ROLE_ARN": "arn:aws:iam::1:role/c", "F1_TOLERANCE": "0.02",
        "VERSION_RETENTION": "3",
    })
    assert RetrainPolicy.of(settings) == RetrainPolicy(batch_size=25, max_wait_minutes=1440)
