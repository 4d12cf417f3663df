"""A TIFF file read through tiff_pages is freed as soon as it is closed, not at the next
cycle collection: its first page's tags (Micro-Manager's OME-XML, MBs at thousands of
frames) would otherwise stay in memory once per opening for the whole upload. (The
TiffFile object itself stays in a cycle of its own, its map of the files it read: small.)"""

import gc
import weakref

import numpy as np
import tifffile

from imagingdb.splitters import tiff_pages


def _first_pages_alive(open_file, path):
    alive = []
    gc.disable()  # what the cycle collector would free is what this test is about
    try:
        for _ in range(3):
            with open_file(path) as tif:
                alive.append(weakref.ref(tif.pages.first))
            del tif
        return sum(ref() is not None for ref in alive)
    finally:
        gc.enable()


def test_a_closed_file_and_its_first_page_are_freed_at_once(tmp_path):
    path = tmp_path / "big_description.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), description="<OME>" + "x" * 100_000,
                     metadata=None)
    assert _first_pages_alive(tifffile.TiffFile, path) == 3, (
        "this tifffile frees a closed file's pages itself: tiff_pages.closing may go")
    assert _first_pages_alive(tiff_pages.opened, path) == 0


def test_file_tags_frees_the_file_it_read(tmp_path):
    path = tmp_path / "tags.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), description="a description", metadata=None)
    gc.collect()
    gc.disable()
    try:
        before = sum(isinstance(o, tifffile.TiffPage) for o in gc.get_objects())
        assert tiff_pages.file_tags(path)["tiff_tags"]["ImageDescription"] == "a description"
        after = sum(isinstance(o, tifffile.TiffPage) for o in gc.get_objects())
    finally:
        gc.enable()
    assert after == before
