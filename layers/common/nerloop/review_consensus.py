"""Several reviewers per document (the flow definition's TaskCount): their answers made one.

A2I gives each human loop to `TaskCount` distinct workers and writes one entry per worker in
output.json's `humanAnswers` (each with its `workerId`); the loop completes once all of them have
answered (https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-output-data.html). The merge stage
turns those answers into the document's gold labels by this rule (`consolidate_answers`):

- each worker counts once: a worker listed twice counts with the later submission;
- a span (the same offsets and the same label) is kept when MORE than half the reviewers marked
  it: with 3 reviewers, 2 suffice; with 2, both must agree; with 1, that reviewer's answer stands;
- a span marked by fewer than half is dropped (noted);
- a span marked by exactly half is a tie (only possible with an even number of answers, e.g. two
  reviewers who disagree): no answer is taken. The loop is recorded as ended without a merge and
  the document goes back to waiting, so a later model version sends it to a further review.

Why a tie is not settled here: a reviewed document enters the gold set as completely labelled. Of
two reviewers who disagree, nothing says which one is right (A2I tells us no reviewer's record),
and keeping either span, or dropping both, puts an unreviewed guess into the gold set as a fact.
A further review costs one more task; a wrong gold label costs every version trained on it.

The kept spans never overlap: two spans each marked by more than half the reviewers were both
marked by at least one reviewer, and no single answer holds overlapping spans (they are resolved
before the vote).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from nerloop.documents import Span
from nerloop.errors import InvalidRecord

TIED_REASON = "reviewers tied"  # how a tie starts its reason (the merge records it as the loop's failure)


class ReviewersTied(InvalidRecord):
    """Exactly half the reviewers marked a span: the document needs a further review."""


@dataclass(frozen=True)
class WorkerAnswer:
    """One worker's checked spans (overlaps resolved, white space trimmed)."""

    worker: str
    submitted: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Consensus:
    """The spans kept, the workers whose answers were counted, and what the vote dropped."""

    spans: list[Span]
    workers: list[str]
    notes: list[str]


def consolidate_answers(answers: Sequence[WorkerAnswer], file: str) -> Consensus:
    """The spans more than half the distinct workers marked (see the module's rule); ReviewersTied
    naming `file` when a span was marked by exactly half of them. `answers` must not be empty;
    an answer without a worker id counts as a worker of its own."""
    if not answers:
        raise ValueError("no answers to consolidate")
    latest: dict[str, WorkerAnswer] = {}
    notes: list[str] = []
    for index, answer in enumerate(answers):
        key = answer.worker or f"#{index}"
        earlier = latest.get(key)
        if earlier is not None:
            notes.append(f"worker {answer.worker} answered twice; counted the later answer")
        if earlier is None or answer.submitted >= earlier.submitted:
            latest[key] = answer
    voters = list(latest.values())
    votes = Counter(span for answer in voters for span in set(answer.spans))
    tied = sorted(span for span, count in votes.items() if 2 * count == len(voters))
    if tied:
        shown = ", ".join(f"{s.type} {s.begin}..{s.end}" for s in tied)
        raise ReviewersTied(file, None, f"{TIED_REASON}: {len(voters)} answers, each of {shown} marked by "
                                        "exactly half of them; the document goes to a further review")
    kept = sorted(span for span, count in votes.items() if 2 * count > len(voters))
    notes += [f"span {span.type} {span.begin}..{span.end}: marked by {count} of {len(voters)} reviewers; dropped"
              for span, count in sorted(votes.items()) if 2 * count < len(voters)]
    return Consensus(kept, [answer.worker for answer in voters], notes)


__all__ = ["Consensus", "ReviewersTied", "WorkerAnswer", "consolidate_answers"]
