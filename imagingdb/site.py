"""The site: one imagingdb instance's database and storage, opened when first needed.

Every operation that talks to the database or the store (upload, download,
verify, gc, the claims on dataset IDs) receives a :class:`Site`; the Python
API (:class:`imagingdb.api.Database`) wraps one. A site knows plumbing only:
its configuration, an engine whose schema is checked once, transactions whose
driver errors become one-line errors, and the storage backend plugin.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Optional

import sqlalchemy as sa

from . import db as dbq
from .config import SiteConfig, StorageSettings, mask_url
from .errors import ImagingDBError, InputError

if TYPE_CHECKING:
    from .storage import StorageBackend


def open_storage(settings: StorageSettings) -> "StorageBackend":
    """Instantiate the storage backend plugin ``settings`` name."""
    from . import plugins  # here: queries never load plugins (pluggy and all, ~0.01 s)

    backend_class = plugins.get("storage_backend", settings.backend).obj
    return backend_class(**settings.options)


class Site:
    """A configured database and storage, each opened on first use."""

    def __init__(self, config: SiteConfig):
        self.config = config
        self._engine: Optional[sa.Engine] = None
        self._stores: dict[str, "StorageBackend"] = {}
        #: store name -> why it cannot be reached (None: it can), asked once per site
        self._reachable: dict[str, Optional[str]] = {}
        self._schema_checked = False

    @property
    def engine(self) -> sa.Engine:
        """The engine, once the schema is known to be current (an empty embedded database gets it)."""
        from .db.schema_check import ensure_current

        engine = self.unchecked_engine
        if not self._schema_checked:
            with self.database_errors():
                ensure_current(engine, auto_upgrade=self.config.is_embedded_default)
            self._schema_checked = True
        return engine

    @property
    def unchecked_engine(self) -> sa.Engine:
        """The engine before any schema check: for creating and upgrading the schema."""
        if self._engine is None:
            self._engine = dbq.create_engine(self.config.database)
        return self._engine

    def schema_is_current(self) -> None:
        """Note that the schema was just brought to this imagingdb's version."""
        self._schema_checked = True

    @property
    def storage(self) -> "StorageBackend":
        """The primary store: where uploads write and reads look first."""
        return self.store(self.config.primary)

    @property
    def primary(self) -> str:
        """The primary store's name."""
        return self.config.primary

    @property
    def store_names(self) -> list[str]:
        """Every store's name, the primary first, then as the site config lists them."""
        return [self.config.primary] + [n for n in self.config.stores if n != self.config.primary]

    def store(self, name: str) -> "StorageBackend":
        """The store called ``name`` in the site config (opened on first use)."""
        if name not in self._stores:
            self._stores[name] = open_storage(self.store_settings(name))
        return self._stores[name]

    def store_settings(self, name: str) -> StorageSettings:
        settings = self.config.stores.get(name)
        if settings is None:
            raise InputError(f"no store named {name!r} in the site config (its stores: "
                             f"{', '.join(self.store_names)})")
        return settings

    def unreachable(self, name: str) -> Optional[str]:
        """Why the store ``name`` cannot be read now (None: it can); asked once per site."""
        if name not in self._reachable:
            try:
                self.store(name).check()
                self._reachable[name] = None
            except ImagingDBError as exc:
                self._reachable[name] = str(exc)
        return self._reachable[name]

    @property
    def database_url(self) -> str:
        """The database URL with any password masked, for messages."""
        return mask_url(self.config.database.url)

    def describe(self) -> str:
        others = [name for name in self.store_names if name != self.primary]
        also = f" (and {', '.join(f'{n}: {self.store(n).describe()}' for n in others)})" if others else ""
        return f"{self.database_url} with storage {self.storage.describe()}{also}"

    @contextlib.contextmanager
    def database_errors(self) -> Iterator[None]:
        """Driver and network errors as one-line WorkErrors naming the (masked) database."""
        try:
            yield
        except sa.exc.IntegrityError:
            raise  # a constraint said no: the caller knows what that means
        except sa.exc.DBAPIError as exc:
            raise dbq.connection_error(exc, self.config.database) from None

    @contextlib.contextmanager
    def connection(self, write: bool = False) -> Iterator[sa.Connection]:
        """A connection in a transaction (``write``: one that takes the write lock at once)."""
        engine = self.engine
        with self.database_errors():
            with (dbq.writing(engine) if write else engine.begin()) as conn:
                yield conn

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> "Site":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
