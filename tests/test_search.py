"""query --where / --sort / --limit, and the API's filters: the same answers on SQLite and
PostgreSQL, keys and values never read as SQL."""

from __future__ import annotations

import pytest

from tests.catalog import DROP, A, B, C, D, make_catalog
from tests.helpers import assert_refused


@pytest.fixture
def catalog(site):
    """The catalog's four datasets in the site; its snapshot."""
    return make_catalog(site)


def found(run_cli, *args) -> list[str]:
    result = run_cli("query", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return [record["dataset_id"] for record in result.json()]


def where(*conditions: str) -> list[str]:
    return [part for condition in conditions for part in ("--where", condition)]


WHERE_CASES = [
    # annotations: text, numbers as numbers, case-insensitive substrings
    (["strain=WT"], [A]),
    (["strain!=WT"], [B]),  # a dataset without strain matches no condition on it, != included
    (["strain~w"], [A]),
    (["STRAIN=WT"], []),  # keys are case-sensitive
    (["dose=10.0"], [A]),
    (["dose=10"], [A]),
    (["dose!=10"], [C, B]),
    (["dose>9.6"], [A]),
    (["dose<10"], [B]),
    (["dose>=9.5"], [A, B]),
    (["dose<=9.5"], [B]),
    (["dose>-1e3"], [A, B]),  # "high" is no number: never in a numeric comparison
    (["dose=high"], [C]),
    (["annotations.dose=high"], [C]),
    (["date>2022-12-30"], [C]),
    (["date<2022-12-31"], []),
    (["date<=2022-12-31"], [C]),
    # global metadata, by dotted path
    (["Summary.Objective~10X"], [A]),
    (["Exposure~10"], []),  # ~ is for text: a JSON number never matches (100 here)
    (["Binning~1"], []),
    (["dose~9.5"], [B]),  # an annotation is text
    (["meta.Summary.Objective=40x"], [B]),
    (["annotations.Summary.Objective=40x"], []),
    (["PixelType=GRAY16"], [A]),
    (["Exposure>50"], [A]),
    (["Exposure=100.0"], [A]),
    (["Binning=1"], [A]),
    (["Live=true"], [A]),
    (["Live=false"], [B]),
    (["Live!=true"], [B]),
    (["ChNames=DAPI"], []),  # lists are not single values
    (["Summary=40x"], []),  # nor objects
    (["collected>2023-01-01"], [C]),
    (["collected<2023-01-05"], []),  # at the precision given: that day is not before it
    (["collected<=2023-01-05"], [C]),
    (["collected>=2023-01-05T10:00"], [C]),
    (["collected>2023-01-05T10:00"], []),
    (["collected~2023-01-05 10"], [C]),
    # fields of every dataset
    (["microscope~sp8"], [C, A]),
    (["microscope=Nikon"], [B]),
    (["microscope!=Nikon"], [C, A]),
    (["description~PLATE"], [A, B]),
    (["project=ISP"], [C]),
    (["project!=ML"], [C]),
    (["project_id=ML"], [A, B, D]),
    (["dataset_id~0002"], [B]),
    (["date_time>=2024-05-02"], [B, D]),
    (["date_time<=2024-05-01"], [C, A]),
    (["date_time=2024-05-01"], [A]),
    (["date_time!=2024-05-01"], [C, B, D]),
    (["date_time>2024-05-01T10:00"], [B, D]),
    (["date_time>=2024-05-01T10:00:00"], [A, B, D]),
    (["uploaded_by=alice"], [A]),
    (["uploaded_host~LAB"], [A, B]),
    (["uploaded_at<2024-05-03"], [A]),
    (["imagingdb_version=0.9.1"], [B]),
    (["source_path~/data/"], [A, B]),
    (["stored_bytes>1000"], [A]),
    (["stored_bytes<1000"], [B]),  # C and D have no recorded size
    (["stored_objects=1"], [B]),
    (["nbr_frames=0"], [C, D]),
    (["nbr_frames>=2"], [A]),
    (["frames=false"], [C, D]),
    (["frames=TRUE"], [A, B]),
    (["parent_dataset_id=" + A], [D]),
    # frame metadata: any frame of the dataset
    (["frames.Exposure-ms>100"], [A]),
    (["frames.Exposure-ms<30"], [B]),
    (["frames.Exposure-ms=50"], [A]),
    # SQL's metacharacters are plain text
    (["note=" + DROP], [A]),
    (["note~DROP TABLE"], [A]),
    (["note~'"], [A]),
    (["pct=50%"], [B]),
    (["pct~%"], [B]),
    (["pct~_"], []),
    (["under_score~_"], [C]),
    (["strain~%"], []),
    (["strain=' OR '1'='1"], []),
    (["note~\\"], []),
    # several: all must hold
    (["strain=WT", "Exposure>50"], [A]),
    (["strain=WT", "Exposure>500"], []),
    (["microscope~sp8", "dose~h"], [C]),
]


def test_where(catalog, site):
    """Every case of WHERE_CASES on one catalog (one per case would make a PostgreSQL
    database each), through the API: the failures are listed together."""
    with site.connect() as db:
        wrong = [(conditions, got, expected) for conditions, expected in WHERE_CASES
                 if (got := [d.dataset_id for d in db.query(where=conditions)]) != expected]
    assert wrong == []


def test_where_on_the_command_line(catalog, run_cli):
    wrong = [(conditions, got, expected) for conditions, expected in WHERE_CASES[::8]
             if (got := found(run_cli, *where(*conditions))) != expected]
    assert wrong == []


def test_where_with_the_other_filters(catalog, run_cli):
    assert found(run_cli, "--project-id", "ML", *where("microscope~sp8")) == [A]
    assert found(run_cli, "--start-date", "2024-05-02", *where("strain~o")) == [B]


SORT_CASES = [  # Database.query's arguments
    ({"sort": "dose"}, [B, A, C, D]),  # numbers by value, then text, then none
    ({"sort": "dose", "reverse": True}, [A, B, C, D]),
    ({"sort": "stored_bytes"}, [B, A, C, D]),
    ({"sort": "stored_bytes", "reverse": True}, [A, B, D, C]),  # ties: by ID, reversed too
    ({"sort": "date_time", "reverse": True, "limit": 2}, [D, B]),
    ({"sort": "date_time"}, [C, A, B, D]),
    ({"sort": "microscope"}, [C, A, B, D]),  # "Leica SP8" < "Nikon"; none last
    ({"sort": "description"}, [C, A, B, D]),
    ({"sort": "uploaded_at", "reverse": True}, [B, A, D, C]),
    ({"sort": "nbr_frames", "reverse": True}, [A, B, D, C]),
    ({"sort": "Exposure"}, [B, A, C, D]),
    ({"sort": "meta.Summary.Objective"}, [A, B, C, D]),
    ({"sort": "strain"}, [B, A, C, D]),
    ({"reverse": True}, [D, B, A, C]),
    ({"limit": 1}, [C]),
    ({"limit": 0}, []),
    ({"sort": "dose", "limit": 2, "where": ["project=ML"]}, [B, A]),
]


def test_sort_and_limit(catalog, site):
    with site.connect() as db:
        wrong = [(options, got, expected) for options, expected in SORT_CASES
                 if (got := [d.dataset_id for d in db.query(**options)]) != expected]
    assert wrong == []


def test_sort_and_limit_on_the_command_line(catalog, run_cli):
    assert found(run_cli, "--sort", "dose", "--reverse", "--limit", "3") == [A, B, C]
    assert found(run_cli, "--sort", "stored_bytes", *where("project=ML")) == [B, A, D]


BAD_CASES = [
    (where("strain"), "has no operator"),
    (where("=WT"), "needs a key"),
    (where("strain!WT"), "is not an operator"),
    (where("dose>abc"), "needs a number or a date"),
    (where("dose<2024-13-01"), "needs a number or a date"),
    (where("st rain=WT"), "is not a field, an annotation key or a metadata path"),
    (where("a'b=1"), "is not a field"),
    (where("x;DROP TABLE data_set=1"), "is not a field"),
    (where('x"y=1'), "is not a field"),
    (where("ChNames.0=DAPI"), "is not a field"),
    (where("Summary..Objective=1"), "is not a field"),
    (where("meta.=1"), "is not a field"),
    (where("date_time~2024"), "compares with a date"),
    (where("date_time>10"), "compares with a date"),
    (where("frames=maybe"), "is true or false"),
    (where("frames>1"), "is true or false"),
    (where("stored_bytes=big"), "is a number"),
    (where("stored_bytes~12"), "is a number"),
    (["--sort", "x y"], "is not a field"),
    (["--sort", "frames.Exposure-ms"], "not by frame metadata"),
    (["--limit", "-1"], "Invalid value for '--limit'"),
]


@pytest.mark.parametrize("args, message", BAD_CASES)
def test_bad_where_sort_limit_is_one_error_line(run_cli, args, message):
    result = run_cli("query", *args)  # the embedded default: refused before any query
    assert result.exit_code == 2, result.stderr
    assert len(result.errors) == 1 and message in result.errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_where_changes_nothing(catalog, run_cli, site):
    for args, message in BAD_CASES:
        assert_refused(run_cli("query", *args), site, catalog, contains=[message])


def test_api_takes_the_same_filters(catalog, site):
    with site.connect() as db:
        assert [d.dataset_id for d in db.query(where="strain=WT")] == [A]
        assert [d.dataset_id for d in db.query(where=[("dose", ">", "9.6")])] == [A]
        assert [d.dataset_id for d in db.query(project_id="ML", sort="dose", reverse=True,
                                               limit=1)] == [A]
        info = db.query(where=["uploaded_by=alice"])[0]
    assert info.annotations == {"strain": "WT", "dose": "10", "note": DROP}
    assert (info.nbr_frames, info.stored_bytes, info.stored_objects) == (2, 2_000_000, 2)
    assert (info.uploaded_by, info.uploaded_host, info.imagingdb_version, info.source_path) == (
        "alice", "lab1", "0.9.0", "/data/plate_a")
    assert info.uploaded_at.isoformat() == "2024-05-02T09:00:00"


@pytest.mark.parametrize("bad, message", [
    (["strain"], "has no operator"),
    ([("strain", "LIKE", "WT")], "is not an operator"),
    ([("strain", "=")], "expected (key, operator, value)"),
])
def test_api_refuses_bad_conditions(catalog, site, bad, message):
    from imagingdb.errors import InputError

    with site.connect() as db, pytest.raises(InputError, match=message.replace("(", r"\(")
                                                               .replace(")", r"\)")):
        db.query(where=bad)
    with site.connect() as db, pytest.raises(InputError, match="limit"):
        db.query(limit=-1)


def test_query_json_has_annotations_sizes_and_provenance(catalog, run_cli):
    record = run_cli("query", *where("strain=KO"), "--format", "json").json()[0]
    assert record["annotations"] == {"strain": "KO", "dose": "9.5", "pct": "50%"}
    assert record["stored_bytes"] == 500 and record["nbr_frames"] == 1
    assert record["uploaded_at"] == "2024-05-03T12:30:00" and record["uploaded_by"] == "bob"
    old = run_cli("query", *where("project=ISP"), "--format", "json").json()[0]
    assert old["annotations"] == {"dose": "high", "date": "2022-12-31"}
    assert old["stored_bytes"] is None and old["uploaded_by"] is None


def test_query_table_keeps_its_columns_and_csv_has_every_field(catalog, run_cli):
    table = run_cli("query", "--format", "table")
    header = table.stdout.splitlines()[0].split()
    assert header == ["dataset_id", "date_time", "microscope", "description", "frames",
                      "parent_dataset_id"]
    csv_text = run_cli("query", *where("strain=WT"), "--format", "csv").stdout
    assert '""strain"": ""WT""}"' in csv_text and "alice" in csv_text


def test_query_columns_are_dataset_info_fields():
    """Database.query builds DatasetInfo from search's columns by position."""
    import dataclasses

    from imagingdb.api import DatasetInfo
    from imagingdb.search import DATASET_COLUMNS

    # then the stores holding a copy, which Database.query adds from the replica table
    assert tuple(f.name for f in dataclasses.fields(DatasetInfo)) == (*DATASET_COLUMNS, "stores")
