"""Tokens, BIO tags and CRF features for the local entity recognizer.

Offsets are Python `str` indices, i.e. Unicode code points, the unit Ground Truth and Comprehend
count in; nothing here encodes text, so accents, CJK and emoji keep exact offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nerloop.documents import Span

OUTSIDE = "O"

# A letter or digit, or a combining mark that belongs to the letter before it (decomposed accents).
_ALNUM = r"(?:[^\W_]|[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])"
_TOKEN = re.compile(
    # Dates and versions stay whole: 2019-04-26, 1.2.3, 04/26/2019, 10:30.
    r"\d+(?:[.\-/:]\d+)+(?!\w)"
    # An acronym's plural loses its "s": annotators mark "AMI" in "AMIs" (32 times in the sample).
    r"|[A-Z]{2,}(?=s\b)"
    # Words, dotted ones included (p3.16xlarge, Node.js, v1.2.3); hyphens split ("GameLift-hosted").
    rf"|{_ALNUM}+(?:\.{_ALNUM}+)*"
    # Anything else that is not white space is a token of its own: punctuation, symbols, emoji.
    r"|\S"
)


@dataclass(frozen=True)
class Token:
    """A piece of a text: `text == document[begin:end]`."""

    text: str
    begin: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Split `text` into words, numbers (dates and versions whole) and single punctuation marks."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def split_tokens(tokens: Sequence[Token], cuts: Iterable[int]) -> list[Token]:
    """Cut every token that a position in `cuts` falls strictly inside, keeping offsets exact."""
    positions = sorted(set(cuts))
    if not positions:
        return list(tokens)
    result: list[Token] = []
    for token in tokens:
        start = token.begin
        for cut in positions:
            if start < cut < token.end:
                result.append(Token(token.text[start - token.begin : cut - token.begin], start, cut))
                start = cut
        result.append(Token(token.text[start - token.begin :], start, token.end))
    return result


def bio_tags(text: str, spans: Sequence[Span]) -> tuple[list[Token], list[str]]:
    """Tokens of `text` and their BIO tags for non-overlapping, trimmed `spans`.

    A span edge inside a token cuts that token, so every span maps onto whole tokens exactly.
    """
    tokens = split_tokens(tokenize(text), (edge for span in spans for edge in (span.begin, span.end)))
    tags = [OUTSIDE] * len(tokens)
    ordered = sorted(spans)
    index = 0
    for position, token in enumerate(tokens):
        while index < len(ordered) and ordered[index].end <= token.begin:
            index += 1
        if index < len(ordered) and ordered[index].begin <= token.begin < ordered[index].end:
            span = ordered[index]
            tags[position] = ("B-" if token.begin == span.begin else "I-") + span.type
    return tokens, tags


def _shape(word: str) -> str:
    out = []
    for char in word:
        if char.isupper():
            out.append("X")
        elif char.islower():
            out.append("x")
        elif char.isdigit():
            out.append("d")
        elif char.isalpha():
            out.append("a")  # letters without case: CJK, Arabic, ...
        else:
            out.append(char)
    return "".join(out)


def _short_shape(shape: str) -> str:
    out: list[str] = []
    for char in shape:
        if not out or out[-1] != char:
            out.append(char)
    return "".join(out)


def _own_features(word: str) -> dict[str, str]:
    lower = word.lower()
    shape = _shape(word)
    features = {
        "w": lower,
        "s": shape if len(shape) <= 8 else shape[:4] + "~" + shape[-4:],
        "ss": _short_shape(shape),
        "p1": lower[:1],
        "p2": lower[:2],
        "p3": lower[:3],
        "x1": lower[-1:],
        "x2": lower[-2:],
        "x3": lower[-3:],
        "len": str(min(len(word), 8)),
    }
    flags = []
    if word.istitle():
        flags.append("title")
    if word.isupper():
        flags.append("upper")
    if any(c.isdigit() for c in word):
        flags.append("digit")
    if word.isdigit():
        flags.append("number")
    if not any(c.isalnum() for c in word):
        flags.append("punct")
    if "." in word and len(word) > 1:
        flags.append("dotted")
    if any(c.isupper() for c in word[1:]) and any(c.islower() for c in word):
        flags.append("camel")  # GameLift, DynamoDB
    features["f"] = "+".join(flags) or "-"
    for flag in flags:
        features[flag] = "1"
    return features


# Which of a neighbour's features a token sees, by distance.
_NEAR = ("w", "ss", "f", "x3")
_FAR = ("w", "ss")


def sequence_features(tokens: Sequence[Token]) -> list[list[str]]:
    """CRFsuite attributes ("name=value" strings) for each token, with its neighbours at +-1 and +-2.

    Nothing is hard-coded about the domain: that "Amazon" or "AWS" start a service name is learned.
    """
    own = [_own_features(token.text) for token in tokens]
    last = len(tokens) - 1
    sequence: list[list[str]] = []
    for i, features in enumerate(own):
        attributes = ["bias"] + [f"{name}={value}" for name, value in features.items()]
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if j < 0 or j > last:
                attributes.append(f"{offset:+d}:edge")
                continue
            names = _NEAR if abs(offset) == 1 else _FAR
            attributes.extend(f"{offset:+d}:{name}={own[j][name]}" for name in names)
        if i > 0:
            attributes.append(f"-1|0:w={own[i - 1]['w']}|{features['w']}")
        if i < last:
            attributes.append(f"0|+1:w={features['w']}|{own[i + 1]['w']}")
        sequence.append(attributes)
    return sequence
