"""A raw text whose key has a "+", spaces and non-ASCII characters goes through the loop under its own
key: EventBridge's Object Created carries the key unencoded (S3 user guide, "EventBridge event message
structure"), so the emulated event does too, and the handler reads that very object."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from nerloop.documents import document_hash
from nerloop.stages.preprocess import batch_keys, batch_name
from nerloop_local.emulator.runtime import LocalRuntime

KEY = "raw/C++ notes \u2013 été 2024.txt"  # an en dash, accents, "+" and spaces
TEXT = "Amazon EC2 now supports C++ builds in Zürich.\nAWS Lambda adds a runtime for Python 3.13.\n"
# What a URL-decoding handler would read instead: a different object, so a wrong key shows.
DECOY = "Amazon S3 adds a storage class.\n"


def test_a_raw_key_with_plus_space_and_non_ascii_reaches_the_loop_as_it_is(tmp_path: Path) -> None:
    with LocalRuntime(tmp_path, {"EntityTypes": "SERVICE,VERSION"}, reviewer=lambda name, content: None,
                      environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        seen: list[dict[str, Any]] = []
        handlers: list[Any] = []

        def recording(event: dict[str, Any], context: Any) -> Any:
            seen.append(event)
            if not handlers:  # loaded in the function's own environment, as the runtime does
                handlers.append(runtime.stack.load_handler("PreprocessFunction"))
            return handlers[0](event, context)

        runtime.override_handler("PreprocessFunction", recording)
        # Given the text under a key with "+", spaces and non-ASCII, and another object under its decoded form
        runtime.put_text(unquote_plus(KEY), DECOY)
        etag = runtime.put_text(KEY, TEXT)

        # When the loop runs
        result = runtime.run_until_idle(max_cycles=20)

        # Then the event names the object by its own key, and the batch holds that object's sentences
        assert result.idle and not result.failures
        keys = [event["detail"]["object"]["key"] for event in seen]
        assert KEY in keys
        documents_key, _ = batch_keys(batch_name(KEY, etag))
        documents = runtime.get_text(documents_key).splitlines()
        assert documents == TEXT.splitlines()
        for text in documents:
            assert runtime.state.pool.get(document_hash(text)) is not None, text
