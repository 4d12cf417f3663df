"""A small catalog of datasets written straight into a site's tables (parametrised inserts,
no upload), with annotations, global and frame metadata, sizes and provenance of every
kind search, show and stats meet: the tests of those read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

#: the catalog's datasets
A = "ML-2024-05-01-10-00-00-0001"  # frames, annotated, sized, uploaded by alice
B = "ML-2024-05-02-10-00-00-0002"  # frames, annotated, sized, uploaded by bob
C = "ISP-2023-01-01-00-00-00-0001"  # a file kept whole, from before sizes were recorded
D = "ML-2024-06-01-00-00-00-0003"  # a file, nothing recorded but its parent, A

DROP = "x'; DROP TABLE data_set; --"

DATASETS: list[dict[str, Any]] = [
    {"id": A, "microscope": "Leica SP8", "description": "plate A", "frames": True,
     "annotations": {"strain": "WT", "dose": "10", "note": DROP},
     "meta": {"Summary": {"Objective": "10x Plan"}, "PixelType": "GRAY16", "Exposure": 100,
              "Binning": 1.0, "Live": True, "ChNames": ["DAPI", "GFP"]},
     "frame_meta": [{"Exposure-ms": 50}, {"Exposure-ms": 150}],
     "stored_bytes": 2_000_000, "stored_objects": 2, "uploaded_by": "alice",
     "uploaded_host": "lab1", "uploaded_at": datetime(2024, 5, 2, 9, 0, 0),
     "imagingdb_version": "0.9.0", "source_path": "/data/plate_a"},
    {"id": B, "microscope": "Nikon", "description": "plate_b", "frames": True,
     "annotations": {"strain": "KO", "dose": "9.5", "pct": "50%"},
     "meta": {"Summary": {"Objective": "40x"}, "Exposure": 20, "Live": False},
     "frame_meta": [{"Exposure-ms": 20}],
     "stored_bytes": 500, "stored_objects": 1, "uploaded_by": "bob",
     "uploaded_host": "lab2", "uploaded_at": datetime(2024, 5, 3, 12, 30, 0),
     "imagingdb_version": "0.9.1", "source_path": "/data/plate_b"},
    {"id": C, "microscope": "Leica SP8", "description": "isp run", "frames": False,
     "annotations": {"dose": "high", "date": "2022-12-31"},
     "meta": {"collected": "2023-01-05 10:00:00", "under_score": "a_b"}},
    {"id": D, "microscope": None, "description": None, "frames": False, "parent": A},
]


def make_catalog(site) -> dict[str, Any]:
    """Write DATASETS into ``site`` (a conftest Site) and return its snapshot."""
    from imagingdb import db as dbq

    with site.connect() as database:
        database.init()
        with database.site.connection(write=True) as conn:
            pks: dict[str, int] = {}
            for spec in DATASETS:
                pks[spec["id"]] = _insert(dbq, conn, spec, pks.get(spec.get("parent")))
    return site.snapshot()


def _insert(dbq, conn, spec: dict[str, Any], parent_pk: Optional[int]) -> int:
    dataset_id = spec["id"]
    stamp = datetime.strptime(dataset_id[-24:-5], "%Y-%m-%d-%H-%M-%S")
    values = {key: spec.get(key) for key in (
        "microscope", "description", "annotations", "stored_bytes", "stored_objects",
        "uploaded_by", "uploaded_host", "uploaded_at", "imagingdb_version", "source_path")}
    pk = dbq.insert_dataset(conn, {"dataset_serial": dataset_id, "frames": spec["frames"],
                                   "date_time": stamp, "parent_id": parent_pk, **values})
    if not spec["frames"]:
        dbq.insert_file_global(conn, {"storage_dir": f"raw_files/{dataset_id}",
                                      "file_name": "notes.txt", "metadata_json": spec.get("meta"),
                                      "dataset_id": pk, "sha256": "0" * 64})
        return pk
    frame_meta = spec["frame_meta"]
    fg = dbq.insert_frames_global(conn, {
        "storage_dir": f"raw_frames/{dataset_id}", "nbr_frames": len(frame_meta),
        "im_width": 4, "im_height": 4, "nbr_slices": 1, "nbr_channels": 1,
        "nbr_timepoints": len(frame_meta), "nbr_positions": 1, "im_colors": 1,
        "bit_depth": "uint16", "metadata_json": spec["meta"], "dataset_id": pk,
        "frame_format": "png"})
    dbq.insert_frames(conn, [
        {"channel_idx": 0, "slice_idx": 0, "time_idx": t, "pos_idx": 0, "channel_name": "DAPI",
         "file_name": f"im_c000_z000_t{t:03d}_p000.png", "sha256": "0" * 64,
         "metadata_json": meta, "frames_global_id": fg}
        for t, meta in enumerate(frame_meta)])
    return pk


def set_row(site, dataset_id: str, **values) -> None:
    """Change a data_set row directly (parametrised), as an older imagingdb left it."""
    import sqlalchemy as sa

    from imagingdb import db as dbq

    with site.connect() as db, db.site.connection(write=True) as conn:
        conn.execute(sa.update(dbq.data_set).where(dbq.data_set.c.dataset_serial == dataset_id)
                     .values(**values))
