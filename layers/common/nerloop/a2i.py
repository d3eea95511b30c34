"""Amazon A2I human loops for entity review: loop names, the worker's input, starting a loop.

The worker template uses `<crowd-entity-annotation name="crowd-entity-annotation">` and reads the
input content this module builds (see `build_input_content`):

    text="{{ task.input.text | escape }}"
    labels="{{ task.input.labels | to_json | escape }}"
    initial-value="{{ task.input.initialValue | to_json | escape }}"

The reviewer's answer (A2I's `output.json`) is read by `nerloop.review_answers`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from nerloop.errors import InvalidRecord
from nerloop.observability import logger

if TYPE_CHECKING:  # only named in annotations: importing the detection reader costs a cold start
    from nerloop.comprehend_output import DetectedEntity

MAX_NAME_LENGTH = 63
NAME_PATTERN = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
MAX_INPUT_CONTENT_CHARS = 3_145_728
RETRYABLE_CODES = ("ThrottlingException", "ServiceQuotaExceededException")

STARTED = "started"
ALREADY_STARTED = "already-started"

_HASH_CHARS = 40  # 160 bits of the document hash: collisions are not a practical concern
_VERSION_CHARS = 20
_SCOPE_CHARS = 6
_SCOPED_HASH_CHARS = 33  # 132 bits, still far from any practical collision; the name stays <= 61


# --- loop names ----------------------------------------------------------------------------------


def loop_name(doc_hash: str, version: str, scope: str = "") -> str:
    """The human loop name for reviewing document `doc_hash` under model `version`.

    Deterministic, so a retried start reuses the name and A2I refuses a second loop. At most 63
    characters of `^[a-z0-9](-*[a-z0-9])*$`: `<version tag>-<first 40 hex of the hash>`, the tag being
    the version itself when it is already short lower-case, else a readable prefix and a hash of it.
    A2I wants loop names unique in the account and region, so with a `scope` (the stack's flow
    definition ARN) the name carries 6 hex of its hash before 33 of the document's: two stacks
    reviewing the same text under the same version name do not take each other's loops.
    """
    if not _DOC_HASH.fullmatch(doc_hash):
        raise ValueError(f"not a document hash: {doc_hash!r}")
    if not version:
        raise ValueError("a model version is needed to name a human loop")
    prefix = _loop_name_prefix(version, scope)
    name = f"{prefix}{doc_hash[:_SCOPED_HASH_CHARS if scope else _HASH_CHARS]}"
    if len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.match(name):  # pragma: no cover - by construction
        raise ValueError(f"derived an invalid human loop name {name!r}")
    return name


_DOC_HASH = re.compile(r"[0-9a-f]{40,}")


@functools.lru_cache(maxsize=64)
def _loop_name_prefix(version: str, scope: str) -> str:
    """`<version tag>-` or `<version tag>-<scope tag>-`: the same for every loop of a routing."""
    tag = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", version.lower())).strip("-")
    if tag != version or len(tag) > _VERSION_CHARS:
        digest = hashlib.sha256(version.encode("utf-8")).hexdigest()[:8]
        prefix = tag[: _VERSION_CHARS - 9].strip("-")
        tag = f"{prefix}-{digest}" if prefix else digest
    if scope:
        return f"{tag}-{hashlib.sha256(scope.encode('utf-8')).hexdigest()[:_SCOPE_CHARS]}-"
    return f"{tag}-"


# --- the worker's input --------------------------------------------------------------------------


def build_input_content(
    doc_hash: str,
    text: str,
    entities: Sequence[DetectedEntity],
    version: str,
    entity_types: Iterable[str],
) -> str:
    """The HumanLoopInput.InputContent JSON for one document.

    `text` and `labels` feed the widget, `initialValue` pre-fills the model's spans (those of known
    types), `predictions` keeps each span's score for the reviewer, `document` and `version` tell
    the merge stage what was reviewed. Raises InvalidRecord when A2I would refuse its size.
    """
    types = list(entity_types)
    known = set(types)
    content = {
        "document": doc_hash,
        "version": version,
        "text": text,
        "labels": [{"label": name} for name in types],
        "initialValue": [
            {"label": e.type, "startOffset": e.begin, "endOffset": e.end} for e in entities if e.type in known
        ],
        "predictions": [
            {"label": e.type, "startOffset": e.begin, "endOffset": e.end, "score": round(e.score, 6)}
            for e in entities
        ],
        "lowestScore": min((e.score for e in entities), default=None),
    }
    encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    if len(encoded) > MAX_INPUT_CONTENT_CHARS:
        raise InvalidRecord(f"document {doc_hash}", None,
                            f"human loop input is {len(encoded)} characters; A2I takes at most "
                            f"{MAX_INPUT_CONTENT_CHARS}")
    return encoded


# --- starting a loop -----------------------------------------------------------------------------


def backoff_sleep(seconds: float) -> None:
    """The pause between retries (a module function so tests can replace it)."""
    time.sleep(seconds)


def start_human_loop(
    a2i_client: Any,
    name: str,
    flow_definition_arn: str,
    input_content: str,
    *,
    max_attempts: int = 6,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
    sleep: Callable[[float], None] | None = None,
    jitter: Callable[[], float] = random.random,
) -> str:
    """Start a human loop; return STARTED, or ALREADY_STARTED when a loop of that name exists.

    The name is derived from the document and version, so a loop that exists is this same review
    (a ConflictException). Throttling and quota errors are retried with exponential back-off and
    full jitter, at most `max_attempts` calls; the last error is raised.
    """
    pause = sleep or backoff_sleep
    for attempt in range(1, max_attempts + 1):
        try:
            a2i_client.start_human_loop(
                HumanLoopName=name,
                FlowDefinitionArn=flow_definition_arn,
                HumanLoopInput={"InputContent": input_content},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConflictException":
                logger.info("human loop already started", loop=name)
                return ALREADY_STARTED
            if code not in RETRYABLE_CODES or attempt == max_attempts:
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * jitter()
            logger.warning("human loop start throttled; retrying", loop=name, code=code,
                           attempt=attempt, delay=round(delay, 3))
            pause(delay)
        else:
            return STARTED
    raise AssertionError("unreachable")  # pragma: no cover
