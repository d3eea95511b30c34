"""nerloop.s3_uri: the one parser of s3://bucket/key URIs."""

from __future__ import annotations

import pytest

from nerloop.errors import NerloopError
from nerloop.s3_uri import InvalidS3Uri, split_s3_uri


def test_an_object_uri_splits_into_its_bucket_and_key() -> None:
    assert split_s3_uri("s3://data/batches/b1/documents.txt") == ("data", "batches/b1/documents.txt")


def test_a_key_keeps_its_slashes_as_they_are() -> None:
    assert split_s3_uri("s3://data//a/b/") == ("data", "/a/b/")


@pytest.mark.parametrize("uri", ["s3://data", "s3://data/"])
def test_a_prefix_may_name_the_whole_bucket(uri: str) -> None:
    assert split_s3_uri(uri, prefix=True) == ("data", "")


@pytest.mark.parametrize(("uri", "reason"), [
    ("https://data/key", "does not start with s3://"),
    ("data/key", "does not start with s3://"),
    ("s3:///key", "names no bucket"),
    ("s3://", "names no bucket"),
    ("s3://data", "names no object key"),
    ("s3://data/", "names no object key"),
])
def test_a_bad_uri_is_refused_with_the_uri_and_the_reason(uri: str, reason: str) -> None:
    with pytest.raises(InvalidS3Uri) as refused:
        split_s3_uri(uri)
    assert refused.value.uri == uri
    assert reason in refused.value.reason
    assert repr(uri) in str(refused.value)


def test_the_error_is_one_of_the_loop_s_own_and_a_value_error() -> None:
    assert issubclass(InvalidS3Uri, NerloopError)
    assert issubclass(InvalidS3Uri, ValueError)
