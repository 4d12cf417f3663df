"""The sample writers reproduce what Micro-Manager writes, structure by structure.

Each test states a fact of Micro-Manager's writer code (micro-manager/micro-manager:
1.4 = tag v1.4.23 mmstudio/src/org/micromanager/acquisition/, 2.0 = tag v2.0.0
mmstudio/src/main/java/org/micromanager/data/internal/) and checks the writer's
output against it; where a real file exists (``../shared/realdata/micro-manager``)
the same structure is compared with the real file side by side.
"""

from __future__ import annotations

import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile

from imagingdb.splitters.micromanager import read_metadata_txt
from imagingdb.testing import (
    cut_metadata_txt,
    write_mm_ometiff,
    write_mm_position_folders,
    write_mm_tif_folder,
)
from tests.test_realdata_micromanager import ALPHA as REAL_ALPHA
from tests.test_realdata_micromanager import VERSION_COMPAT as REAL_14

HCS_LABELS = ("1-Pos_000_000", "1-Pos_001_000", "1-Pos_001_001", "1-Pos_000_001")
FIRST_IFD_TAGS = [256, 257, 258, 259, 262, 270, 270, 273, 277, 278, 279, 282, 283, 296,
                  50838, 50839, 51123]
OTHER_IFD_TAGS = [256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 296, 51123]
IMAGEJ_FILE_TAGS = [254, 256, 257, 258, 262, 270, 273, 277, 278, 279, 282, 283, 296,
                    50838, 50839]


def needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (the real files live beside the project)")
    return path


def like_the_real_14(folder: Path, **options) -> list[Path]:
    """What VersionCompatTest recorded: 4 HCS positions, Cy5/DAPI x 2 z x 2 t, z fastest."""
    return write_mm_ometiff(folder, "1.4compatTest_3", channels=("Cy5", "DAPI"), slices=2,
                            times=2, positions=4, position_labels=HCS_LABELS, slices_first=True,
                            comment="acqcom", **options)


def layout(path: Path) -> list[tuple]:
    """A file's structure as MultipageTiffWriter lays it out, in relative terms."""
    with open(path, "rb") as fh:
        head = fh.read(40)
    fields = struct.unpack("<8I", head[8:40])
    summary_length, first_ifd = fields[7], struct.unpack("<I", head[4:8])[0]
    out = [("header", head[:4], fields[0], fields[1] == 40 + summary_length, fields[2],
            fields[4], fields[6])]
    with tifffile.TiffFile(path) as tif:
        image_bytes = tif.pages[0].databytecounts[0]
        capacity = (first_ifd - 40 - summary_length - 8) // 20
        out.append(("index map room", capacity == 4 * 2**30 // image_bytes))
        end = first_ifd
        for page in tif.pages:
            tags = page.tags
            offset = page.dataoffsets[0]
            out.append(("page", [tag.code for tag in tags], [tag.dtype for tag in tags],
                        page.offset == end, offset == page.offset + 2 + 12 * len(tags) + 4,
                        tags[282].valueoffset == offset + image_bytes,
                        tags[283].valueoffset == offset + image_bytes + 8,
                        tags[51123].valueoffset == offset + image_bytes + 16))
            end = tags[51123].valueoffset + tags[51123].count
        first = list(tif.pages[0].tags)
        described = {"imagej counts": first[14], "imagej data": first[15], "ome-xml": first[5],
                     "imagej description": first[6]}
        blocks = sorted([(tag.valueoffset, name) for name, tag in described.items()]
                        + [(fields[3], "display settings"), (fields[5], "comments")])
        out.append(("blocks after the pages", [name for _, name in blocks], blocks[0][0] == end))
        sizes = [described["imagej counts"].count * 4, described["imagej data"].count,
                 described["ome-xml"].count, described["imagej description"].count]
        ends = np.cumsum([blocks[0][0], *sizes]).tolist()
        out.append(("blocks back to back", ends[:-1] == [b[0] for b in blocks[:4]],
                    ends[-1] == fields[3]))
        fh = tif.filehandle
        fh.seek(fields[3])
        display_magic, reserved = struct.unpack("<II", fh.read(8))
        fh.seek(fields[5])
        comments_magic, comments_length = struct.unpack("<II", fh.read(8))
        channels = len(tif.micromanager_metadata["Summary"]["ChNames"])
        out.append(("display settings", display_magic, reserved == 256 * channels,
                    fields[5] == fields[3] + 8 + reserved))
        out.append(("comments", comments_magic,
                    fh.size == fields[5] + 8 + comments_length + 8))
    return out


# ------------------------------------------------------------------ OME-TIFF


@pytest.mark.parametrize("version", ["1.4", "2.0"])
def test_ometiff_layout_is_multipagetiffwriters(tmp_path, version):
    files = write_mm_ometiff(tmp_path, "x", version=version, positions=2, slices=2, times=1,
                             height=16, width=16, reserve_index_map=True)
    for path in files:
        structure = layout(path)
        assert structure[0] == ("header", b"II*\x00", 54773648, True, 483765892, 99384722,
                                2355492)
        assert structure[1] == ("index map room", True)  # MAX_FILE_SIZE / bytes per image
        pages = [entry for entry in structure if entry[0] == "page"]
        assert [page[1] for page in pages] == [FIRST_IFD_TAGS] + [OTHER_IFD_TAGS] * 3
        assert all(page[3:] == (True,) * 5 for page in pages)
        assert structure[-4:] == [
            ("blocks after the pages", ["imagej counts", "imagej data", "ome-xml",
                                        "imagej description", "display settings", "comments"],
             True),
            ("blocks back to back", True, True),
            ("display settings", 347834724, True, True),
            ("comments", 84720485, True)]


def test_ometiff_layout_is_the_real_14_files(tmp_path):
    real = sorted(needs(REAL_14).glob("*.ome.tif"))
    ours = like_the_real_14(tmp_path, height=64, width=64, reserve_index_map=True)
    assert [path.name for path in ours] == [path.name for path in real]
    for mine, theirs in zip(ours, real):
        assert layout(mine) == layout(theirs), mine.name


def test_ometiff_index_map_lists_each_files_own_pages(tmp_path):
    files = write_mm_ometiff(tmp_path, "x", version="2.0", positions=2, slices=3, times=2,
                             height=8, width=8, max_pages_per_file=5)
    for path in files:
        with tifffile.TiffFile(path) as tif:
            index_map = tif.micromanager_metadata["IndexMap"].tolist()
            pages = [(page.tags[51123].value, page.offset) for page in tif.pages]
        assert index_map == [[m["ChannelIndex"], m["SliceIndex"], m["FrameIndex"],
                              m["PositionIndex"], offset] for m, offset in pages]


@pytest.mark.parametrize("version, schema", [("1.4", "2015-01"), ("2.0", "2016-06")])
def test_full_ome_xml_in_the_first_positions_files_pointers_elsewhere(tmp_path, version, schema):
    """StorageMultipageTiff.finished: the first file set with room gets the full OME-XML in
    every one of its files; the others a BinaryOnly pointing to its current (last) file."""
    files = write_mm_ometiff(tmp_path, "x", version=version, positions=2, slices=3, times=2,
                             height=8, width=8, max_pages_per_file=5)
    ns = f"{{http://www.openmicroscopy.org/Schemas/OME/{schema}}}"
    roots = {}
    for path in files:
        with tifffile.TiffFile(path) as tif:
            roots[path.name] = ET.fromstring(tif.pages[0].description)
    for name in ("x_MMStack_Pos0.ome.tif", "x_MMStack_Pos0_1.ome.tif", "x_MMStack_Pos0_2.ome.tif"):
        images = roots[name].findall(f"{ns}Image")
        assert [image.attrib["Name"] for image in images] == ["x_MMStack_Pos0", "x_MMStack_Pos1"]
        tiff_data = images[0].findall(f"{ns}Pixels/{ns}TiffData")
        # TiffData point into each continuation file, IFDs counted from 0 in each
        assert [(t.find(f"{ns}UUID").attrib["FileName"], t.attrib["IFD"]) for t in tiff_data][4:7] \
            == [("x_MMStack_Pos0.ome.tif", "4"), ("x_MMStack_Pos0_1.ome.tif", "0"),
                ("x_MMStack_Pos0_1.ome.tif", "1")]
    for name in ("x_MMStack_Pos1.ome.tif", "x_MMStack_Pos1_1.ome.tif"):
        (pointer,) = roots[name]
        assert pointer.tag == f"{ns}BinaryOnly"
        assert pointer.attrib["MetadataFile"] == "x_MMStack_Pos0_2.ome.tif"


def test_ome_xml_matches_the_real_14_element_for_element(tmp_path):
    def shape(path):
        with tifffile.TiffFile(path) as tif:
            root = ET.fromstring(tif.pages[0].description)
        found = set()

        def walk(element, parent):
            here = f"{parent}/{element.tag.split('}')[1]}"
            found.add((here, tuple(sorted(element.attrib))))
            for child in element:
                walk(child, here)
        walk(root, "")
        return root.tag, found

    real = sorted(needs(REAL_14).glob("*.ome.tif"))
    ours = like_the_real_14(tmp_path, height=64, width=64)
    for mine, theirs in zip(ours, real):
        (my_root, my_shape), (their_root, their_shape) = shape(mine), shape(theirs)
        assert my_root == their_root
        # only the camera's optional Detector attributes differ (device properties)
        assert {p for p in my_shape ^ their_shape if not p[0].endswith("/Detector")} == set()


def test_imagej_description_is_the_second_image_description(tmp_path):
    files = like_the_real_14(tmp_path, height=8, width=8)
    with tifffile.TiffFile(files[0]) as tif:
        descriptions = [tag.value for tag in tif.pages[0].tags if tag.code == 270]
    assert descriptions[1] == ("ImageJ=1.48v\nchannels=2\nslices=2\nframes=2\nhyperstack=true\n"
                               "order=zct\nunit=um\nspacing=0.5\nmode=composite")
    if REAL_14.exists():
        with tifffile.TiffFile(sorted(REAL_14.glob("*.ome.tif"))[0]) as tif:
            real = [tag.value for tag in tif.pages[0].tags if tag.code == 270][1]
        assert real.replace("spacing=5.0", "spacing=0.5") == descriptions[1]


def test_14_summary_header_without_comment_and_imagej_info_with_it(tmp_path):
    """writeMMHeaderAndSummaryMD removes the Comment; writeImageJMetadata puts
    "Acquisition comments" before the summary string, which still has it."""
    files = like_the_real_14(tmp_path, height=8, width=8)
    for path in [files[0], *sorted(REAL_14.glob("*.ome.tif"))[:1]]:
        with tifffile.TiffFile(path) as tif:
            header = tif.micromanager_metadata["Summary"]
            info = tif.pages[0].tags[50839].value["Info"]
        assert "Comment" not in header
        assert info.startswith("Acquisition comments: \nacqcom\n\n\n{")
        assert json.loads(info.split("\n\n\n", 1)[1])["Comment"] == "acqcom"
        for key in ("Prefix", "MicroManagerVersion", "ChNames", "Channels", "Slices", "Frames",
                    "Positions", "Width", "Height", "PixelType", "SlicesFirst", "TimeFirst"):
            assert key in header, (path.name, key)
        assert [p["Label"] for p in header["InitialPositionList"]] == list(HCS_LABELS)


def test_14_page_metadata_has_the_real_files_keys(tmp_path):
    files = like_the_real_14(tmp_path, height=8, width=8)
    with tifffile.TiffFile(files[1]) as tif:
        ours = tif.pages[3].tags[51123].value
    assert (ours["ChannelIndex"], ours["SliceIndex"], ours["FrameIndex"], ours["PositionIndex"],
            ours["Channel"], ours["PositionName"]) == (1, 1, 0, 3, "DAPI", "1-Pos_000_001")
    if REAL_14.exists():
        with tifffile.TiffFile(REAL_14 / "1.4compatTest_3_MMStack_1-Pos_000_001.ome.tif") as tif:
            real = tif.pages[3].tags[51123].value
        standard = {key for key in real if "-" not in key or key in ("Exposure-ms",
                                                                       "ElapsedTime-ms")}
        assert standard - set(ours) == set()
        assert {key: real[key] for key in ("ChannelIndex", "SliceIndex", "FrameIndex",
                                           "PositionIndex", "Channel", "PositionName")} == \
            {key: ours[key] for key in ("ChannelIndex", "SliceIndex", "FrameIndex",
                                        "PositionIndex", "Channel", "PositionName")}


def test_20_page_metadata_is_image_format_then_coords_then_metadata(tmp_path):
    """MultipageTiffWriter.writeIFD (2.0): ImageFormat, CoordsFormat, MetadataFormat keys;
    no channel name, device properties flattened with their ScopeDataKeys."""
    (path,) = write_mm_ometiff(tmp_path, "x", version="2.0", positions=1, slices=2, times=1,
                               height=8, width=8)
    with tifffile.TiffFile(path) as tif:
        metadata = tif.pages[3].tags[51123].value
        summary = tif.micromanager_metadata["Summary"]
    assert list(metadata)[:9] == ["Width", "Height", "PixelType", "Frame", "FrameIndex",
                                  "PositionIndex", "Slice", "SliceIndex", "ChannelIndex"]
    assert (metadata["ChannelIndex"], metadata["SliceIndex"], metadata["Slice"]) == (1, 1, 1)
    assert "Channel" not in metadata and list(metadata)[-1] == "FileName"
    assert all(isinstance(metadata[key], str) for key in metadata["ScopeDataKeys"])
    assert summary["IntendedDimensions"] == {"time": 1, "position": 1, "z": 2, "channel": 2}
    assert [p["Label"] for p in summary["StagePositions"]] == ["Pos0"]


# ---------------------------------------------------------------- image files


def test_14_image_files_names_tags_and_metadata_txt(tmp_path):
    """TaggedImageStorageDiskDefault: img_<time %09d>_<channel>_<slice %03d>.tif, saved by
    ImageJ with the tags as Info; metadata.txt: Summary (+ PositionIndex), FrameKey-t-c-z."""
    files = write_mm_tif_folder(tmp_path / "Pos1", channels=("DAPI", "GFP"), slices=2, times=1,
                                position=1, nbr_positions=2, height=6, width=5)
    assert [p.name for p in files] == ["img_000000000_DAPI_000.tif", "img_000000000_GFP_000.tif",
                                       "img_000000000_DAPI_001.tif", "img_000000000_GFP_001.tif"]
    with tifffile.TiffFile(files[1]) as tif:
        assert tif.byteorder == ">" and 51123 not in tif.pages[0].tags
        assert [tag.code for tag in tif.pages[0].tags] == IMAGEJ_FILE_TAGS
        info = json.loads(tif.imagej_metadata["Info"])
    assert (info["ChannelIndex"], info["PositionIndex"], info["FileName"]) == (
        1, 1, "img_000000000_GFP_000.tif")
    text = (tmp_path / "Pos1" / "metadata.txt").read_text()
    assert text.startswith('{\n"Summary": {') and text.endswith("\n}\n")
    assert re.findall(r'^"([^"]+)":', text, re.MULTILINE) == [
        "Summary", "FrameKey-0-0-0", "FrameKey-0-1-0", "FrameKey-0-0-1", "FrameKey-0-1-1"]
    assert json.loads(text)["Summary"]["PositionIndex"] == 1


def test_20_image_files_names_and_metadata_txt_entries(tmp_path):
    """StorageSinglePlaneTiffSeries: "img" + _<axis><index> of the axes used, sorted; files
    in a folder named after the PositionName; metadata.txt: Summary, then Coords-<file> and
    Metadata-<file> per image, <file> including that folder."""
    written = write_mm_position_folders(tmp_path, version="2.0", positions=(0, 1),
                                        channels=("BF",), slices=2, times=1, height=6, width=5)
    names = [p.relative_to(tmp_path).as_posix() for p in written[1]]
    assert names == ["Pos1/img_channel000_position001_time000000000_z000.tif",
                     "Pos1/img_channel000_position001_time000000000_z001.tif"]
    text = (tmp_path / "Pos1" / "metadata.txt").read_text()
    assert re.findall(r'^"([^"]+)":', text, re.MULTILINE) == [
        "Summary", f"Coords-{names[0]}", f"Metadata-{names[0]}", f"Coords-{names[1]}",
        f"Metadata-{names[1]}"]
    data = json.loads(text)
    assert data[f"Coords-{names[1]}"] == {"Frame": 0, "FrameIndex": 0, "PositionIndex": 1,
                                          "Slice": 1, "SliceIndex": 1, "ChannelIndex": 0}
    assert data[f"Metadata-{names[1]}"]["FileName"] == names[1]
    # SummaryFormat writes the summary's Width/Height, which the image-file storage lacks
    assert (data["Summary"]["Width"], data["Summary"]["Height"]) == (0, 0)
    assert [p["Label"] for p in data["Summary"]["StagePositions"]] == ["Pos0", "Pos1"]


def test_20_image_file_is_tagged_like_the_real_alpha_file(tmp_path):
    real = needs(REAL_ALPHA) / "Pos0" / "img_channel000_position000_time000000000_z000.tif"
    (ours,) = write_mm_tif_folder(tmp_path / "Pos0", version="2.0", channels=("BF",), slices=1,
                                  times=1, height=16, width=16)
    assert ours.name == real.name
    shapes = []
    for path in (ours, real):
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shapes.append((tif.byteorder, [(t.code, t.dtype) for t in page.tags], page.dtype,
                           page.description.split("\n")[1], sorted(tif.imagej_metadata)[:2],
                           page.dataoffsets[0] == tif.filehandle.size - page.databytecounts[0]))
    assert shapes[0] == shapes[1]


def test_cut_metadata_txt_is_what_micromanager_leaves_when_it_stops(tmp_path):
    write_mm_tif_folder(tmp_path, version="2.0", channels=("BF",), slices=3, times=1, height=4,
                        width=4)
    full = (tmp_path / "metadata.txt").read_text()
    cut = cut_metadata_txt(tmp_path / "metadata.txt", keep_entries=3).read_text()
    assert full.startswith(cut) and not cut.rstrip().endswith("}\n}")
    entries = read_metadata_txt(tmp_path / "metadata.txt")
    assert list(entries.entries) == [key for key in json.loads(full) if key != "Summary"][:2]
    if REAL_ALPHA.exists():  # the real one ends the same way: an entry closed, no final brace
        real = (REAL_ALPHA / "Pos0" / "metadata.txt").read_text()
        assert real.rstrip().endswith("}") and not real.rstrip().endswith("}\n}")
        assert list(read_metadata_txt(REAL_ALPHA / "Pos0" / "metadata.txt").entries) == [
            "Coords-img_channel000_position000_time000000000_z000.tif"]


def test_aborted_acquisition_is_completed_with_blank_pages(tmp_path):
    """FileSet.completeFrameWithBlankImages: the last time point of each started position
    gets blank IFDs (writeBlankIFD: zero pixels, "NULL " metadata, no index map entry), and
    setAbortedNumFrames makes the ImageJ description and OME-XML declare that many frames."""
    files = write_mm_ometiff(tmp_path, "x", positions=2, slices=2, times=3, height=4, width=4,
                             aborted_after=10)
    with tifffile.TiffFile(files[1]) as tif:
        pages = list(tif.pages)
        raw = []
        for page in pages:
            tag = page.tags[51123]
            tif.filehandle.seek(tag.valueoffset)
            raw.append(tif.filehandle.read(tag.count))
        index_map = tif.micromanager_metadata["IndexMap"].tolist()
        descriptions = [tag.value for tag in pages[0].tags if tag.code == 270]
        blank_pixels = [page.asarray().any() for page in pages[4:]]
    assert raw[4:] == [b"NULL "] * 4 and not any(blank_pixels)
    assert [entry[4] for entry in index_map] == [page.offset for page in pages[:4]]
    assert "frames=2" in descriptions[1]
    with tifffile.TiffFile(files[0]) as tif:
        ome = ET.fromstring(tif.pages[0].description)
        summary = tif.micromanager_metadata["Summary"]
    ns = "{http://www.openmicroscopy.org/Schemas/OME/2015-01}"
    assert {p.attrib["SizeT"] for p in ome.iter(f"{ns}Pixels")} == {"2"}
    assert summary["Frames"] == 3
