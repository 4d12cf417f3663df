"""Figures of `imagingdb sync` on the bench's 256 MB acquisition (figures only, no target).

Uploads bench/run.py's BASE acquisition (128 frames of 1024x1024 uint16) into a
local store, then times `imagingdb sync` (the whole command, a fresh process)
into a second local store and into S3 (moto's server in a process of its own,
over loopback), each next to a reference measured in the same run: `cp -r` of
the PNG folder plus `sync`, and 16 threads of boto3 put_object of the same
files. Run: .venv/bin/python bench/sync_figures.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import BASE, ensure_data  # noqa: E402


def main() -> None:
    import boto3
    import botocore.config
    import yaml

    source = ensure_data(BASE).parent
    work = Path(tempfile.mkdtemp(prefix="imagingdb-sync-bench-"))
    python = sys.executable
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    moto = subprocess.Popen([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench",
                              config=botocore.config.Config(max_pool_connections=16))
        for _ in range(50):
            try:
                client.create_bucket(Bucket="sync-bench")
                break
            except Exception:  # noqa: BLE001 - the server is starting
                time.sleep(0.2)
        config = work / "site.yaml"
        config.write_text(yaml.safe_dump({
            "database": {"url": f"sqlite:///{work / 'db.sqlite'}"},
            "storage": {"primary": "local", "stores": {
                "local": {"backend": "local", "root": str(work / "local")},
                "local2": {"backend": "local", "root": str(work / "local2")},
                "s3": {"backend": "s3", "bucket": "sync-bench", "endpoint_url": url,
                       "region": "us-east-1"}}}}), encoding="utf-8")
        env["IMAGINGDB_CONFIG"] = str(config)

        def imagingdb(*args: str) -> tuple[float, subprocess.CompletedProcess]:
            started = time.monotonic()
            done = subprocess.run([python, "-m", "imagingdb", *args], env=env,
                                  capture_output=True, text=True, check=True)
            return time.monotonic() - started, done

        imagingdb("init")
        (work / "rows.csv").write_text(f"dataset_id,file_name\nBE-2026-01-01-00-00-00-0001,"
                                       f"{source}\n", encoding="utf-8")
        (work / "upload.yaml").write_text("upload_type: frames\nframes_format: ome_tiff\n",
                                          encoding="utf-8")
        imagingdb("upload", "--csv", str(work / "rows.csv"), "--config", str(work / "upload.yaml"))
        pngs = sorted((work / "local" / "raw_frames").rglob("*.png"))
        stored = sum(p.stat().st_size for p in pngs) / 1e6
        print(f"{len(pngs)} PNG frames, {stored:.0f} MB stored ({BASE.pixel_bytes / 1e6:.0f} MB "
              "of pixels)")
        for target in ("local2", "s3"):
            seconds, done = imagingdb("sync", "--to", target, "--all", "--format", "json")
            copied = json.loads(done.stdout)["copied_bytes"] / 1e6
            again, _ = imagingdb("sync", "--to", target, "--all")
            print(f"sync -> {target}: {seconds:.2f} s, {copied / seconds:.0f} MB/s of PNG "
                  f"({copied:.0f} MB); a second sync (nothing to copy): {again:.2f} s")
        started = time.monotonic()
        shutil.copytree(work / "local" / "raw_frames", work / "cp")
        os.sync()
        print(f"reference cp -r + sync: {time.monotonic() - started:.2f} s")
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda p: client.put_object(Bucket="sync-bench", Key=f"ref/{p.name}",
                                                      Body=p.read_bytes()), pngs))
        print(f"reference boto3 put_object x16: {time.monotonic() - started:.2f} s")
    finally:
        moto.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
