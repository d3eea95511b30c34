"""`s3://bucket/key` URIs: the one parser the stages, the stand-ins and the tools share."""

from __future__ import annotations

from nerloop.errors import NerloopError


class InvalidS3Uri(NerloopError, ValueError):
    """A string is not an `s3://bucket/key` URI; `uri` is the string, `reason` what is wrong with it."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"not an S3 URI ({reason}): {uri!r}")


def split_s3_uri(uri: str, *, prefix: bool = False) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key); the key keeps its slashes as they are.

    With `prefix`, the key may be empty (`s3://bucket`, `s3://bucket/`: the whole bucket); without it, an
    object URI needs a key. Raises InvalidS3Uri otherwise.
    """
    if not uri.startswith("s3://"):
        raise InvalidS3Uri(uri, "it does not start with s3://")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise InvalidS3Uri(uri, "it names no bucket")
    if not key and not prefix:
        raise InvalidS3Uri(uri, "it names no object key")
    return bucket, key
