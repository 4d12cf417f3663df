"""Site config and upload config: finding, loading (strict YAML) and validating them.

Every problem is an :class:`~imagingdb.errors.InputError` naming the file and
the key, found before any work starts. Passwords never live in these files:
the site config names an environment variable (``password_env``) instead.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote, unquote, unquote_plus

from .errors import InputError
from .layout import FRAME_FORMATS, PNG

SITE_CONFIG_ENV = "IMAGINGDB_CONFIG"
HOME_ENV = "IMAGINGDB_HOME"


# --------------------------------------------------------------------------- YAML


def load_mapping_file(path: Path, what: str) -> dict[str, Any]:
    """Load a YAML (or JSON) file that must hold a mapping; errors name the file.

    :func:`imagingdb.input_files.load_yaml` reads it: a regular file only, with
    size, nesting and alias-expansion limits, duplicate keys refused.
    """
    from .input_files import load_yaml

    data = load_yaml(path, what)
    if data is None:
        raise InputError(f"{what} {path} is empty")
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must be a mapping of keys to values")
    return data


# --------------------------------------------------------------------- validation

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "a mapping",
               list: "a list"}


def _check_keys(data: dict, allowed: dict[str, tuple], path: Path, section: str = "") -> None:
    """Refuse unknown keys (with a suggestion) and values of the wrong type."""
    prefix = f"{section}." if section else ""
    for key, value in data.items():
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), list(allowed), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            known = ", ".join(sorted(allowed))
            raise InputError(
                f"{path}: unknown key {prefix}{key!r}{suggestion}; known keys: {known}"
            )
        types = allowed[key]
        if value is None and type(None) in types:
            continue
        # bool is a subclass of int: do not let `true` pass as an integer
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, tuple(t for t in types if t is not type(None)))
        if not ok:
            wanted = " or ".join(_TYPE_NAMES.get(t, "null") for t in types)
            raise InputError(
                f"{path}: key {prefix}{key!r} must be {wanted}, got {value!r}"
            )


# -------------------------------------------------------------------- site config


def imagingdb_home() -> Path:
    """Where the embedded default keeps its database and storage."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "imagingdb"


def default_site_config_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "imagingdb" / "config.yaml"


#: the sections of config.example.yaml, as `imagingdb config example SECTION` names them
EXAMPLE_SECTIONS = ("site", "upload")


def example_config(section: Optional[str] = None) -> str:
    """config.example.yaml, every key of both files documented (shipped in the package, so
    the single-file executable has it too); ``section`` "site" or "upload": that part only.

    The file's sections each start with a ``# ====`` rule line naming them; the site part
    is a working site config once its values are a lab's."""
    from importlib import resources

    text = resources.files("imagingdb").joinpath("config.example.yaml").read_text(encoding="utf-8")
    if section is None:
        return text
    if section not in EXAMPLE_SECTIONS:
        raise InputError(f"no config section {section!r}; the sections are "
                         f"{', '.join(EXAMPLE_SECTIONS)}")
    lines = text.splitlines(keepends=True)
    rules = [n for n, line in enumerate(lines) if line.startswith("# ====")]
    start = rules[EXAMPLE_SECTIONS.index(section)]
    end = rules[EXAMPLE_SECTIONS.index(section) + 1] if section != EXAMPLE_SECTIONS[-1] else None
    return "".join(lines[start:end]).rstrip("\n") + "\n"


@dataclass(repr=False)
class DatabaseSettings:
    url: str
    password_env: Optional[str] = None
    connect_timeout: int = 10
    #: a password given programmatically or read from a --login credentials file
    password: Optional[str] = None

    def __repr__(self) -> str:
        # An API user's URL may hold a password; a repr ends up in logs and tracebacks.
        return (f"DatabaseSettings(url={mask_url(self.url)!r}, password_env={self.password_env!r}, "
                f"connect_timeout={self.connect_timeout!r}, "
                f"password={None if self.password is None else '***'})")


@dataclass
class StorageSettings:
    backend: str = "local"
    #: everything else of the storage section, handed to the backend as is
    options: dict[str, Any] = field(default_factory=dict)
    #: how new frames datasets are stored (an upload config's frame_format overrides it):
    #: png, the original's, or ome-zarr (:data:`imagingdb.layout.FRAME_FORMATS`)
    frame_format: str = PNG
    #: the store's prices (``prices:``, :data:`PRICE_KEYS`) for ``upload --plan``'s cost
    #: estimate; None: not configured (:data:`DEFAULT_PRICES` apply to S3)
    prices: Optional[dict[str, Any]] = None


@dataclass
class SiteConfig:
    """The database and the named stores of a site (see ``storage.stores``)."""

    database: DatabaseSettings
    #: the primary store's settings: where uploads write and reads look first
    storage: StorageSettings
    source: Optional[Path] = None  # None: the embedded default
    #: every store by name, the primary among them; a one-backend ``storage:`` section is
    #: one store named after its backend
    stores: dict[str, StorageSettings] = field(default_factory=dict)
    primary: str = ""

    def __post_init__(self) -> None:
        if not self.stores:
            self.use_single_store(self.storage)

    def use_single_store(self, settings: StorageSettings) -> None:
        """Make ``settings`` the site's only store (``connect(storage=...)``, ``--login``)."""
        self.storage = settings
        self.primary = settings.backend
        self.stores = {settings.backend: settings}

    @property
    def is_embedded_default(self) -> bool:
        return self.source is None


_SITE_TOP_KEYS = {"database": (dict,), "storage": (dict,)}
#: the keys of a storage section of named stores (``stores:`` holds a backend section each)
_STORES_KEYS = {"primary": (str, type(None)), "stores": (dict,), "frame_format": (str, type(None))}
#: a store's name: what the database records a replica under, and --storage takes
STORE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DATABASE_KEYS = {"url": (str,), "password_env": (str, type(None)), "connect_timeout": (int,)}
_STORAGE_KEYS = {
    "backend": (str,),
    "root": (str, type(None)),
    "bucket": (str, type(None)),
    "prefix": (str, type(None)),
    "endpoint_url": (str, type(None)),
    "region": (str, type(None)),
    "options": (dict, type(None)),
    "frame_format": (str, type(None)),
    "prices": (dict, type(None)),
}
#: what a store's ``prices:`` may set (``upload --plan``'s cost estimate): per 1,000 requests
#: of each kind, per GB (2**30 bytes) stored a month, and the currency they are in
PRICE_KEYS = ("put_per_1000", "list_per_1000", "get_per_1000", "delete_per_1000",
              "storage_gb_month", "currency")
#: AWS S3 Standard list prices in us-east-1 (2026): PUT, COPY, POST and LIST requests
#: $0.005 per 1,000; GET, HEAD and the others $0.0004 per 1,000; DELETE free; storage
#: $0.023 per GB-month (the first 50 TB). A lab with other prices sets its own.
DEFAULT_PRICES: dict[str, Any] = {
    "put_per_1000": 0.005, "list_per_1000": 0.005, "get_per_1000": 0.0004,
    "delete_per_1000": 0.0, "storage_gb_month": 0.023, "currency": "USD",
}
#: query keys whose value is a password (compared lower-case, after percent-decoding)
_PASSWORD_QUERY_KEYS = ("password", "passwd", "pwd", "sslpassword")
#: one query parameter; a value runs to the next "&" that starts another key=, so that
#: an unencoded "&" inside a password stays part of it
_QUERY_PARAM = re.compile(r"[?&](?P<key>[^?&=#/]*)=(?P<value>.*?)(?=&[^&=]*=|\Z)", re.DOTALL)


def _password_spans(url: str) -> list[tuple[int, int, str]]:
    """(start, end, decoded value) of every non-empty password in ``url``, by position.

    Passwords are often not percent-encoded and may hold "@", ":", "/", "?" or
    "%", so every reading that could hold one counts: the userinfo runs to the
    URL's *last* "@", and password keys are looked for anywhere. The spans may
    then overlap; masked together, nothing of a password is ever shown (a URL
    with an "@" in its query is masked too much).
    """
    spans = []
    start = _authority_start(url)
    userinfo = _userinfo_password(url)
    if userinfo:
        spans.append((*userinfo, unquote(url[userinfo[0]:userinfo[1]])))
    for param in _QUERY_PARAM.finditer(url, start):
        if param["value"] and unquote_plus(param["key"]).strip().lower() in _PASSWORD_QUERY_KEYS:
            spans.append((param.start("value"), param.end("value"), unquote_plus(param["value"])))
    return sorted(spans)


def _authority_start(url: str) -> int:
    """Where the part after ``scheme://`` begins (0 in a URL without a scheme)."""
    return url.find("://") + 3 if "://" in url else 0


def _userinfo_password(url: str) -> Optional[tuple[int, int]]:
    """(start, end) of the userinfo's password, read to the URL's last "@"; None if none."""
    start = _authority_start(url)
    at = url.rfind("@", start)
    colon = url.find(":", start, at) if at >= 0 else -1
    # a "/" before the colon makes it a path (sqlite:///C:/...), not a user name's end
    if colon >= 0 and at > colon + 1 and not any(c in url[start:colon] for c in "/?#"):
        return colon + 1, at
    return None


def _userinfo_is_ambiguous(url: str) -> bool:
    """True if the userinfo read to the last "@" holds a path and then a query: an "@" in
    the query (``u@host:5432/db?application_name=u@lab``) or a password nobody can tell
    from one."""
    userinfo = _userinfo_password(url)
    if not userinfo:
        return False
    text = url[userinfo[0]:userinfo[1]]
    return "/" in text and "?" in text[text.index("/"):]


def _merged(spans: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end, _value in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def mask_url(url: str) -> str:
    """The URL with every password (userinfo or query) replaced by ``***``: the only way
    a URL is shown."""
    for start, end in reversed(_merged(_password_spans(url))):
        url = f"{url[:start]}***{url[end:]}"
    return url


def url_has_password(url: str) -> bool:
    """True if ``url`` holds a password, or may hold one (see :func:`split_url_password`)."""
    return bool(_password_spans(url))


def url_passwords(url: str) -> list[str]:
    """Each password in ``url`` as written and as decoded: what to blank out of a driver's
    message that might quote it."""
    return [text for start, end, value in _password_spans(url) for text in (url[start:end], value)]


def _read_two_ways(url: str) -> str:
    return (f"database URL {mask_url(url)!r} can be read more than one way; percent-encode "
            "the password, and any @ in the query (@ as %40, : as %3A, / as %2F, ? as %3F)")


def split_url_password(url: str) -> tuple[str, Optional[str]]:
    """``url`` without its passwords, and the password it gives (decoded; a query's wins,
    as the driver would have it), so that no URL string ever holds one."""
    spans = _password_spans(url)
    if len(_merged(spans)) < len(spans) or _userinfo_is_ambiguous(url):
        raise InputError(_read_two_ways(url))
    if not spans:
        return url, None
    for start, end, _value in reversed(spans):
        if url[start - 1] == ":":  # the userinfo's ":password"
            url = url[:start - 1] + url[end:]
        else:  # a query's "key=value" and the separator before it
            key_start = max(url.rfind("&", 0, start), url.rfind("?", 0, start))
            keep = url[key_start] if url[key_start] == "?" else ""
            url = url[:key_start] + keep + url[end:].removeprefix("&" if keep else "")
    return url.removesuffix("?"), spans[-1][2]


def embedded_default() -> SiteConfig:
    home = imagingdb_home()
    return SiteConfig(
        database=DatabaseSettings(url=f"sqlite:///{home / 'imagingdb.sqlite'}"),
        storage=StorageSettings("local", {"root": str(home / "storage")}),
    )


def find_site_config(explicit: Optional[os.PathLike | str] = None) -> SiteConfig:
    """--site-config, else $IMAGINGDB_CONFIG, else ~/.config/imagingdb/config.yaml, else default."""
    if explicit:
        return load_site_config(Path(explicit))
    env = os.environ.get(SITE_CONFIG_ENV)
    if env:
        return load_site_config(Path(env))
    path = default_site_config_path()
    if path.exists():  # not is_file(): a FIFO or folder there is refused, not passed over
        return load_site_config(path)
    return embedded_default()


def load_site_config(path: Path) -> SiteConfig:
    data = load_mapping_file(path, "site config")
    _check_keys(data, _SITE_TOP_KEYS, path)
    db = dict(data.get("database") or {})
    _check_keys(db, _DATABASE_KEYS, path, "database")
    if "url" not in db:
        raise InputError(f"{path}: key 'database.url' is required")
    if _userinfo_is_ambiguous(db["url"]):
        raise InputError(f"{path}: {_read_two_ways(db['url'])}")
    if url_has_password(db["url"]):
        raise InputError(
            f"{path}: database.url contains a password; remove it from the file and "
            "name an environment variable with database.password_env instead"
        )
    base = path.parent
    if db["url"].startswith("sqlite:///") and not db["url"].startswith("sqlite:////"):
        relative = db["url"][len("sqlite:///"):]
        if relative and relative != ":memory:":
            db["url"] = f"sqlite:///{(base / Path(relative).expanduser()).resolve()}"
    stores, primary = _site_stores(dict(data.get("storage") or {}), path)
    return SiteConfig(
        database=DatabaseSettings(
            url=db["url"],
            password_env=db.get("password_env"),
            connect_timeout=db.get("connect_timeout", 10),
        ),
        storage=stores[primary],
        source=path,
        stores=stores,
        primary=primary,
    )


def _site_stores(section: dict[str, Any], path: Path) -> tuple[dict[str, StorageSettings], str]:
    """The named stores of a storage section, and the primary's name. A section without
    ``stores:`` is today's one backend, a single store named after it."""
    if "stores" not in section:
        settings = _store_settings(section, path, "storage")
        return {settings.backend: settings}, settings.backend
    _check_keys(section, _STORES_KEYS, path, "storage")
    frame_format = checked_frame_format(section.get("frame_format"), path, "storage.frame_format")
    stores = {}
    for name, store in section["stores"].items():
        where = f"storage.stores.{name}"
        if not isinstance(name, str) or not STORE_NAME.fullmatch(name):
            raise InputError(f"{path}: store name {name!r} in storage.stores must be a name of "
                             "letters, digits, '_', '.' and '-' (it is recorded in the database)")
        if not isinstance(store, dict):
            raise InputError(f"{path}: key {where!r} must be a mapping (backend, root or "
                             f"bucket, ...), got {store!r}")
        if "frame_format" in store:
            raise InputError(f"{path}: key '{where}.frame_format' is not a store's: set "
                             "storage.frame_format (how every upload stores frames)")
        stores[name] = _store_settings(dict(store), path, where, frame_format)
    if not stores:
        raise InputError(f"{path}: storage.stores is empty; name at least one store")
    primary = section.get("primary")
    if primary is None:
        if len(stores) > 1:
            raise InputError(f"{path}: storage.primary is required with more than one store "
                             f"(one of: {', '.join(stores)}): uploads write there")
        primary = next(iter(stores))
    if primary not in stores:
        raise InputError(f"{path}: storage.primary {primary!r} is not one of storage.stores "
                         f"({', '.join(stores)})")
    return stores, primary


def _store_settings(store: dict[str, Any], path: Path, section: str,
                    frame_format: Optional[str] = None) -> StorageSettings:
    """One backend's section (``storage:`` itself, or one of ``storage.stores``)."""
    _check_keys(store, _STORAGE_KEYS, path, section)
    backend = store.pop("backend", "local")
    own_format = checked_frame_format(store.pop("frame_format", None), path, f"{section}.frame_format")
    prices = checked_prices(store.pop("prices", None), path, f"{section}.prices")
    # `key: null` means "not set": the example config lists every key that way
    store = {key: value for key, value in store.items() if value is not None}
    if store.get("root"):
        store["root"] = str((path.parent / Path(store["root"]).expanduser()).resolve())
    return StorageSettings(backend, store, own_format or frame_format or PNG, prices)


def checked_prices(prices: Optional[dict[str, Any]], path: Path,
                    section: str) -> Optional[dict[str, Any]]:
    """A store's ``prices:``: the keys it sets over :data:`DEFAULT_PRICES` (None: unset)."""
    if prices is None:
        return None
    for key, value in prices.items():
        if key not in PRICE_KEYS:
            raise InputError(f"{path}: unknown key {section}.{key}; known keys: "
                             f"{', '.join(PRICE_KEYS)}")
        if key == "currency":
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{path}: key {section}.currency must be a currency's name "
                                 f"(e.g. USD), got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 <= value < float("inf")):
            raise InputError(f"{path}: key {section}.{key} must be a number of 0 or more "
                             f"(a price), got {value!r}")
    return {**DEFAULT_PRICES, **prices}


_CREDENTIAL_KEYS = ("drivername", "username", "password", "host", "port", "dbname")


def load_login_file(path: Path) -> DatabaseSettings:
    """The original imagingDB's --login db_credentials.json, kept for compatibility."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"login file {path} not found") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        print(
            f"Warning: {path} holds a password and is readable by other users; "
            f"run: chmod 600 {path}",
            file=sys.stderr,
        )
    from .input_files import read_text

    try:
        data = json.loads(read_text(path, "login file"))
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise InputError(f"login file {path} is not valid JSON: {reason}") from None
    if not isinstance(data, dict):
        raise InputError(f"login file {path} must hold a JSON object")
    missing = [k for k in _CREDENTIAL_KEYS if k not in data]
    if missing:
        raise InputError(f"login file {path} lacks key(s): {', '.join(missing)}")
    driver = str(data["drivername"])
    if driver in ("postgres", "postgresql", "postgresql+psycopg2"):
        driver = "postgresql+pg8000"  # the driver imagingdb ships with
    # Quoted, so that a ":" or "@" in the user name is never read as a password's start or end.
    user, dbname = (quote(str(data[key]), safe="") for key in ("username", "dbname"))
    url = f"{driver}://{user}@{data['host']}:{data['port']}/{dbname}"
    return DatabaseSettings(url=url, password=str(data["password"]))


# ------------------------------------------------------------------ upload config

UPLOAD_KEYS = {
    "upload_type": (str,),
    "frames_format": (str, type(None)),
    "sequence_axis": (str, type(None)),
    "microscope": (str, type(None)),
    "filename_parser": (str, type(None)),
    "meta_schema": (str, dict, type(None)),
    "storage": (str, type(None)),
    "storage_access": (str, type(None)),
    "nbr_workers": (int, type(None)),
    "png_filter": (str, type(None)),
    "png_strategy": (str, type(None)),
    "png_level": (int, type(None)),
    "frame_format": (str, type(None)),
    "required_annotations": (list, type(None)),
    "duplicates": (str, type(None)),
    "qc": (bool, type(None)),
}
#: what an upload does when its source's content is already a dataset's (key 'duplicates')
DUPLICATE_ACTIONS = ("warn", "error", "ignore")
# The PNG codec's choices (imagingdb.codecs.png.encode_png; a test keeps them in step),
# spelt out here because loading a config must not import numpy.
PNG_FILTERS = ("none", "sub", "up")
PNG_STRATEGIES = ("auto", "isal", "default", "filtered", "huffman", "rle")
PNG_DEFAULTS = {"png_filter": "up", "png_strategy": "auto", "png_level": 3}


#: frames_format that lets imagingdb choose the splitter for each source
AUTO_FORMAT = "auto"
#: sequence_axis values: the FrameIndex axis a one-number-per-image sequence runs along
SEQUENCE_AXES = {"z": "slice", "t": "time"}


@dataclass
class UploadConfig:
    upload_type: str
    frames_format: str = AUTO_FORMAT
    sequence_axis: str = "slice"  # a FrameIndex axis (SEQUENCE_AXES' values)
    microscope: Optional[str] = None
    filename_parser: Optional[str] = None
    meta_schema: Optional[dict[str, Any]] = None
    storage: Optional[str] = None
    storage_access: Optional[str] = None
    nbr_workers: Optional[int] = None
    png_filter: str = PNG_DEFAULTS["png_filter"]
    png_strategy: str = PNG_DEFAULTS["png_strategy"]
    png_level: int = PNG_DEFAULTS["png_level"]
    #: the frame layout of this upload; None: the site config's storage.frame_format
    frame_format: Optional[str] = None
    #: annotations every row must have (CSV columns or --annotate)
    required_annotations: tuple[str, ...] = ()
    #: warn, error or ignore when the content is already a dataset's
    duplicates: str = "warn"
    #: measure frames as they are stored (imagingdb.qc); false skips it
    qc: bool = True
    source: Optional[Path] = None

    def png_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`imagingdb.codecs.png.encode_png` for this upload."""
        return {"png_filter": self.png_filter, "strategy": self.png_strategy,
                "level": self.png_level}


def load_upload_config(path: Path) -> UploadConfig:
    """Load and validate an upload config (YAML, or the original's JSON)."""
    data = load_mapping_file(Path(path), "upload config")
    return upload_config_from_mapping(data, Path(path))


def upload_config_from_mapping(data: dict[str, Any], path: Path) -> UploadConfig:
    _check_keys(data, UPLOAD_KEYS, path)
    upload_type = data.get("upload_type")
    if upload_type not in ("file", "frames"):
        raise InputError(
            f"{path}: key 'upload_type' must be 'file' or 'frames', got {upload_type!r}"
        )
    frames_format = data.get("frames_format") or AUTO_FORMAT
    axis = data.get("sequence_axis") or "z"
    if axis not in SEQUENCE_AXES:
        raise InputError(f"{path}: key 'sequence_axis' must be z (slices, the default) or t "
                         f"(time points), got {axis!r}")
    workers = data.get("nbr_workers")
    if workers is not None and workers < 1:
        raise InputError(f"{path}: key 'nbr_workers' must be at least 1, got {workers}")
    png = _png_settings(data, path)
    schema = data.get("meta_schema")
    if isinstance(schema, str):
        schema_path = Path(schema)
        if not schema_path.is_absolute():
            schema_path = path.parent / schema_path
        schema = load_mapping_file(schema_path, "meta_schema file")
    return UploadConfig(
        upload_type=upload_type,
        frames_format=frames_format,
        sequence_axis=SEQUENCE_AXES[axis],
        microscope=data.get("microscope"),
        filename_parser=data.get("filename_parser"),
        meta_schema=schema,
        storage=data.get("storage"),
        storage_access=data.get("storage_access"),
        nbr_workers=workers,
        **png,
        frame_format=checked_frame_format(data.get("frame_format"), path, "frame_format"),
        required_annotations=_required_annotations(data.get("required_annotations"), path),
        duplicates=_choice(data, "duplicates", DUPLICATE_ACTIONS, path),
        qc=data.get("qc") is not False,
        source=path,
    )


def _required_annotations(value: Optional[list], path: Path) -> tuple[str, ...]:
    from .annotations import check_key

    keys = []
    for item in value or ():
        if not isinstance(item, str):
            raise InputError(f"{path}: key 'required_annotations' must be a list of annotation "
                             f"keys, got {item!r} in it")
        keys.append(check_key(item, f"{path}: required_annotations"))
    return tuple(keys)


def _choice(data: dict[str, Any], key: str, allowed: tuple[str, ...], path: Path) -> str:
    """``data[key]`` if one of ``allowed`` (unset or null: the first)."""
    value = data.get(key)
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise InputError(f"{path}: key {key!r} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def checked_frame_format(value: Optional[str], path: "Path | str", key: str) -> Optional[str]:
    """A frame_format key's value, checked (None: not set); ``path``: where it was given."""
    if value is not None and value not in FRAME_FORMATS:
        hint = ("; the source's format is the key 'frames_format'"
                if key == "frame_format" else "")
        raise InputError(f"{path}: key {key!r} (how frames are stored) must be one of "
                         f"{', '.join(FRAME_FORMATS)}, got {value!r}{hint}")
    return value


def _png_settings(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """png_filter, png_strategy and png_level, checked; unset (or null) keys take the defaults."""
    settings = {key: default if data.get(key) is None else data[key]
                for key, default in PNG_DEFAULTS.items()}
    for key, allowed in (("png_filter", PNG_FILTERS), ("png_strategy", PNG_STRATEGIES)):
        if settings[key] not in allowed:
            raise InputError(f"{path}: key {key!r} must be one of {', '.join(allowed)}, "
                             f"got {settings[key]!r}")
    if not 0 <= settings["png_level"] <= 9:
        raise InputError(f"{path}: key 'png_level' must be 0..9 (zlib levels), "
                         f"got {settings['png_level']}")
    return settings
