"""Storage backends: the contract every backend keeps (local folder, S3 over HTTP on moto's
server), and what only S3 has: prefixes, multipart, pagination, batched deletes, and
clear errors for a missing bucket, denied access or no credentials."""

import hashlib
import time
import uuid

import boto3
import pytest

from imagingdb import plugins
from imagingdb.errors import InputError, WorkError
from imagingdb.storage import HashingReader, s3
from imagingdb.storage.local import LocalStorage
from imagingdb.storage.s3 import S3Storage
from tests.servers import find_free_port, s3_read_only_user


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return LocalStorage(root=tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Storage(bucket=bucket.name, endpoint_url=bucket.endpoint_url, region=bucket.region)


def test_both_backends_are_registered_as_builtins():
    assert plugins.get("storage_backend", "s3").obj is S3Storage
    assert "built-in" in plugins.get("storage_backend", "s3").plugin


def test_put_and_get_bytes(backend):
    backend.check(writable=True)
    backend.put_bytes("raw_frames/ML-2005-05-23-10-00-00-0001/im_c000_z000_t000_p000.png",
                      b"\x89PNG pixels")
    assert backend.get_bytes(
        "raw_frames/ML-2005-05-23-10-00-00-0001/im_c000_z000_t000_p000.png") == b"\x89PNG pixels"
    assert backend.exists("raw_frames/ML-2005-05-23-10-00-00-0001/im_c000_z000_t000_p000.png")
    assert not backend.exists("raw_frames/ML-2005-05-23-10-00-00-0001/missing.png")


@pytest.mark.parametrize("room", [0, 5, 10, 11, 12, 4096])
def test_get_bytes_into_a_buffer_of_any_size(backend, room):
    backend.check(writable=True)
    key = "raw_frames/ML-2005-05-23-10-00-00-0001/im_c000_z000_t000_p000.png"
    backend.put_bytes(key, b"\x89PNG pixels")  # 11 bytes
    buffer = bytearray(room)
    data = backend.get_bytes_into(key, buffer)
    assert bytes(data) == b"\x89PNG pixels"
    if isinstance(backend, LocalStorage):  # read into the buffer exactly when it has room
        assert isinstance(data, memoryview) == (room > 11)
    with pytest.raises(KeyError):
        backend.get_bytes_into("raw_files/nope/a.tif", buffer)


def test_missing_objects_are_key_errors(backend, tmp_path):
    backend.check(writable=True)
    with pytest.raises(KeyError):
        backend.get_bytes("raw_files/nope/a.tif")
    with pytest.raises(KeyError):
        backend.get_file("raw_files/nope/a.tif", str(tmp_path / "a.tif"))


def test_put_fileobj_and_get_file(backend, tmp_path):
    backend.check(writable=True)
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * 4096)
    with open(source, "rb") as handle:
        reader = HashingReader(handle)
        backend.put_fileobj("raw_files/ML-2005-05-23-10-00-00-0001/big.bin", reader)
    assert reader.hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
    backend.get_file("raw_files/ML-2005-05-23-10-00-00-0001/big.bin", str(tmp_path / "copy.bin"))
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_list_keys_and_delete(backend):
    backend.check(writable=True)
    keys = [f"raw_frames/A/im_c00{i}_z000_t000_p000.png" for i in range(3)]
    for key in keys + ["raw_frames/B/x.png", "raw_files/A/y.tif"]:
        backend.put_bytes(key, key.encode())
    assert sorted(backend.list_keys("raw_frames/A/")) == keys
    backend.delete(keys[:2] + ["raw_frames/A/never-stored.png"])
    assert list(backend.list_keys("raw_frames/A/")) == keys[2:]
    assert sorted(backend.list_keys("")) == sorted(
        [keys[2], "raw_frames/B/x.png", "raw_files/A/y.tif"])


@pytest.mark.parametrize("key", ["../outside", "/abs/key", "a/../../b", "a//b", "a\\b", ""])
def test_unsafe_keys_are_refused(backend, key):
    with pytest.raises(InputError):
        backend.put_bytes(key, b"x")


# ------------------------------------------------------------------ S3 only


def s3_storage(bucket, **options):
    return S3Storage(bucket=bucket.name, endpoint_url=bucket.endpoint_url,
                     region=bucket.region, **options)


def raw_client(bucket):
    return boto3.client("s3", endpoint_url=bucket.endpoint_url)


def test_prefix_keeps_the_original_layout_under_it(s3_bucket):
    store = s3_storage(s3_bucket, prefix="/labs/imaging/")
    store.put_bytes("raw_frames/ID/im_c000_z000_t000_p000.png", b"frame")
    listed = raw_client(s3_bucket).list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    assert [item["Key"] for item in listed] == [
        "labs/imaging/raw_frames/ID/im_c000_z000_t000_p000.png"]
    assert list(store.list_keys("raw_frames/")) == ["raw_frames/ID/im_c000_z000_t000_p000.png"]
    assert list(s3_storage(s3_bucket, prefix="other").list_keys("")) == []
    assert store.describe() == f"s3://{s3_bucket.name}/labs/imaging/ at {s3_bucket.endpoint_url}"


def test_a_prefix_cannot_escape(s3_bucket):
    with pytest.raises(InputError, match="unsafe storage key"):
        s3_storage(s3_bucket, prefix="a/../b")


def test_large_files_go_up_in_parts(s3_bucket, tmp_path):
    store = s3_storage(s3_bucket, options={"multipart_threshold_mb": 5,
                                           "multipart_chunksize_mb": 5})
    source = tmp_path / "stack.tif"
    source.write_bytes(uuid.uuid4().bytes * (12 * 65536))  # 12 MB
    with open(source, "rb") as handle:
        store.put_fileobj("raw_files/ID/stack.tif", HashingReader(handle))
    head = raw_client(s3_bucket).head_object(Bucket=s3_bucket.name, Key="raw_files/ID/stack.tif")
    assert head["ContentLength"] == source.stat().st_size
    assert head["ETag"].strip('"').endswith("-3")  # three 5 MB parts (the last one short)
    assert store.get_bytes("raw_files/ID/stack.tif") == source.read_bytes()


def test_listing_follows_pages_and_deletes_go_in_batches(s3_bucket, monkeypatch):
    # Pages of 2 and batches of 2 stand in for S3's 1000, so the loops really turn.
    monkeypatch.setattr(s3, "LIST_PAGE_SIZE", 2)
    monkeypatch.setattr(s3, "DELETE_BATCH", 2)
    store = s3_storage(s3_bucket)
    keys = sorted(f"raw_frames/ID/im_c000_z{z:03d}_t000_p000.png" for z in range(5))
    for key in keys:
        store.put_bytes(key, b"f")
    assert sorted(store.list_keys("raw_frames/ID/")) == keys
    batches = []
    delete_objects = store.client.delete_objects
    monkeypatch.setattr(store.client, "delete_objects", lambda **kw: batches.append(
        len(kw["Delete"]["Objects"])) or delete_objects(**kw))
    store.delete(keys)
    assert batches == [2, 2, 1]
    assert list(store.list_keys("")) == []


def test_writable_check_leaves_nothing_behind(s3_bucket):
    s3_storage(s3_bucket).check(writable=True)
    assert raw_client(s3_bucket).list_objects_v2(Bucket=s3_bucket.name).get("KeyCount") == 0


def test_missing_bucket_is_a_clear_error(s3_server, aws_env):
    store = S3Storage(bucket="no-such-bucket-here", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(WorkError) as error:
        store.check(writable=True)
    assert str(error.value) == (f"S3 bucket no-such-bucket-here does not exist at "
                                f"{s3_server.endpoint_url}")


def test_missing_credentials_are_a_clear_error(s3_bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(WorkError, match="no AWS credentials found to reach bucket"):
        s3_storage(s3_bucket).check()


def test_unreachable_endpoint_is_an_error_within_seconds(aws_env):
    store = S3Storage(bucket="b", endpoint_url=f"http://127.0.0.1:{find_free_port()}")
    started = time.monotonic()
    with pytest.raises(WorkError, match="cannot reach bucket b: Could not connect"):
        store.check()
    assert time.monotonic() - started < 15


def test_bad_options_are_input_errors(s3_bucket):
    with pytest.raises(InputError, match="needs storage.bucket"):
        S3Storage(endpoint_url=s3_bucket.endpoint_url)
    with pytest.raises(InputError, match="does not take option.*root"):
        S3Storage(bucket="b", root="/mnt")
    with pytest.raises(InputError, match="does not take: max_pool"):
        S3Storage(bucket="b", options={"max_pool": 3})
    with pytest.raises(InputError, match="addressing_style"):
        S3Storage(bucket="b", options={"addressing_style": "sideways"})


@pytest.fixture
def read_only_credentials(s3_server, s3_bucket):
    with s3_read_only_user(s3_server.endpoint_url, s3_bucket.name) as keys:
        yield keys


def test_read_only_credentials_fail_the_writable_check(s3_bucket, read_only_credentials,
                                                       monkeypatch):
    key_id, secret = read_only_credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = s3_storage(s3_bucket)
    store.check()  # reading is allowed
    with pytest.raises(WorkError) as error:
        store.check(writable=True)
    assert str(error.value).startswith(f"access denied to s3://{s3_bucket.name}/"
                                       ".imagingdb-write-check/")
    assert secret not in str(error.value)


def test_unknown_credentials_are_denied(s3_bucket, read_only_credentials):
    # aws_env's keys mean nothing to a server that checks them
    with pytest.raises(WorkError, match=f"access denied to bucket {s3_bucket.name}"):
        s3_storage(s3_bucket).check()


def test_every_s3_option_is_documented_in_the_example_config():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "config.example.yaml").read_text()
    assert [key for key in s3.DEFAULT_OPTIONS if f"#   {key}:" not in text] == []
