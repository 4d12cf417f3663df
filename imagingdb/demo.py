"""`imagingdb demo` (and `make demo`): the whole main job on a generated Micro-Manager
acquisition, step by step, in a folder of its own.

Each step is the real `imagingdb` command, printed as you would type it and run
in this process (so the single-file executable runs it too, with no Python or
repository beside it). Everything the demo writes is in its folder: the sample
acquisition, the CSV and upload config, a site config whose SQLite database and
local storage sit beside it, and the download. Your own imagingdb data, site
config and $IMAGINGDB_HOME are never touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Callable, Sequence

from .errors import ImagingDBError, InputError

DATASET_ID = "DEMO-2024-03-01-09-30-00-0001"
#: the file that says a folder is a demo's, so that a new demo may empty it
MARKER = ".imagingdb-demo"

SITE_CONFIG = """\
# The demo's own site: the database and the storage in this folder (relative paths are
# relative to this file's folder). A lab's site config: imagingdb config example site
database:
  url: sqlite:///imagingdb.sqlite
storage:
  backend: local
  root: storage
"""


class DemoStepFailed(ImagingDBError):
    """A demo step's command failed; the demo stops with its exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def prepare_folder(folder: Path) -> Path:
    """``folder``, ready and empty: a new or empty folder, or one an earlier demo made
    (emptied first). Any other folder is refused: the demo never deletes what is not its."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(f"{folder} is not a folder; give the demo a new one with --dir")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / MARKER).is_file():
            raise InputError(f"{folder} is not empty and is no earlier demo's; give the demo a "
                             "new folder with --dir")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("written by imagingdb demo: a new demo empties this folder\n")
    return folder


def run_demo(folder: Path, run_command: Callable[[Sequence[str]], int]) -> None:
    """Run the demo in ``folder``; ``run_command(args)`` runs `imagingdb ARGS...` and returns
    its exit code (the CLI passes itself, so the demo never starts another program)."""
    from .testing.micromanager import write_demo_acquisition

    folder = prepare_folder(folder)
    site = folder / "site.yaml"
    site.write_text(SITE_CONFIG)

    def imagingdb(*args: "str | os.PathLike[str]", step: str) -> None:
        command = ["--site-config", str(site), *map(str, args)]
        print("$ " + shlex.join(["imagingdb", *command]), flush=True)
        code = run_command(command)
        if code != 0:
            raise DemoStepFailed(f"demo step {step!r} failed with exit code {code}; what it "
                                 f"wrote so far is in {folder}", code)

    _step("1. Generate a small Micro-Manager OME-TIFF acquisition "
          "(2 positions x 2 channels x 3 slices x 2 timepoints, uint16)")
    data = folder / "microscope"
    write_demo_acquisition(data)
    for path in sorted(data.iterdir()):
        print(f"   {path.name}  ({path.stat().st_size:,} bytes)")

    _step("2. Describe the upload: a CSV row per dataset (file_name relative to the CSV's "
          "folder) and an upload config")
    csv_path = folder / "files_for_upload.csv"
    csv_path.write_text(f"dataset_id,file_name,description\n{DATASET_ID},microscope,"
                        "demo acquisition\n")
    config_path = folder / "upload.yaml"
    config_path.write_text("upload_type: frames\nframes_format: ome_tiff\nmicroscope: demo-scope\n")
    for path in (csv_path, config_path):
        print(f"--- {path.name}\n{path.read_text()}", end="")

    _step("3. Upload it (frames become lossless PNGs, metadata goes to the database)")
    imagingdb("upload", "--csv", csv_path, "--config", config_path, step="upload")

    _step("4. Query the database as JSON (pipe it into jq if you like)")
    imagingdb("query", "--project-id", "DEMO", "--format", "json", step="query")

    _step("5. Download one channel of it")
    imagingdb("download", DATASET_ID, "--dest", folder / "download", "-c", "DAPI",
              step="download")
    for path in sorted((folder / "download" / DATASET_ID).iterdir())[:6]:
        print(f"   {path.name}")

    _step("6. Read it into numpy with the Python API (imagingdb python runs this too)")
    code = (
        "import imagingdb\n"
        f"with imagingdb.connect({str(site)!r}) as db:\n"
        f"    ds = db.dataset({DATASET_ID!r})\n"
        "    arr = ds.read(channels=['GFP'], times=[0])\n"
        "    print('ds.read(channels=[\"GFP\"], times=[0]) ->', arr.shape, arr.dtype,"
        " 'axes (P, T, C, Z, Y, X)')\n"
        "    print('channels:', ds.channel_names())\n"
    )
    print(code, end="", flush=True)
    exec(compile(code, "<demo>", "exec"), {"__name__": "__demo__"})  # noqa: S102 - shown above
    print(f"\nDemo done. Everything it wrote is in {folder}; its site config is {site} "
          f"(try: imagingdb --site-config {shlex.quote(str(site))} show {DATASET_ID}).")


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)
