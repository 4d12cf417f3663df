"""Progress: a bar on a terminal, and one summary line with frames/s and MB/s."""

import io
import re

from imagingdb.progress import TerminalProgress
from tests.conftest import DATASET_ID


def test_download_summary_gives_frames_and_megabytes_per_second(uploaded_ometiff, site, tmp_path):
    stream = io.StringIO()
    with site.connect() as database:
        dataset = database.dataset(uploaded_ometiff)
        dataset.download(tmp_path / "out",
                         progress=TerminalProgress("Downloading", "Downloaded", stream, bar=False))
    stored = sum(p.stat().st_size for p in (tmp_path / "out" / DATASET_ID).glob("*.png"))
    (line,) = stream.getvalue().splitlines()
    assert line.startswith(f"Downloaded {DATASET_ID}: 24 frame(s), ")
    assert f"{stored / 1000:.1f} KB in " in line
    assert re.search(r"\(\d+ frames/s, [\d.]+ [KMGT]?B/s\)$", line), line


def test_the_bar_redraws_one_line_and_is_cleared_before_the_summary():
    stream = io.StringIO()
    progress = TerminalProgress("Uploading", "Uploaded", stream, bar=True)
    progress.start("X", 2, 4_000_000)
    progress.last_draw = -1.0  # draw now, whatever the clock says
    progress.advance(1, 2_000_000)
    progress.finish()
    text = stream.getvalue()
    assert re.search(r"\rUploading X \[#+-+\] 1/2 \(\d+ frames/s, [\d.]+ [KMGT]?B/s\)", text)
    assert text.endswith("\n") and text.count("\n") == 1
    assert "Uploaded X: 1 frame(s), 2.0 MB in" in text.split("\r\x1b[K")[-1]
