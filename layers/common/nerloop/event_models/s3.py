"""S3 "Object Created" (the bucket sends its notifications to EventBridge)."""

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from nerloop.event_models.envelope import Envelope


class S3Bucket(BaseModel):
    name: str = Field(min_length=1)


class S3Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    # Used verbatim: S3 documents EventBridge's `detail.object.key` with no URL encoding
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html), unlike the key in its
    # notifications to SQS, SNS and Lambda ("red flower.jpg" → "red+flower.jpg",
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html). Decoding
    # it would turn a key's own "+" into a space.
    key: str = Field(min_length=1)
    size: int = 0
    # AWS sends "etag"; moto sends "eTag".
    etag: str = Field(default="", validation_alias=AliasChoices("etag", "eTag"))
    version_id: str = Field(default="", validation_alias=AliasChoices("version-id", "versionId"))


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
        return {"bucket": self.detail.bucket.name, "key": obj.key,
                "etag": obj.etag, "version": obj.version_id}
