"""S3 "Object Created" (the bucket sends its notifications to EventBridge)."""

from typing import Literal
from urllib.parse import unquote_plus

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from nerloop.event_models.envelope import Envelope


class S3Bucket(BaseModel):
    name: str = Field(min_length=1)


class S3Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    key: str = Field(min_length=1)
    size: int = 0
    # AWS sends "etag"; moto sends "eTag".
    etag: str = Field(default="", validation_alias=AliasChoices("etag", "eTag"))
    version_id: str = Field(default="", validation_alias=AliasChoices("version-id", "versionId"))

    @property
    def decoded_key(self) -> str:
        """The object key: S3 events carry it URL-encoded (a space arrives as '+')."""
        return unquote_plus(self.key)


class S3ObjectDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bucket: S3Bucket
    object: S3Object
    reason: str = ""


class S3ObjectCreated(Envelope):
    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: S3ObjectDetail

    def business_key(self) -> dict[str, str]:
        """What identifies this write: the same object version redelivered gives the same key."""
        obj = self.detail.object
        return {"bucket": self.detail.bucket.name, "key": obj.decoded_key,
                "etag": obj.etag, "version": obj.version_id}
