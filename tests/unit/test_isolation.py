"""The runtime's isolation of os.environ: fake credentials in, anything that could reach a real account out,
and the process's own variables back afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nerloop_local.emulator.isolation import FAKE_CREDENTIALS, IsolatedEnvironment


def test_entering_leaves_only_fake_credentials_and_no_way_to_a_real_endpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.com")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
    isolation = IsolatedEnvironment()

    isolation.enter(tmp_path / "nowhere")
    try:
        assert {name: os.environ[name] for name in FAKE_CREDENTIALS} == FAKE_CREDENTIALS
        assert "AWS_PROFILE" not in os.environ and "AWS_ENDPOINT_URL_S3" not in os.environ
        assert os.environ["AWS_CONFIG_FILE"] == os.environ["AWS_SHARED_CREDENTIALS_FILE"] == str(tmp_path / "nowhere")
    finally:
        isolation.leave()


def test_leaving_puts_back_what_was_there_and_removes_what_was_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
    monkeypatch.delenv("AWS_CONFIG_FILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    isolation = IsolatedEnvironment()

    isolation.enter(tmp_path / "nowhere")
    isolation.leave()

    assert os.environ["AWS_PROFILE"] == "prod" and os.environ["AWS_ACCESS_KEY_ID"] == "AKIAREAL"
    assert "AWS_CONFIG_FILE" not in os.environ and "AWS_SESSION_TOKEN" not in os.environ
