"""make bench-scale at a tiny size: every figure in its table, and the generated catalogue a
valid imagingdb database (the full-size run is `make bench-scale`, not part of the suite)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("query --start-date/--end-date (1 day)", "query --where plate=<one> (annotation)",
           "show <ID>", "read() one frame (in process)", "read() one z-stack, 10 frames",
           "register 1,000 frame rows", "verify 1,000 frames", "gc listing (size/10 folders)")


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-scale")
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale.py"), "--sizes", "20,200",
         "--databases", "sqlite", "--repeat", "1", "--register-frames", "1000",
         "--rss-frames", "32,64", "--dir", str(folder)],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    # exit 1 is a growth verdict of NO, which tiny sizes do not decide; anything else failed
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return folder, result.stdout


def test_the_table_has_every_figure_at_every_size(tiny_bench):
    folder, table = tiny_bench
    for name in FIGURES:
        line = next((line for line in table.splitlines() if line.startswith(name)), None)
        assert line is not None, f"{name} missing from:\n{table}"
    assert "reference: python -c 'import sqlalchemy'" in table
    assert "upload peak RSS (MB) at 32 frames:" in table and "64 frames:" in table
    assert "query at 200 datasets:" in table
    figures = json.loads((folder / "scale.json").read_text())["figures"]["sqlite"]
    assert set(figures) == set(FIGURES)
    for figure in figures.values():
        assert set(figure["values"]) == {"20", "200"}
        assert all(value > 0 for value in figure["values"].values())


def test_the_generated_catalogue_is_an_imagingdb_database(tiny_bench):
    folder, _ = tiny_bench
    config = next((folder / "sqlite").glob("200-v*")) / "site.yaml"
    imagingdb = str(Path(sys.executable).parent / "imagingdb")

    def cli(*args):
        return subprocess.run([imagingdb, "--site-config", str(config), *args],
                              capture_output=True, text=True, timeout=60)

    found = cli("query", "--project-id", "HEK", "--format", "json")
    assert found.returncode == 0, found.stderr
    rows = json.loads(found.stdout)
    assert len(rows) == 40  # every fifth of the 200 generated datasets, and no other
    assert all(row["dataset_id"].startswith("HEK-") for row in rows)
    assert all(row["nbr_frames"] == 100 for row in rows)
    annotated = json.loads(cli("query", "--where", "plate=P000007", "--format", "json").stdout)
    assert [row["annotations"]["plate"] for row in annotated] == ["P000007"]
    shown = cli("show", rows[0]["dataset_id"], "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert "DAPI" in shown.stdout and "GFP" in shown.stdout
    status = cli("db", "status", "--format", "json")
    assert json.loads(status.stdout)["state"] == "up to date", status.stdout
    verify = cli("verify", "LIVE-2030-01-01-00-00-00-0001")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _scale_module():
    import importlib.util

    if "bench_scale" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_scale"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["bench_scale"]


@pytest.mark.parametrize("rss, xml, good", [
    # figures measured at 128 / 1,024 / 8,192 Micro-Manager frames: 22 MB for 3.1 MB of XML
    ({128: 66.5, 1024: 73.0, 8192: 88.5}, {128: 55_000, 1024: 420_000, 8192: 3_342_022}, True),
    # a frame's pixels (32 KB) held per frame: 256 MB more at 8,192 frames
    ({128: 66.5, 1024: 95.0, 8192: 322.0}, {128: 55_000, 1024: 420_000, 8192: 3_342_022}, False),
    # metadata that does not grow leaves only the 10% slack
    ({128: 60.0, 8192: 65.9}, {128: 900, 8192: 900}, True),
    ({128: 60.0, 8192: 66.1}, {128: 900, 8192: 900}, False),
])
def test_upload_rss_may_grow_only_by_what_the_metadata_explains(rss, xml, good):
    verdict, text = _scale_module().rss_verdict(rss, xml)
    assert verdict is good
    assert text.rstrip().endswith("yes" if good else "NO")
    assert "8,192 frames:" in text and "OME-XML" in text
