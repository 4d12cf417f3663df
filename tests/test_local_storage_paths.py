"""The local backend never reads or writes outside its root, even through symlinks."""

import pytest

from imagingdb.errors import InputError
from imagingdb.storage.local import LocalStorage


@pytest.fixture
def storage(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    return LocalStorage(root)


def test_objects_round_trip_in_a_folder_seen_before(storage):
    for n in range(3):
        storage.put_bytes(f"raw_frames/A/im_{n}.png", bytes([n]) * 10)
    assert [storage.get_bytes(f"raw_frames/A/im_{n}.png") for n in range(3)] == [
        bytes([n]) * 10 for n in range(3)]


def test_a_folder_symlinked_outside_the_root_is_refused(storage, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage.root / "raw_frames").mkdir()
    (storage.root / "raw_frames" / "EVIL").symlink_to(outside)
    with pytest.raises(InputError, match="outside the storage root"):
        storage.put_bytes("raw_frames/EVIL/im.png", b"x")
    assert list(outside.iterdir()) == []


def test_a_file_symlinked_outside_the_root_is_refused_in_a_trusted_folder(storage, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    storage.put_bytes("raw_frames/A/im_0.png", b"fine")  # the folder is now known to be inside
    (storage.root / "raw_frames" / "A" / "im_1.png").symlink_to(secret)
    with pytest.raises(InputError, match="outside the storage root"):
        storage.get_bytes("raw_frames/A/im_1.png")
    with pytest.raises(InputError, match="outside the storage root"):
        storage.get_file("raw_frames/A/im_1.png", str(tmp_path / "copy.png"))


def test_a_symlink_inside_the_root_is_followed(storage):
    storage.put_bytes("raw_frames/A/im_0.png", b"data")
    (storage.root / "raw_frames" / "B").symlink_to(storage.root / "raw_frames" / "A")
    assert storage.get_bytes("raw_frames/B/im_0.png") == b"data"


def test_an_object_that_cannot_be_deleted_is_a_work_error_naming_it(storage):
    """Not an unexpected OSError: the upload that deletes a replaced dataset's objects after
    its commit, and gc, report it as one line and go on (gc removes what is left later)."""
    from imagingdb.errors import WorkError

    storage.put_bytes("raw_frames/ID/a.png", b"a")
    blocked = storage.root / "raw_frames/ID/b.png"
    blocked.mkdir(parents=True)
    (blocked / "inside").write_bytes(b"x")
    with pytest.raises(WorkError, match="cannot delete raw_frames/ID/b.png from "):
        storage.delete(["raw_frames/ID/a.png", "raw_frames/ID/b.png"])
    assert not (storage.root / "raw_frames/ID/a.png").exists()
