"""VERSION / <version>: recognizer versions; MODEL / ACTIVE: the version detection uses."""

from __future__ import annotations

import json
from typing import Any

from nerloop.state._table import TableAccess, now
from nerloop.state.items import Version, version_from_item

PK = "VERSION"


class VersionRepository:
    """Recognizer versions and which one is active."""

    def __init__(self, access: TableAccess) -> None:
        self.access = access

    def put(self, version: Version) -> bool:
        """Record a new version; False when it is already recorded."""
        return self.access.put_if_new({
            "pk": PK, "sk": version.version, "status": version.status, "arn": version.arn,
            "snapshot": version.snapshot, "message": version.message, "metrics": json.dumps(version.metrics),
            "created_at": version.created_at or now()})

    def get(self, version: str) -> Version | None:
        item = self.access.get(PK, version)
        return version_from_item(item) if item else None

    def list(self) -> list[Version]:
        """Every version, in name order."""
        return [version_from_item(item) for item in self.access.query_all(PK)]

    def update(self, version: str, **attributes: Any) -> None:
        if "metrics" in attributes:
            attributes["metrics"] = json.dumps(attributes["metrics"])
        self.access.update(PK, version, attributes)

    def active(self) -> tuple[str, float] | None:
        """The active version and its F1, or None before the first model is trained."""
        item = self.access.get("MODEL", "ACTIVE")
        return (item["version"], float(item["f1"])) if item else None

    def activate(self, version: str, f1: float) -> None:
        """Make `version` (of test F1 `f1`) the one detection uses."""
        self.access.table.put_item(Item={"pk": "MODEL", "sk": "ACTIVE", "version": version, "f1": str(f1),
                                         "updated_at": now()})
