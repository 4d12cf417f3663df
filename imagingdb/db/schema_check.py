"""The check every command makes first: is the database's schema the one this code needs?

Kept apart from :mod:`.migrate`, which does the upgrading and is imported only when
there is something to do: its table, index and report classes cost every command
~7 ms of start-up otherwise.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import WorkError
from . import tables as schema


def ensure_current(engine: sa.Engine, *, auto_upgrade: bool) -> None:
    """Before first use: create an empty database's schema; upgrade an older one if allowed
    (the embedded default is one user's), else say how; refuse one newer than this code."""
    with engine.connect() as conn:
        version = schema.detect_version(conn)
    if version == schema.SCHEMA_VERSION:
        return
    from . import migrate

    if version is None:
        migrate.upgrade(engine)
        return
    if version == 0:
        # detect_version looks at two tables (on SQLite in two statements), then reads the
        # version: another process creating the schema may have committed in between. Ask
        # again, alone on the server.
        with migrate.schema_change(engine) as conn:
            version = schema.detect_version(conn)
    schema.refuse_newer(version)
    if version == 0:
        raise WorkError("this database was made by the original imagingDB; adopt it with: "
                        "imagingdb db upgrade (nothing is lost, `imagingdb db status` shows what "
                        "it will do)")
    if version < schema.SCHEMA_VERSION:
        if not auto_upgrade:
            raise WorkError(f"the database has schema version {version}; this imagingdb needs "
                            f"{schema.SCHEMA_VERSION}: run imagingdb db upgrade")
        migrate.upgrade(engine)
