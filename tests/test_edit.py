"""imagingdb edit: the description, microscope, parent and annotations of a dataset, changed
in one transaction, each change printed as `field: old -> new`; refused edits change
nothing."""

from __future__ import annotations

import pytest

from tests.catalog import DROP, A, B, C, D, make_catalog, set_row
from tests.helpers import assert_refused


@pytest.fixture
def catalog(site):
    return make_catalog(site)


def row_of(site, dataset_id: str):
    with site.connect() as db:
        return db.dataset(dataset_id).info


def test_edit_prints_each_change_and_query_sees_it(catalog, run_cli, site):
    result = run_cli("edit", B, "--description", "plate B, re-imaged", "--microscope", "Leica",
                     "--annotate", "strain=WT", "--annotate", "plate=P7", "--unset", "pct",
                     "--parent", A)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "description: plate_b -> plate B, re-imaged",
        "microscope: Nikon -> Leica",
        f"parent_dataset_id: (none) -> {A}",
        "annotations.pct: 50% -> (none)",
        "annotations.plate: (none) -> P7",
        "annotations.strain: KO -> WT",
    ]
    info = row_of(site, B)
    assert (info.description, info.microscope, info.parent_dataset_id) == (
        "plate B, re-imaged", "Leica", A)
    assert info.annotations == {"dose": "9.5", "plate": "P7", "strain": "WT"}
    record = run_cli("query", "--where", "plate=P7", "--format", "json").json()
    assert [r["dataset_id"] for r in record] == [B]


def test_edit_json_lists_the_changes(catalog, run_cli):
    result = run_cli("edit", C, "--annotate", "dose=", "--no-parent", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {"dataset_id": C, "changes": [
        {"field": "annotations.dose", "old": "high", "new": None}]}


def test_removing_every_annotation_leaves_null(catalog, run_cli, site):
    assert run_cli("edit", C, "--unset", "dose", "--unset", "date").exit_code == 0
    snapshot = site.snapshot()["data_set"]
    row = next(r for r in snapshot if r[1] == C)
    assert row[7] is None  # data_set.annotations
    assert row_of(site, C).annotations == {}


def test_clearing_the_description_and_the_parent(catalog, run_cli, site):
    result = run_cli("edit", D, "--no-parent", "--description", "")
    assert result.stdout.splitlines() == [f"parent_dataset_id: {A} -> (none)"]
    result = run_cli("edit", A, "--description", "")
    assert result.stdout.splitlines() == ["description: plate A -> (none)"]
    assert row_of(site, A).description is None and row_of(site, D).parent_dataset_id is None


def test_nothing_different_says_so_and_changes_nothing(catalog, run_cli, site):
    result = run_cli("edit", A, "--description", "plate A", "--annotate", "strain=WT",
                     "--unset", "absent", "--parent", "")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "nothing to change" in result.stderr
    assert site.snapshot() == catalog


def test_values_are_stored_as_given(catalog, run_cli, site):
    value = "50%_'; DELETE FROM data_set; --\"\\"
    assert run_cli("edit", D, "--annotate", f"note={value}", "--description", DROP,
                   "--microscope", "%").exit_code == 0
    info = row_of(site, D)
    assert info.annotations == {"note": value} and info.description == DROP
    assert info.microscope == "%"
    assert len(site.snapshot()["data_set"]) == 4
    found = run_cli("query", "--where", f"note={value}", "--format", "json").json()
    assert [r["dataset_id"] for r in found] == [D]


BAD_EDITS = [
    ([A], "nothing to edit"),
    (["ML-2001-01-01-00-00-00-0001", "--description", "x"],
     "dataset ML-2001-01-01-00-00-00-0001 not found"),
    (["../etc", "--description", "x"], "invalid dataset ID"),
    ([A, "--parent", "ML-2001-01-01-00-00-00-0009"],
     "parent dataset ML-2001-01-01-00-00-00-0009 not found"),
    ([A, "--parent", A], "cannot be its own parent"),
    ([A, "--parent", D], f"{D} descends from {A}"),
    ([A, "--parent", B, "--no-parent"], "not both"),
    ([A, "--parent", "nope"], "invalid dataset ID"),
    ([A, "--annotate", "strain"], "is not KEY=VALUE"),
    ([A, "--annotate", "bad key=1"], "is not a name"),
    ([A, "--annotate", "x'; DROP TABLE data_set; --=1"], "is not a name"),
    ([A, "--annotate", "dataset_id=1"], "is a field of every dataset"),
    ([A, "--annotate", "a=1", "--annotate", "a=2"], "is given twice"),
    ([A, "--annotate", "a=1", "--unset", "a"], "also given to --annotate"),
    ([A, "--unset", "1x"], "is not a name"),
    ([A, "--annotate", "a=line\nbreak"], "control character"),
    ([A, "--description", "two\nlines"], "control character"),
    ([A, "--annotate", "a=" + "x" * 1025], "longer than 1024"),
    # a good change beside a bad one is not made either
    ([A, "--description", "new", "--parent", A], "cannot be its own parent"),
    ([B, "--annotate", "strain=WT", "--parent", "ML-2001-01-01-00-00-00-0009"], "not found"),
]


def test_bad_edits_are_one_error_line_and_change_nothing(catalog, run_cli, site):
    """Every case of BAD_EDITS on one catalog (a PostgreSQL database each would be slow)."""
    for args, message in BAD_EDITS:
        assert_refused(run_cli("edit", *args), site, catalog, contains=[message])


def test_api_edit_returns_the_changes(catalog, site):
    with site.connect() as db:
        report = db.dataset(A).edit(annotate={"strain": "KO", "stage": "L4"},
                                    microscope=None)
        assert [(c.field, c.old, c.new) for c in report.changes] == [
            ("microscope", "Leica SP8", None),
            ("annotations.stage", None, "L4"),
            ("annotations.strain", "WT", "KO")]
        report = db.edit(A, annotate=["stage="], unset="strain", parent=B)
        assert [(c.field, c.old, c.new) for c in report.changes] == [
            ("parent_dataset_id", None, B),
            ("annotations.stage", "L4", None),
            ("annotations.strain", "KO", None)]
        assert db.edit(A, parent=B).changes == ()
        assert db.dataset(A).info.annotations == {"dose": "10", "note": DROP}


def test_old_values_from_the_row_are_printed_escaped(catalog, run_cli, site):
    set_row(site, A, description="\x1b[2Jgone\r", annotations={"strain": "\x1b]0;t\x07"})
    result = run_cli("edit", A, "--description", "plate A", "--unset", "strain")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert result.stdout.splitlines() == ["description: \\x1b[2Jgone\\r -> plate A",
                                          "annotations.strain: \\x1b]0;t\\x07 -> (none)"]
