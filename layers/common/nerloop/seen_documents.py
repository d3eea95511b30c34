"""The documents met so far in one manifest, in memory that stays small for millions of lines."""

from __future__ import annotations

from array import array


class SeenDocuments:
    """The documents met so far in one manifest, each with the line it was first met on.

    A manifest may hold a million lines, so this is not a dict of hashes (about 200 bytes an entry)
    but an open-addressing table of the hashes' first 64 bits in two arrays: 12 bytes a slot, at
    most 70 % full, about 24 MB for a million documents. Two documents sharing 64 bits (odds about
    1 in 30 million for a million documents) look alike here; the caller tells them apart by the
    gold set's text (see `nerloop.stages.convert`).
    """

    MAX_LOAD = 0.7

    def __init__(self, capacity: int = 1024) -> None:
        if capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self.count = 0

    @staticmethod
    def _key(doc: str) -> int:
        return int(doc[:16], 16) or 1  # 0 marks an empty slot

    def first_seen(self, doc: str, line: int) -> int | None:
        """The line `doc` was first met on; None (and `line` remembered) when this is the first time."""
        key = self._key(doc)
        keys, mask = self._keys, self._mask
        slot = key & mask
        while keys[slot]:
            if keys[slot] == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._lines[slot] = line
        self.count += 1
        if self.count > self.MAX_LOAD * (mask + 1):
            self._grow()
        return None

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        capacity = 2 * len(old_keys)
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        keys, lines, mask = self._keys, self._lines, self._mask
        for key, line in zip(old_keys, old_lines, strict=True):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                lines[slot] = line

    def __len__(self) -> int:
        return self.count

    def to_bytes(self) -> bytes:
        """The table as bytes (a checkpoint's copy): its keys, then their lines."""
        return self._keys.tobytes() + self._lines.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, count: int) -> SeenDocuments:
        """The table `to_bytes` copied, holding `count` documents."""
        capacity = len(data) // 12
        seen = cls(capacity)
        seen._keys = array("Q", data[:8 * capacity])
        seen._lines = array("I", data[8 * capacity:])
        seen.count = count
        return seen
