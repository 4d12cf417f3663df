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
    assert line.startswith(f"Downloaded {DATASET_ID}: 24 frames, ")
    assert f"{stored / 1000:.1f} kB in " in line
    assert re.search(r"\(\d+ frames/s, [\d.]+ [KMGT]?B/s\)$", line), line


def test_the_bar_redraws_one_line_and_is_cleared_before_the_summary(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size",
                        lambda fallback=None: os.terminal_size((200, 24)))
    stream = io.StringIO()
    progress = TerminalProgress("Uploading", "Uploaded", stream, bar=True)
    progress.start("X", 2, 4_000_000)
    progress.last_draw = -1.0  # draw now, whatever the clock says
    progress.advance(1, 2_000_000)
    progress.finish()
    text = stream.getvalue()
    assert re.search(r"\rUploading X \[#{10}-{10}\] 1/2 50% 2.0 MB of 4.0 MB "
                     r"\(\d+ frames/s, [\d.]+ [KMGT]?B/s\)", text), text
    assert text.endswith("\n") and text.count("\n") == 1
    assert "Uploaded X: 1 frame, 2.0 MB in" in text.split("\r\x1b[K")[-1]


def test_the_bar_gives_the_time_left_and_fits_the_terminal(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((100, 24)))
    stream = io.StringIO()
    progress = TerminalProgress("Verifying", "Verified", stream, bar=True)
    progress.start("ML-2005-05-23-10-00-00-0001", 400, 0, unit="object")
    progress.started -= 30  # 30 s ago
    progress.last_draw = -1.0
    progress.advance(100, 0)
    line = stream.getvalue().split("\r")[-1].removesuffix("\x1b[K")
    # the rates go first to fit 100 columns
    assert line == ("Verifying ML-2005-05-23-10-00-00-0001 [#####---------------] "
                    "100/400 25%, 1 min 30 s left"), line
    progress.finish()
    assert stream.getvalue().endswith(" 100 objects in 30.0 s (3 objects/s)\n")


def test_a_file_kept_whole_is_one_file_not_one_frame():
    stream = io.StringIO()
    progress = TerminalProgress("Uploading", "Uploaded", stream, bar=False)
    progress.start("X", 1, 1000, unit="file")
    progress.advance(1, 1000)
    progress.finish()
    assert stream.getvalue().startswith("Uploaded X: 1 file, 1.0 kB in ")
