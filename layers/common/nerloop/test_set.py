"""The stable test set: the part of the gold set every version is scored on and none is trained on.

A gold document is a test document when its hash, read as a number in [0, 1), is below `TestShare`:
the assignment is a function of the document's content alone, so it never changes, and the test set
grows with the gold set at the same share. A document on either side stays on it for good (a review that
replaces its labels keeps its text, so its hash and its side).

The test set is given to Comprehend (`Documents.TestS3Uri`, `Annotations.TestS3Uri`) and used by the
gate once it is usable: at least `TestSetMinimum` documents, and, as Comprehend requires of a test set
for annotations, at least one annotation of each entity type of the request
(https://docs.aws.amazon.com/comprehend/latest/dg/prep-training-data-cer.html). Until then its documents
still stay out of training, Comprehend holds out 10 % of the training documents for its own metrics
(same page), and the gate has nothing shared to compare on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from nerloop.documents import Span

# Comprehend's NumberOfTestDocuments is "typically 10 to 20 percent of the input documents"
# (https://docs.aws.amazon.com/comprehend/latest/APIReference/API_EntityRecognizerMetadata.html): the
# upper end, so a small gold set (the sample's ~50 seed documents) has a test set worth comparing on.
DEFAULT_TEST_SHARE = 0.2
# Fewer test documents than this and a paired comparison can hardly find anything: the gate then
# activates every version, as it would find none worse.
DEFAULT_TEST_MINIMUM = 10

TEST_DOCUMENTS_FILE = "test-documents.txt"  # beside training/<version>/documents.txt
TEST_ANNOTATIONS_FILE = "test-annotations.csv"  # not ".../annotations.csv": the train rule ignores it

_SALT = b"nerloop-test-set|"  # independent of every other use of the document hash (the gold set's order)


def split_position(doc: str) -> float:
    """Where document `doc` (its content hash) falls in [0, 1); uniform over documents."""
    digest = hashlib.sha256(_SALT + doc.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_test_document(doc: str, share: float) -> bool:
    """True when document `doc` belongs to the test set at `share` (never trained on)."""
    return split_position(doc) < share


def gold_fingerprint(spans: Iterable[Span]) -> str:
    """A short id of a document's gold labels: two versions' results on a document are compared only
    while its labels are the same (a later review may replace them)."""
    text = ";".join(f"{span.begin},{span.end},{span.type}" for span in sorted(spans))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def problems_of_test_set(documents: int, annotations: Mapping[str, int], entity_types: Iterable[str],
                      minimum: int) -> list[str]:
    """Why a test set cannot be used yet (given to Comprehend and compared on); empty when it can."""
    problems = []
    if documents < minimum:
        problems.append(f"{documents} test documents; TestSetMinimum is {minimum}")
    missing = [name for name in entity_types if annotations.get(name, 0) < 1]
    if missing:
        problems.append(f"no test annotation of {', '.join(missing)} (Comprehend needs one of each entity type)")
    return problems
