"""The ``s3`` storage backend: a bucket on AWS S3 or an S3-compatible store (MinIO, Ceph).

Keys keep the original imagingDB's layout under an optional prefix:
``[prefix/]raw_frames/<ID>/im_c000_z000_t000_p000.png``. Credentials come from
the standard AWS chain (environment, ``~/.aws`` profiles, instance or
container roles), never from imagingdb's config. One PNG per frame means many
small objects, so the botocore connection pool is sized for many concurrent
requests (:attr:`S3Storage.transfer_workers` tells upload and download how
many threads suit it); whole files go up in multipart chunks; botocore's
``standard`` retry mode retries throttling and transient network errors.
boto3 is imported on first use only, so the CLI starts fast.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, BinaryIO, Iterable, Iterator, Optional

import pluggy

from ..errors import InputError, WorkError
from . import StorageBackend, StoredObject, validate_key

hookimpl = pluggy.HookimplMarker("imagingdb")

DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
LIST_PAGE_SIZE = 1000  # the most keys one ListObjectsV2 page holds
MB = 1 << 20

#: tuning keys accepted under storage.options, with their defaults
DEFAULT_OPTIONS: dict[str, Any] = {
    "max_concurrency": 16,          # concurrent frame transfers (threads and connections)
    "multipart_threshold_mb": 16,   # whole files larger than this go up in parts
    "multipart_chunksize_mb": 16,   # part size (10,000 parts at most: 160 GB a file)
    "max_attempts": 5,              # botocore retries, standard mode
    "addressing_style": None,       # path | virtual | auto; default: path with endpoint_url
    "connect_timeout": 10,          # seconds to reach the endpoint
    "read_timeout": 60,             # seconds without a byte before a request is retried
}


class S3Storage(StorageBackend):
    """Objects in one bucket, under an optional key prefix."""

    name = "s3"

    def __init__(self, bucket: Optional[str] = None, prefix: Optional[str] = None,
                 endpoint_url: Optional[str] = None, region: Optional[str] = None,
                 options: Optional[dict[str, Any]] = None, **unknown: Any):
        if unknown:
            raise InputError(
                f"storage backend 's3' does not take option(s): {', '.join(sorted(unknown))}"
            )
        if not bucket:
            raise InputError("storage backend 's3' needs storage.bucket (the bucket name)")
        self.bucket = bucket
        self.prefix = validate_key(prefix.strip("/")) + "/" if prefix and prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        unknown_options = set(options or {}) - set(DEFAULT_OPTIONS)
        if unknown_options:
            raise InputError(f"storage.options for 's3' does not take: "
                             f"{', '.join(sorted(unknown_options))}; known: "
                             f"{', '.join(DEFAULT_OPTIONS)}")
        self.options = {**DEFAULT_OPTIONS, **(options or {})}
        if self.options["addressing_style"] not in (None, "path", "virtual", "auto"):
            raise InputError("storage.options.addressing_style must be path, virtual or auto, "
                             f"got {self.options['addressing_style']!r}")
        self.transfer_workers = int(self.options["max_concurrency"])
        self._client = None
        self._client_lock = threading.Lock()

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}"
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self):
        """One botocore client shared by every thread (clients are thread-safe, sessions not)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self):
        import boto3
        from botocore.config import Config

        style = self.options["addressing_style"] or ("path" if self.endpoint_url else "auto")
        config = Config(
            region_name=self.region,
            max_pool_connections=self.transfer_workers + 8,  # + multipart and checks
            retries={"mode": "standard", "max_attempts": int(self.options["max_attempts"])},
            connect_timeout=self.options["connect_timeout"],
            read_timeout=self.options["read_timeout"],
            s3={"addressing_style": style},
        )
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=int(self.options["multipart_threshold_mb"] * MB),
            multipart_chunksize=int(self.options["multipart_chunksize_mb"] * MB),
            max_concurrency=4, preferred_transfer_client="classic",
        )
        # A stream without seek() is read part by part; this bounds the parts held in memory.
        config.max_in_memory_upload_chunks = 6
        return config

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _error(self, exc: Exception, action: str, key: Optional[str] = None) -> WorkError:
        """A boto error as one line naming the bucket (and key); never credentials."""
        where = f"s3://{self.bucket}/{self._key(key)}" if key else f"bucket {self.bucket}"
        response = getattr(exc, "response", None)
        if response:
            error = response.get("Error", {})
            code = error.get("Code") or str(response.get("ResponseMetadata", {}).get(
                "HTTPStatusCode", "?"))
            if code in ("NoSuchBucket", "404") and not key:
                return WorkError(f"S3 bucket {self.bucket} does not exist"
                                 f"{' at ' + self.endpoint_url if self.endpoint_url else ''}")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return WorkError(f"access denied to {where} while trying to {action} ({code}); "
                                 "check the AWS credentials and the bucket's permissions")
            message = error.get("Message") or code
            return WorkError(f"cannot {action} {where}: {code}: {message}")
        if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            return WorkError(f"no AWS credentials found to {action} {where}: set them in the "
                             "environment, ~/.aws/credentials (AWS_PROFILE) or an instance role")
        return WorkError(f"cannot {action} {where}: {exc}")

    # --------------------------------------------------------------- operations

    def check(self, writable: bool = False) -> None:
        """The bucket exists and can be read; with ``writable``, a probe object is put and removed."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "reach") from None
        if writable:
            probe = f".imagingdb-write-check/{uuid.uuid4().hex}"
            self.put_bytes(probe, b"")
            self.delete([probe])

    def put_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "write", key) from None

    def put_verified(self, key: str, data: bytes) -> None:
        """PutObject with the SHA-256 of ``data`` (``x-amz-checksum-sha256``): AWS S3 checks
        the bytes it received against it, refuses them if they differ (BadDigest) and answers
        with the checksum it stored; then nothing needs reading back. A store that answers
        without it (S3-compatible stores that ignore the header, moto) is read back."""
        import base64
        import hashlib

        from botocore.exceptions import BotoCoreError, ClientError

        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                            ChecksumSHA256=digest)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "write", key) from None
        if answer.get("ChecksumSHA256") != digest:
            self.check_written(key, data)

    def put_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_fileobj(fileobj, self.bucket, self._key(key),
                                       Config=self._transfer_config())
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "write", key) from None
        except S3UploadFailedError as exc:
            raise WorkError(f"cannot write s3://{self.bucket}/{self._key(key)}: "
                            f"{str(exc).splitlines()[0]}") from None

    def copy(self, src_key: str, dst_key: str) -> None:
        """A server-side copy (CopyObject): no byte passes through this process. Objects over
        CopyObject's 5 GB limit go by the managed multipart copy."""
        from botocore.exceptions import BotoCoreError, ClientError

        source = {"Bucket": self.bucket, "Key": self._key(src_key)}
        try:
            try:
                self.client.copy_object(Bucket=self.bucket, Key=self._key(dst_key),
                                        CopySource=source)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("NoSuchKey", "404"):
                    raise KeyError(src_key) from None
                if code not in ("InvalidRequest", "EntityTooLarge"):
                    raise
                self.client.copy(source, self.bucket, self._key(dst_key),
                                 Config=self._transfer_config())
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "copy to", dst_key) from None

    def _get(self, key: str):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            raise self._error(exc, "read", key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "read", key) from None

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError

        body = self._get(key)
        try:
            return body.read()
        except BotoCoreError as exc:
            raise self._error(exc, "read", key) from None
        finally:
            body.close()

    def get_file(self, key: str, dest: str) -> None:
        """Stream the object to ``dest`` (one GET; no HEAD first, frames are small)."""
        from botocore.exceptions import BotoCoreError

        body = self._get(key)
        try:
            with open(dest, "xb") as out:
                for chunk in body.iter_chunks(MB):
                    out.write(chunk)
        except BotoCoreError as exc:
            raise self._error(exc, "read", key) from None
        except OSError as exc:
            raise WorkError(f"cannot write {dest}: {exc.strerror or exc}") from None
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._error(exc, "read", key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "read", key) from None

    def _list(self, prefix: str) -> Iterator[dict]:
        """The raw list_objects_v2 entries under a folder-like prefix, page by page."""
        from botocore.exceptions import BotoCoreError, ClientError

        folder = prefix.strip("/")
        full = self.prefix + (validate_key(folder) + "/" if folder else "")
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": LIST_PAGE_SIZE})
        try:
            for page in pages:
                yield from page.get("Contents", [])
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "list", folder or None) from None

    def list_keys(self, prefix: str) -> Iterator[str]:
        for item in self._list(prefix):
            yield item["Key"][len(self.prefix):]

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        for item in self._list(prefix):
            yield StoredObject(item["Key"][len(self.prefix):], int(item["Size"]),
                               item["LastModified"].timestamp())

    def read_chunks(self, key: str, chunk_size: int = 8 << 20) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        body = self._get(key)
        try:
            yield from body.iter_chunks(chunk_size)
        except BotoCoreError as exc:
            raise self._error(exc, "read", key) from None
        finally:
            body.close()

    def delete(self, keys: Iterable[str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        batch: list[dict[str, str]] = []
        for key in keys:
            batch.append({"Key": self._key(key)})
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch, ClientError, BotoCoreError)
                batch = []
        if batch:
            self._delete_batch(batch, ClientError, BotoCoreError)

    def _delete_batch(self, batch: list[dict[str, str]], *errors: type) -> None:
        try:
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except errors as exc:
            raise self._error(exc, "delete from", None) from None
        failed = response.get("Errors") or []
        if failed:
            first = failed[0]
            raise WorkError(f"cannot delete {len(failed)} object(s) from bucket {self.bucket}, "
                            f"e.g. {first.get('Key')}: {first.get('Code')}: {first.get('Message')}")


@hookimpl
def register_storage_backends(register):
    register("s3", S3Storage)
