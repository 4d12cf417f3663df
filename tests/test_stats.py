"""imagingdb stats (datasets, frames and bytes by project and microscope), and what show
says of a dataset's size, provenance and annotations."""

from __future__ import annotations

import pytest

from tests.catalog import A, C, make_catalog, set_row


@pytest.fixture
def catalog(site):
    return make_catalog(site)


def test_stats_json_is_exact(catalog, run_cli):
    result = run_cli("stats", "--format", "json")
    assert result.exit_code == 0, result.stderr
    group = {"frames": 0, "stored_bytes": 0, "datasets_without_size": 0}
    assert result.json() == {
        "groups": [
            {"project": "ISP", "microscope": "Leica SP8", "datasets": 1, **group,
             "datasets_without_size": 1},
            {"project": "ML", "microscope": "Leica SP8", "datasets": 1, **group, "frames": 2,
             "stored_bytes": 2_000_000},
            {"project": "ML", "microscope": "Nikon", "datasets": 1, **group, "frames": 1,
             "stored_bytes": 500},
            {"project": "ML", "microscope": None, "datasets": 1, **group,
             "datasets_without_size": 1},
        ],
        "total": {"project": None, "microscope": None, "datasets": 4, "frames": 3,
                  "stored_bytes": 2_000_500, "datasets_without_size": 2},
    }


def test_stats_text_is_human_readable_and_says_what_lacks_a_size(catalog, run_cli):
    result = run_cli("stats", "--format", "text")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["project", "microscope", "datasets", "frames", "stored"]
    assert lines[3].split() == ["ML", "Leica", "SP8", "1", "2", "2.0", "MB"]
    assert lines[-1].split() == ["total", "4", "3", "2.0", "MB"]
    assert "2 of 4 dataset(s) have no recorded size" in result.stderr


@pytest.mark.parametrize("args, total", [
    (["--where", "strain=WT"], (1, 2, 2_000_000)),
    (["--project-id", "ML", "--where", "stored_bytes<1000"], (1, 1, 500)),
    (["--microscope", "sp8"], (2, 2, 2_000_000)),
    (["--where", "strain=nobody"], (0, 0, 0)),
])
def test_stats_takes_the_query_filters(catalog, run_cli, args, total):
    result = run_cli("stats", *args, "--format", "json").json()
    assert (result["total"]["datasets"], result["total"]["frames"],
            result["total"]["stored_bytes"]) == total
    assert sum(g["datasets"] for g in result["groups"]) == total[0]


def test_stats_refuses_a_bad_where(catalog, run_cli, site):
    from tests.helpers import assert_refused

    assert_refused(run_cli("stats", "--where", "x'=1"), site, catalog, contains=["--where"])


def test_stats_api(catalog, site):
    with site.connect() as db:
        stats = db.stats(where=["project=ML"])
    assert [(g.microscope, g.datasets) for g in stats.groups] == [
        ("Leica SP8", 1), ("Nikon", 1), (None, 1)]
    assert (stats.total.datasets, stats.total.unsized) == (3, 1)


def test_show_gives_size_provenance_and_annotations(catalog, run_cli):
    result = run_cli("show", A)
    assert result.exit_code == 0, result.stderr
    lines = [line.split(None, 1) for line in result.stdout.splitlines()]
    fields = {parts[0]: parts[1] if len(parts) > 1 else "" for parts in lines}
    assert fields["stored"] == "2.0 MB (2,000,000 bytes) in 2 object(s)"
    assert fields["uploaded"] == "by alice@lab1 at 2024-05-02T09:00:00 UTC with imagingdb 0.9.0"
    assert fields["source_path"] == "/data/plate_a"
    assert fields["nbr_frames"] == "2"
    text = result.stdout
    assert "\n  dose: 10\n" in text and "\n  strain: WT\n" in text
    assert text.index("annotations") < text.index("  dose: 10") < text.index("global_meta")
    data = run_cli("show", A, "--format", "json").json()
    assert (data["stored_bytes"], data["stored_objects"], data["stored_size_measured"]) == (
        2_000_000, 2, False)
    assert data["annotations"]["strain"] == "WT" and data["uploaded_host"] == "lab1"
    assert data["uploaded_at"] == "2024-05-02T09:00:00" and data["imagingdb_version"] == "0.9.0"


def test_show_of_a_dataset_from_before_provenance(catalog, run_cli):
    text = run_cli("show", C).stdout
    assert "uploaded           (not recorded)" in text
    assert "source_path        (not recorded)" in text


def test_show_measures_a_size_not_recorded(uploaded_ometiff, run_cli, site):
    set_row(site, uploaded_ometiff, stored_bytes=None, stored_objects=None)
    stored = {key: len(data) for key, data in site.objects().items()
              if key.startswith(f"raw_frames/{uploaded_ometiff}/")}
    data = run_cli("show", uploaded_ometiff, "--format", "json").json()
    assert (data["stored_bytes"], data["stored_objects"], data["stored_size_measured"]) == (
        sum(stored.values()), len(stored), True)
    text = run_cli("show", uploaded_ometiff).stdout
    assert f"({sum(stored.values()):,} bytes) in {len(stored)} object(s), measured" in text


def test_show_escapes_control_characters_from_the_row(catalog, run_cli, site):
    set_row(site, A, annotations={"strain": "\x1b[31mred\r"}, uploaded_by="eve\x1b]0;x\x07")
    result = run_cli("show", A)
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "  strain: \\x1b[31mred\\r" in result.stdout and "eve\\x1b]0;x\\x07@lab1" in (
        result.stdout)
    data = run_cli("show", A, "--format", "json")
    assert "\x1b" not in data.stdout and data.json()["annotations"]["strain"] == "\x1b[31mred\r"


@pytest.mark.parametrize("size, shown", [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (999_949, "999.9 kB"), (999_950, "1.0 MB"),
    (1_234_567_890, "1.2 GB"), (5 * 10**15, "5.0 PB"),
])
def test_human_size(size, shown):
    from imagingdb.terminal import human_size

    assert human_size(size) == shown
