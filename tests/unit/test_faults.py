"""The fault injector's decisions: seeded, at the rate asked, outages that last a whole call,
emulated client retries for the stand-ins, and permanent denials."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nerloop_local.emulator.faults import (
    ACCESS_DENIED,
    COMPREHEND,
    DYNAMODB,
    KINDS,
    S3,
    TIMEOUTS,
    FaultInjector,
    total_attempts,
)


def decisions(injector: FaultInjector, service: str, calls: int) -> list[str | None]:
    out = []
    with injector.armed():
        for _ in range(calls):
            kind = injector.fail_attempt(service, {})
            out.append(kind.code if kind else None)
    return out


def test_the_same_seed_fails_the_same_attempts() -> None:
    assert decisions(FaultInjector(0.2, seed=3), S3, 200) == decisions(FaultInjector(0.2, seed=3), S3, 200)


def test_about_the_rate_of_attempts_fail_with_the_services_own_codes() -> None:
    codes = [code for code in decisions(FaultInjector(0.2, seed=1), DYNAMODB, 5000) if code]

    assert 900 < len(codes) < 1100
    assert set(codes) == {kind.code for kind in KINDS[DYNAMODB] + TIMEOUTS}


def test_rate_zero_fails_nothing() -> None:
    assert set(decisions(FaultInjector(0.0, seed=1), S3, 500)) == {None}


def test_an_outage_fails_every_attempt_of_its_call_with_one_code() -> None:
    injector = FaultInjector(0.0, seed=2, outage_rate=1.0)
    context: dict[str, object] = {}
    with injector.armed():
        codes = {injector.fail_attempt(S3, context).code for _ in range(9)}  # type: ignore[union-attr]
    assert len(codes) == 1


def test_a_stand_in_call_fails_only_when_every_emulated_attempt_failed() -> None:
    injector = FaultInjector(0.5, seed=4)
    config = SimpleNamespace(retries={"total_max_attempts": 3})
    with injector.armed():
        outcomes = [injector.emulate_retries(COMPREHEND, {"client_config": config}) for _ in range(2000)]
    failed = sum(1 for outcome in outcomes if outcome is not None)

    assert 150 < failed < 350  # 0.5 ** 3 of 2000 = 250
    assert injector.figures[COMPREHEND].retries > failed


def test_total_attempts_follow_botocores_config() -> None:
    assert total_attempts(SimpleNamespace(retries={"total_max_attempts": 9})) == 9
    assert total_attempts(SimpleNamespace(retries={"max_attempts": 8})) == 9
    assert total_attempts(SimpleNamespace(retries=None)) == 3


def test_a_denial_applies_to_its_function_until_allowed() -> None:
    injector = FaultInjector(0.0)
    injector.deny(COMPREHEND, "CreateEntityRecognizer", function="TrainFunction")
    with injector.armed("TrainFunction"):
        assert injector._denial(COMPREHEND, "CreateEntityRecognizer") == ACCESS_DENIED
    with injector.armed("DetectFunction"):
        assert injector._denial(COMPREHEND, "CreateEntityRecognizer") is None
    injector.allow()
    with injector.armed("TrainFunction"):
        assert injector._denial(COMPREHEND, "CreateEntityRecognizer") is None


def test_unknown_services_and_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        FaultInjector(1.0)
    with pytest.raises(ValueError):
        FaultInjector(0.1, services=("lambda",))
