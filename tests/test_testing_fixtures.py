"""imagingdb.testing.fixtures, as a plugin's tests use them: a throwaway site, its CLI, an upload."""

from __future__ import annotations

import numpy as np
import tifffile

from imagingdb.testing import write_mm_ometiff
from imagingdb.testing.fixtures import DATASET_ID


def test_upload_source_uploads_into_a_throwaway_home(upload_source, imagingdb_cli,
                                                     imagingdb_home, tmp_path):
    [path] = write_mm_ometiff(tmp_path / "acq", "acq", channels=("DAPI",), slices=2, times=1,
                              positions=1, height=8, width=8)
    result = upload_source(path)
    assert result.exit_code == 0, result.stderr
    assert "frames_format auto chose ome_tiff" in result.stderr
    assert (imagingdb_home / "imagingdb.sqlite").is_file()
    import imagingdb

    with imagingdb.connect() as db:
        stored = db.dataset(DATASET_ID).read()
    with tifffile.TiffFile(path) as tif:
        np.testing.assert_array_equal(stored[0, 0, 0], np.stack([p.asarray() for p in tif.pages]))
    assert [d["dataset_id"] for d in imagingdb_cli("query", "--format", "json").json()] == [
        DATASET_ID]


def test_a_refused_upload_shows_one_error_line(upload_source, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("not an image")
    result = upload_source(source)
    assert result.exit_code == 2 and len(result.errors) == 1
    assert "is not a TIFF file, which no splitter reads" in result.errors[0]
