"""A database and storage as the original imagingDB left them, for adoption tests.

The tables are made the way the original made them: its SQLAlchemy ORM models
(``imaging_db/database/*.py``) and ``Base.metadata.create_all``. Every column
nullable, integer ``id`` primary keys (``serial`` on PostgreSQL), plain foreign
keys, JSONB metadata, no unique constraints, no other indexes, no schema_version.
Frames are 16-bit PNGs written by imagecodecs and pypng (not imagingdb's codec)
at ``raw_frames/<ID>/im_c000_z000_t000_p000.png``; whole files at
``raw_files/<ID>/<name>``; ``sha256`` of a frame is ``sha256(pixels.tobytes())``
as the original computed it.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import imagecodecs
import numpy as np
import png
import sqlalchemy as sa
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session

from imagingdb.db.tables import DATA_SET_V4_COLUMNS, FRAMES_QC_COLUMNS


def original_models(dialect: str):
    """The original's four ORM classes (JSONB on PostgreSQL, JSON text elsewhere)."""
    json_type = JSONB if dialect == "postgresql" else sa.JSON

    class Base(DeclarativeBase):
        pass

    class DataSet(Base):
        __tablename__ = "data_set"
        id = Column(Integer, primary_key=True)
        dataset_serial = Column(String)
        description = Column(String)
        microscope = Column(String)
        frames = Column(Boolean)
        date_time = Column(DateTime)
        parent_id = Column(Integer, ForeignKey("data_set.id"))

    class FileGlobal(Base):
        __tablename__ = "file_global"
        id = Column(Integer, primary_key=True)
        storage_dir = Column(String)
        file_name = Column(String)
        metadata_json = Column(json_type)
        dataset_id = Column(Integer, ForeignKey("data_set.id"))
        sha256 = Column(String)

    class FramesGlobal(Base):
        __tablename__ = "frames_global"
        id = Column(Integer, primary_key=True)
        nbr_frames = Column(Integer)
        im_width = Column(Integer)
        im_height = Column(Integer)
        nbr_slices = Column(Integer)
        nbr_channels = Column(Integer)
        im_colors = Column(Integer)
        nbr_timepoints = Column(Integer)
        nbr_positions = Column(Integer)
        bit_depth = Column(String)
        storage_dir = Column(String)
        metadata_json = Column(json_type)
        dataset_id = Column(Integer, ForeignKey("data_set.id"))

    class Frames(Base):
        __tablename__ = "frames"
        id = Column(Integer, primary_key=True)
        channel_idx = Column(Integer)
        slice_idx = Column(Integer)
        time_idx = Column(Integer)
        pos_idx = Column(Integer)
        channel_name = Column(String)
        file_name = Column(String)
        sha256 = Column(String)
        metadata_json = Column(json_type)
        frames_global_id = Column(Integer, ForeignKey("frames_global.id"))

    return Base, DataSet, FileGlobal, FramesGlobal, Frames


def png16(pixels: np.ndarray, writer: str) -> bytes:
    """A 16-bit greyscale PNG as another library writes it."""
    if writer == "imagecodecs":
        return imagecodecs.png_encode(pixels)
    out = io.BytesIO()
    png.Writer(pixels.shape[1], pixels.shape[0], greyscale=True, bitdepth=16).write(
        out, pixels.tolist())
    return out.getvalue()


class OriginalImagingDB:
    """Writes datasets into the original's tables and storage layout."""

    def __init__(self, engine: sa.Engine, storage_root: Optional[Path] = None,
                 store: Optional[Callable[[str, bytes], None]] = None):
        """Objects go to files under ``storage_root``, or to ``store(key, data)``."""
        self.engine = engine
        self.storage_root = storage_root
        self._put = store or self._store
        (self.Base, self.DataSet, self.FileGlobal, self.FramesGlobal,
         self.Frames) = original_models(engine.dialect.name)
        self.Base.metadata.create_all(engine)
        self.pixels: dict[str, dict[tuple[int, int, int, int], np.ndarray]] = {}

    def _store(self, key: str, data: bytes) -> None:
        path = self.storage_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def add_frames(self, serial: str, *, channels=("DAPI", "GFP"), slices=2, seed=0,
                   storage_dir: str | None = "default", parent=None, description=None) -> int:
        """A dataset split into frames; storage_dir=None as in the original's early datasets."""
        rng = np.random.default_rng(seed)
        height, width = 6, 5
        with Session(self.engine) as session:
            dataset = self.DataSet(dataset_serial=serial, description=description,
                                   microscope="Leica SP8", frames=True,
                                   date_time=_date_time(serial), parent_id=parent)
            session.add(dataset)
            session.flush()
            folder = f"raw_frames/{serial}"
            frames_global = self.FramesGlobal(
                nbr_frames=len(channels) * slices, im_width=width, im_height=height,
                nbr_slices=slices, nbr_channels=len(channels), im_colors=1, nbr_timepoints=1,
                nbr_positions=1, bit_depth="uint16",
                storage_dir=folder if storage_dir == "default" else storage_dir,
                metadata_json={"ChNames": list(channels), "Slices": slices},
                dataset_id=dataset.id)
            session.add(frames_global)
            session.flush()
            self.pixels[serial] = {}
            for c, name in enumerate(channels):
                for z in range(slices):
                    pixels = rng.integers(0, 65535, (height, width), dtype=np.uint16)
                    file_name = f"im_c{c:03d}_z{z:03d}_t000_p000.png"
                    self._put(f"{folder}/{file_name}",
                                png16(pixels, "imagecodecs" if (c + z) % 2 else "pypng"))
                    self.pixels[serial][(c, z, 0, 0)] = pixels
                    session.add(self.Frames(
                        channel_idx=c, slice_idx=z, time_idx=0, pos_idx=0, channel_name=name,
                        file_name=file_name, sha256=hashlib.sha256(pixels.tobytes()).hexdigest(),
                        metadata_json={"Channel": name, "SliceIndex": z},
                        frames_global_id=frames_global.id))
            session.commit()
            return dataset.id

    def add_file(self, serial: str, name: str, content: bytes, *,
                 storage_dir: str | None = "default", description=None) -> int:
        with Session(self.engine) as session:
            dataset = self.DataSet(dataset_serial=serial, description=description,
                                   microscope="Leica SP8", frames=False,
                                   date_time=_date_time(serial))
            session.add(dataset)
            session.flush()
            folder = f"raw_files/{serial}"
            self._put(f"{folder}/{name}", content)
            session.add(self.FileGlobal(
                storage_dir=folder if storage_dir == "default" else storage_dir, file_name=name,
                metadata_json={"file_origin": f"/data/{name}"}, dataset_id=dataset.id,
                sha256=hashlib.sha256(content).hexdigest()))
            session.commit()
            return dataset.id


def _date_time(serial: str) -> datetime:
    return datetime.strptime("-".join(serial.split("-")[1:7]), "%Y-%m-%d-%H-%M-%S")


def table_rows(engine: sa.Engine) -> dict[str, list[dict]]:
    """Every row of the four tables by column name, in id order, to prove adoption changed
    none (a rebuilt SQLite table has schema.sql's column order). A column that adoption adds
    (frames_global.frame_format, data_set's version 4 columns, the frames' qc_* columns) is
    left out where it is NULL, as it is in every adopted row."""
    with engine.connect() as conn:
        return {table: [{key: value for key, value in row._mapping.items()
                         if not (key in ADDED_COLUMNS and value is None)}
                        for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
                for table in ("data_set", "file_global", "frames_global", "frames")}


#: columns imagingdb's schema has and the original's has not
ADDED_COLUMNS = ("frame_format", *DATA_SET_V4_COLUMNS, *FRAMES_QC_COLUMNS)
