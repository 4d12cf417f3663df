"""`make demo`: the whole main job on a generated Micro-Manager acquisition, step by step.

Runs the real `imagingdb` command for each step and prints it, so what you see
is what you would type. Everything lives under ./build/demo (its own
IMAGINGDB_HOME), so the demo never touches your own imagingdb data.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DATASET_ID = "DEMO-2024-03-01-09-30-00-0001"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _run(args: list[str], env: dict[str, str], capture: bool = False) -> str:
    print("$ " + " ".join(shlex.quote(a) for a in ["imagingdb", *args]), flush=True)
    command = [sys.executable, "-m", "imagingdb", *args]
    result = subprocess.run(command, env=env, text=True,
                            stdout=subprocess.PIPE if capture else None)
    if result.returncode != 0:
        sys.exit(f"demo step failed with exit code {result.returncode}")
    if capture:
        print(result.stdout, end="", flush=True)
    return result.stdout or ""


def main(base: Path = Path("build/demo")) -> None:
    from .testing import write_demo_acquisition

    base = base.resolve()
    if base.exists():
        shutil.rmtree(base)
    data = base / "microscope"
    data.mkdir(parents=True)
    env = {**os.environ, "IMAGINGDB_HOME": str(base / "home")}
    env.pop("IMAGINGDB_CONFIG", None)

    _step("1. Generate a small Micro-Manager OME-TIFF acquisition "
          "(2 positions x 2 channels x 3 slices x 2 timepoints, uint16)")
    source = write_demo_acquisition(data)
    for path in sorted(data.iterdir()):
        print(f"   {path.name}  ({path.stat().st_size:,} bytes)")

    _step("2. Describe the upload: a CSV row per dataset and an upload config")
    csv_path = base / "files_for_upload.csv"
    csv_path.write_text(f"dataset_id,file_name,description\n{DATASET_ID},{source},demo acquisition\n")
    config_path = base / "upload.yaml"
    config_path.write_text("upload_type: frames\nframes_format: ome_tiff\nmicroscope: demo-scope\n")
    print(csv_path.read_text() + config_path.read_text(), end="")

    _step("3. Upload it (frames become lossless PNGs, metadata goes to the database)")
    _run(["upload", "--csv", str(csv_path), "--config", str(config_path)], env)

    _step("4. Query the database as JSON (pipe it into jq if you like)")
    _run(["query", "--project-id", "DEMO", "--format", "json"], env, capture=True)

    _step("5. Download one channel of it")
    _run(["download", "--id", DATASET_ID, "--dest", str(base / "download"), "-c", "DAPI"], env)
    for path in sorted((base / "download" / DATASET_ID).iterdir())[:6]:
        print(f"   {path.name}")

    _step("6. Read it into numpy with the Python API")
    code = (
        "import imagingdb\n"
        "db = imagingdb.connect()\n"
        f"ds = db.dataset({DATASET_ID!r})\n"
        "arr = ds.read(channels=['GFP'], times=[0])\n"
        "print('ds.read(channels=[\"GFP\"], times=[0]) ->', arr.shape, arr.dtype,"
        " 'axes (P, T, C, Z, Y, X)')\n"
        "print('channels:', ds.channel_names())\n"
    )
    print(code, end="")
    result = subprocess.run([sys.executable, "-c", code], env=env, text=True)
    if result.returncode != 0:
        sys.exit("demo step failed")
    print(f"\nDemo done. Its data is under {base}; run `make test` next.")


if __name__ == "__main__":
    main()
