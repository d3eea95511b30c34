"""Isolation from real AWS: the one emulated account and region, the fake credentials, and the guard that
refuses any connection off this machine. The CLI, the local runtime, the tests and the bench all use
these, so there is one answer to "could this reach a real account?"."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"

_FAKE = "testing"  # no real account accepts these
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": _FAKE,
    "AWS_SECRET_ACCESS_KEY": _FAKE,
    "AWS_SECURITY_TOKEN": _FAKE,
    "AWS_SESSION_TOKEN": _FAKE,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Anything that could point a client at a real endpoint or a real profile.
LEAKY_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")
ENDPOINT_PREFIX = "AWS_ENDPOINT_URL_"


def use_fake_credentials(environ: Any = None) -> None:
    """Put the fake credentials and region in `environ` (the process's by default) and take out every
    variable that could send a client to a real endpoint or profile."""
    env = os.environ if environ is None else environ
    for name in [*LEAKY_VARIABLES, *(name for name in env if name.startswith(ENDPOINT_PREFIX))]:
        env.pop(name, None)
    env.update(FAKE_CREDENTIALS)


def offline_environment(credentials: bool = True) -> None:
    """Quiet handler settings, then fake credentials and a region, so nothing can reach a real AWS account;
    with `credentials` False (a command given `--stack`, which reads a deployed stack) only the handlers'
    quiet settings, and boto3's default credential chain and region stay as the caller set them."""
    os.environ.update({
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "nerloop",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("NERLOOP_LOG_LEVEL", "ERROR"),
        "POWERTOOLS_METRICS_DISABLED": "true",
    })
    if credentials:
        use_fake_credentials()


class IsolatedEnvironment:
    """The process's AWS variables while a runtime runs: the fake credentials, no variable that could send a
    client elsewhere, and config and credentials files that do not exist; `leave` puts back what was there."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def enter(self, nowhere: Path) -> None:
        """Isolate os.environ; `nowhere` is a path with no file, given as AWS_CONFIG_FILE and
        AWS_SHARED_CREDENTIALS_FILE so that no profile or config file can send a client elsewhere."""
        touched = [*FAKE_CREDENTIALS, *LEAKY_VARIABLES, "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                   *(name for name in os.environ if name.startswith(ENDPOINT_PREFIX))]
        self._saved = {name: os.environ.get(name) for name in touched}
        for name in touched:
            os.environ.pop(name, None)
        os.environ.update(FAKE_CREDENTIALS)
        os.environ["AWS_CONFIG_FILE"] = str(nowhere)
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(nowhere)

    def leave(self) -> None:
        """Put back the variables `enter` changed, as they were."""
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}

def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1", "ip6-localhost") or host.startswith("127.")


class NetworkGuard:
    """Refuse every socket connection that is not to this machine while installed."""

    def __init__(self, who: str = "the local runtime") -> None:
        self._who = who
        self._previous: Any = None

    def install(self) -> None:
        previous = socket.socket.connect
        self._previous = previous
        who = self._who

        def guarded(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                host = address[0] if isinstance(address, tuple) else str(address)
                if not is_loopback(str(host)):
                    raise RuntimeError(f"{who} tried to reach {address!r}: local mode and the tests never "
                                       "contact AWS or any other host")
            return previous(sock, address)

        socket.socket.connect = guarded  # type: ignore[method-assign,assignment]

    def remove(self) -> None:
        if self._previous is not None:
            socket.socket.connect = self._previous  # type: ignore[method-assign]
            self._previous = None
