"""Where each dataset's complete copies are, and which store a read uses.

A site has named stores (the site config's ``storage.stores``; a one-backend
site has one, named after its backend), the primary among them. The
``replica`` table records, per dataset and store, that a complete copy is
there (written by the upload for the stores it wrote, and by ``imagingdb
sync`` once every object is there and checked) and when it was last verified.
A dataset with no replica row (registered before schema version 5, or by the
original imagingDB) is in the primary store.

A read (download, ``Dataset.read``, export, verify) uses the store it is
told, which must hold a copy; told none, the primary if it holds one and can
be reached, else the first store in the site config's order that holds a copy
and can be reached, saying so in a :class:`~imagingdb.errors.StoreFallbackWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Optional

import sqlalchemy as sa

from . import db as dbq
from .errors import InputError, StoreFallbackWarning, WorkError
from .site import Site

if TYPE_CHECKING:
    from .storage import StorageBackend


@dataclass(frozen=True)
class Replica:
    """One store's complete copy of a dataset."""

    store: str
    complete_at: Optional[datetime]  # None: assumed (no replica row: in the primary)
    verified_at: Optional[datetime] = None

    @property
    def recorded(self) -> bool:
        return self.complete_at is not None

    def to_json(self) -> dict[str, Any]:
        return {"store": self.store, "recorded": self.recorded,
                "complete_at": _iso(self.complete_at), "verified_at": _iso(self.verified_at)}


def _iso(value: Optional[datetime]) -> Optional[str]:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def replicas_of(conn: sa.Connection, site: Site, dataset_pks: Iterable[int]) -> dict[int, list[Replica]]:
    """Each dataset's copies, the primary's first; a dataset without rows: the primary's."""
    pks = list(dataset_pks)
    rows = dbq.replica_stores(conn, pks)
    order = {name: i for i, name in enumerate(site.store_names)}
    found = {}
    for pk in pks:
        recorded = rows.get(pk)
        if not recorded:
            found[pk] = [Replica(site.primary, None)]
            continue
        found[pk] = sorted((Replica(r.store, r.complete_at, r.verified_at) for r in recorded),
                           key=lambda r: (order.get(r.store, len(order)), r.store))
    return found


def stores_by_id(conn: sa.Connection, site: Site, dataset_ids: list[str]) -> dict[str, list[str]]:
    """The names of the stores holding each dataset (by ID), the primary's first."""
    recorded = dbq.replica_stores_by_serial(conn, dataset_ids)
    order = {name: i for i, name in enumerate(site.store_names)}
    return {dataset_id: sorted(recorded.get(dataset_id) or [site.primary],
                               key=lambda name: (order.get(name, len(order)), name))
            for dataset_id in dataset_ids}


def stores_holding(conn: sa.Connection, site: Site, dataset_pk: int) -> list[str]:
    """The names of the stores holding a complete copy of the dataset, the primary's first."""
    return [r.store for r in replicas_of(conn, site, [dataset_pk])[dataset_pk]]


def reading_store(site: Site, dataset_pk: int, dataset_id: str,
                  wanted: Optional[str] = None) -> tuple[str, "StorageBackend"]:
    """The store to read a dataset from: ``wanted`` (which must hold a copy), else the primary,
    else (with a warning when the primary holds one but cannot be reached) the first store
    holding a copy that can be reached."""
    with site.connection() as conn:
        holding = stores_holding(conn, site, dataset_pk)
    if wanted is not None:
        site.store_settings(wanted)  # an unknown name: the site's stores, listed
        if wanted not in holding:
            raise InputError(f"dataset {dataset_id} has no complete copy in store {wanted!r} "
                             f"(copies: {', '.join(holding)}); imagingdb sync --to {wanted} "
                             f"--id {dataset_id} makes one")
        return wanted, site.store(wanted)
    configured = [name for name in holding if name in site.config.stores]
    if not configured:
        raise WorkError(f"dataset {dataset_id} has copies only in stores the site config does "
                        f"not name ({', '.join(holding)}); add one to storage.stores")
    first = configured[0]
    reasons = []
    for name in configured:
        reason = site.unreachable(name)
        if reason is None:
            if name != first or first != site.primary:
                warnings.warn(StoreFallbackWarning(_fallback_message(
                    site, dataset_id, name, reasons, holding)), stacklevel=3)
            return name, site.store(name)
        reasons.append((name, reason))
    raise WorkError(f"no store holding dataset {dataset_id} can be reached: "
                    + "; ".join(f"{name}: {reason}" for name, reason in reasons))


def _fallback_message(site: Site, dataset_id: str, chosen: str,
                      reasons: list[tuple[str, str]], holding: list[str]) -> str:
    if site.primary not in holding:
        return (f"dataset {dataset_id} has no copy in the primary store {site.primary!r}; "
                f"reading it from store {chosen!r}")
    why = "; ".join(f"store {name!r} cannot be reached ({reason})" for name, reason in reasons)
    return f"{why}; reading dataset {dataset_id} from store {chosen!r}"
