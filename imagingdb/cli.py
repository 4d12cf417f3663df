"""The command layer: parse, call the Python API, print. Nothing else lives here.

Heavy modules (numpy, tifffile, SQLAlchemy, boto3) are imported inside the
commands, never at module level, so ``imagingdb --help`` starts instantly.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer

from . import PLUGIN_API_VERSION, __version__
from .annotations import parse_assignments
from .console import ImagingDBGroup
from .errors import InputError
from .layout import GC_GRACE
from .terminal import human_size, printable, printable_json

EXAMPLES = """
\b
Examples:
  imagingdb upload --csv files_for_upload.csv --config upload.yaml
  imagingdb query --project-id ML --start-date 2005-05-01 --format json | jq '.[].dataset_id'
  imagingdb download ML-2005-05-23-10-00-00-0001 --dest ./data -c DAPI -t 0
  imagingdb export --id ML-2005-05-23-10-00-00-0001 --to ome-zarr ./ML-0001.ome.zarr

With no configuration, imagingdb keeps a SQLite database and the files under
$IMAGINGDB_HOME (default ~/.local/share/imagingdb). A lab's shared PostgreSQL
and S3 are set in a site config: --site-config, $IMAGINGDB_CONFIG or
~/.config/imagingdb/config.yaml.
"""


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class ReportFormat(str, Enum):
    text = "text"
    json = "json"


class ExportFormat(str, Enum):
    ome_zarr = "ome-zarr"
    ome_tiff = "ome-tiff"


class ListFormat(str, Enum):
    table = "table"
    text = "text"  # the same table, for symmetry with the other commands
    json = "json"


# --------------------------------------------------------------------- the app


def _version(value: bool) -> None:
    if value:
        print(f"imagingdb {__version__} (plugin API {PLUGIN_API_VERSION})")
        raise typer.Exit()


def _state(ctx: typer.Context) -> dict[str, Any]:
    return ctx.find_root().obj or {}


def _database(ctx: typer.Context):
    from . import start_up
    from .api import connect

    state = _state(ctx)
    database = connect(state.get("site_config"), login=state.get("login"))
    start_up.done()
    return database


def _selection(channels: Optional[List[str]], slices: Optional[List[str]],
                times: Optional[List[str]], positions: Optional[List[str]]) -> dict[str, Any]:
    """The -c/-z/-t/-p options of download and export as the API's selection arguments."""
    return {"channels": _split_list(channels, "channel", integers=False),
            "slices": _split_list(slices, "slice index", integers=True),
            "times": _split_list(times, "time index", integers=True),
            "positions": _split_list(positions, "position index", integers=True)}


def _one_dataset_id(argument: Optional[str], option: Optional[str], command: str) -> str:
    """The dataset ID given as the argument or with --id (once, either way)."""
    if argument is not None and option is not None:
        raise InputError(f"give the dataset ID once: as an argument (imagingdb {command} ID) "
                         "or with --id, not both")
    if argument is None and option is None:
        raise InputError(f"give the dataset ID: imagingdb {command} ID ... (see: imagingdb "
                         f"{command} --help)")
    return argument if argument is not None else option


def _split_list(values: Optional[List[str]], what: str, integers: bool) -> Optional[list]:
    """Repeated flags and comma lists alike: -c DAPI -c GFP, -c DAPI,GFP, -z 0-4 (kept as a
    ``range``, never listed, so that -z 0-999999999 costs nothing before it is refused)."""
    if not values:
        return None
    items: list = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if integers or part.isdigit():
                items.extend(_parse_int_or_range(part, what, integers))
            else:
                items.append(part)
    return items


def _parse_int_or_range(part: str, what: str, strict: bool) -> list:
    try:
        if "-" in part[1:]:
            low, high = part.split("-", 1)
            low_i, high_i = int(low), int(high)
            if high_i < low_i:
                raise ValueError
            return [range(low_i, high_i + 1)]  # left whole: the API checks it against the dataset
        return [int(part)]
    except ValueError:
        if not strict:
            return [part]
        raise InputError(f"invalid {what} {part!r}: expected an index, a list (0,2) or a "
                         "range (0-4)") from None


def make_app(plugin_commands: bool = True) -> typer.Typer:
    """A fresh CLI app (tests and plugins get their own), with the plugins' commands
    unless ``plugin_commands`` is False (see :func:`add_plugin_commands`)."""
    app = typer.Typer(
        cls=ImagingDBGroup,
        name="imagingdb",
        help="Store microscopy image data, find it, and get it back.\n" + EXAMPLES,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        debug: bool = typer.Option(False, "--debug", help="Show debug logs and tracebacks."),
        site_config: Optional[Path] = typer.Option(
            None, "--site-config", metavar="PATH",
            help="Site config YAML (else $IMAGINGDB_CONFIG, else ~/.config/imagingdb/config.yaml)."),
        login: Optional[Path] = typer.Option(
            None, "--login", metavar="JSON",
            help="The original imagingDB's database credentials JSON (overrides the site config)."),
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                     help="Print the version and exit."),
    ) -> None:
        import logging  # not at the top: --help never gets here

        ctx.obj = {"debug": debug, "site_config": site_config, "login": login}
        if not debug:
            # Libraries (tifffile...) log their own complaints about bad files; imagingdb
            # reports each problem once, as its one Error: line. --debug shows them.
            logging.getLogger().addHandler(logging.NullHandler())
        else:
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                                format="%(levelname)s %(name)s: %(message)s")
            for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
                logging.getLogger(noisy).setLevel(logging.INFO)

    _add_data_commands(app)
    _add_info_commands(app)
    _add_integrity_commands(app)
    _add_sync_command(app)
    _add_removal_commands(app)
    app.add_typer(_make_db_app())
    _add_python_command(app)
    _add_demo_command(app)
    app.add_typer(_make_config_app())
    _add_plugins_commands(app)
    if plugin_commands:
        add_plugin_commands(app)
    return app


def add_plugin_commands(app: typer.Typer) -> None:
    """Let every plugin add its commands to ``app`` (this loads the plugins)."""
    from . import plugins

    plugins.register_commands(app)


def _command_name(info: "typer.models.CommandInfo") -> str:
    return info.name or info.callback.__name__.replace("_", "-")


def builtin_command_names(app: typer.Typer) -> set[str]:
    """The names of imagingdb's own commands on ``app``. Its command groups (``db``,
    ``config``, ``plugins``) are not among them: ``plugins`` lists the plugins' commands,
    so it needs them registered, and the others are rare enough to start as any other."""
    return {_command_name(info) for info in app.registered_commands}


def keep_only(app: typer.Typer, name: str) -> None:
    """Leave on ``app`` its global options and its one command ``name`` (see
    :func:`builtin_command_names`), for a command line that runs that command.

    Nothing else could run, and the command's help and errors name only it; Typer turns
    every registered command and group into a Click one before parsing, which for all of
    them is ~30 ms of every command's start-up."""
    app.registered_commands = [info for info in app.registered_commands
                               if _command_name(info) == name]
    app.registered_groups = []


def _add_data_commands(app: typer.Typer) -> None:
    @app.command(epilog="Example: imagingdb init")
    def init(ctx: typer.Context) -> None:
        """Create or upgrade the database schema and the storage (safe to run again)."""
        with _database(ctx) as db:
            report = db.init()
            _print_upgrade(report)
            print(f"imagingdb is ready: schema version {report.after}, {db.describe()}",
                  file=sys.stderr)

    @app.command(epilog="Examples:\n\n\b\n"
                        "  imagingdb upload --csv files_for_upload.csv --config upload.yaml --plan\n"
                        "  imagingdb upload --csv files_for_upload.csv --config upload.yaml")
    def upload(
        ctx: typer.Context,
        csv_file: Path = typer.Option(..., "--csv", metavar="FILE",
                                      help="CSV: dataset_id, file_name, description, "
                                           "parent_dataset_id, positions (one dataset a row); "
                                           "any other column is an annotation."),
        config: Path = typer.Option(..., "--config", metavar="YAML",
                                    help="Upload config: upload_type, frames_format, microscope..."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Threads encoding and storing frames."),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="Replace datasets that already exist."),
        annotate: Optional[List[str]] = typer.Option(
            None, "--annotate", metavar="KEY=VALUE",
            help="Annotate every row's dataset (repeatable), e.g. --annotate strain=WT; "
                 "CSV columns beyond the known ones are annotations too."),
        encoding: Optional[str] = typer.Option(
            None, "--encoding", metavar="NAME",
            help="The CSV's encoding when it is not UTF-8, e.g. cp1252 (Excel's plain CSV "
                 "on Windows)."),
        replicate: bool = typer.Option(
            False, "--replicate", help="Write to every store of the site config, not only the "
                                       "primary (else imagingdb sync copies them later)."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: a report on stdout for scripts."),
        plan: bool = typer.Option(
            False, "--plan", help="Write nothing: say what the upload would do with each row "
                                  "(frames, dimensions, missing frames, bytes read and stored, "
                                  "objects, time on this machine, S3 requests and cost)."),
    ) -> None:
        """Upload datasets listed in a CSV: files kept whole, or split into PNG frames.

        Rows are independent: a bad row fails alone with an Error: line, the
        others are uploaded, and the exit code says that some failed. An
        interrupted upload can simply be run again. --plan first shows what it
        would do (exit 1 if a row would fail), from a few frames encoded and timed.
        """
        from . import console
        from .progress import TerminalProgress

        if plan:
            from .upload_plan import process_age

            with _database(ctx) as db:
                planned = db.plan_upload(csv_file, config, overwrite=overwrite, workers=workers,
                                         annotate=parse_assignments(annotate or (), "--annotate"),
                                         encoding=encoding, replicate=replicate,
                                         startup_seconds=process_age())
            for row in planned.rows:
                if not row.ok:
                    print(f"Error: {printable(row.error)}", file=sys.stderr)
            if output == ReportFormat.json:
                print(printable_json(json.dumps(planned.to_json(), indent=2)))
            else:
                from .upload_plan import format_plan

                for line in format_plan(planned):
                    print(printable(line))
            raise typer.Exit(planned.exit_code)

        done = [0]

        def report(result) -> None:
            if not result.ok:  # a success was already summed up by the progress line
                print(f"Error: {printable(result.error)}", file=sys.stderr)
            done[0] += result.ok
            console.interrupted_note = (
                f"interrupted: {done[0]} dataset(s) of the CSV are in; nothing of the row "
                "being uploaded was registered; run the same command again to finish (rows "
                "already in are skipped)")

        with _database(ctx) as db:
            outcome = db.upload(csv_file, config, overwrite=overwrite, workers=workers,
                                progress=TerminalProgress("Uploading", "Uploaded"), on_result=report,
                                annotate=parse_assignments(annotate or (), "--annotate"),
                                encoding=encoding, replicate=replicate)
        skipped = len(outcome.skipped)
        ok = len(outcome.results) - len(outcome.failed) - skipped
        there = f", {skipped} already there (skipped)" if skipped else ""
        print(f"{ok} of {len(outcome.results)} dataset(s) uploaded{there}", file=sys.stderr)
        if output == ReportFormat.json:
            print(json.dumps([r.to_json() for r in outcome.results], indent=2))
        if outcome.exit_code:
            raise typer.Exit(outcome.exit_code)

    @app.command(epilog="Example: imagingdb download ML-2005-05-23-10-00-00-0001 "
                        "--dest ./data -c DAPI -z 0-9 -t 0")
    def download(
        ctx: typer.Context,
        dataset_id: Optional[str] = typer.Argument(None, metavar="ID", show_default=False,
                                                   help="The dataset ID (or give it with --id)."),
        id_option: Optional[str] = typer.Option(None, "--id", metavar="ID",
                                                help="The dataset ID, as export takes it."),
        dest: Path = typer.Option(..., "--dest", metavar="DIR",
                                  help="Folder to write DIR/<ID>/ into."),
        channels: Optional[List[str]] = typer.Option(
            None, "-c", "--channels", help="Channel names or indexes (repeat or comma list)."),
        slices: Optional[List[str]] = typer.Option(None, "-z", "--slices",
                                                   help="Slice indexes, e.g. 0,1 or 0-9."),
        times: Optional[List[str]] = typer.Option(None, "-t", "--times", help="Time indexes."),
        positions: Optional[List[str]] = typer.Option(None, "-p", "--positions",
                                                      help="Position indexes."),
        metadata: bool = typer.Option(True, "--metadata/--no-metadata",
                                      help="Write global_metadata.json and frames_meta.csv."),
        download: bool = typer.Option(True, "--download/--no-download",
                                      help="--no-download: write the metadata only."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Concurrent transfers."),
        resume: bool = typer.Option(
            False, "--resume", help="Into a DIR/<ID>/ already there: keep the files that have "
                                    "their recorded sha256, add the rest (an interrupted "
                                    "download, or more channels/times)."),
        storage: Optional[str] = typer.Option(
            None, "--storage", "--storage_access", metavar="STORE",
            help="Read from this store of the site config (default: the primary, else a "
                 "store holding a copy)."),
    ) -> None:
        """Download a dataset, or only some channels/slices/times/positions, to DIR/<ID>/."""
        import warnings

        from . import console
        from .errors import ImagingDBWarning
        from .progress import TerminalProgress

        dataset_id = _one_dataset_id(dataset_id, id_option, "download")
        console.interrupted_note = (
            "interrupted: the files fetched so far are kept in a hidden .<ID>.partial-... folder "
            "of the destination; run the same command with --resume to finish")
        with _database(ctx) as db, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImagingDBWarning)
            ds = db.dataset(dataset_id)
            target = ds.download(
                dest,
                **_selection(channels, slices, times, positions),
                metadata=metadata, download=download, workers=workers, resume=resume,
                storage=storage,
                progress=TerminalProgress("Downloading", "Downloaded") if download and ds.is_frames else None,
            )
        for warning in caught:
            print(f"Warning: {printable(warning.message)}", file=sys.stderr)
        print(printable(target))

    @app.command(epilog="Examples:\n\n\b\n"
                        "  imagingdb export --id ML-2005-05-23-10-00-00-0001 --to ome-zarr "
                        "./ML-0001.ome.zarr\n"
                        "  imagingdb export --id ML-2005-05-23-10-00-00-0001 --to ome-tiff "
                        "-c GFP -t 1 -p 1 ./gfp.ome.tif")
    def export(
        ctx: typer.Context,
        dest: Path = typer.Argument(..., metavar="DEST",
                                    help="The store folder or file to write (must not exist)."),
        dataset_id: str = typer.Option(..., "--id", metavar="ID", help="The dataset ID."),
        to: ExportFormat = typer.Option(..., "--to", help="ome-zarr (a store folder) or "
                                                          "ome-tiff (one file)."),
        channels: Optional[List[str]] = typer.Option(
            None, "-c", "--channels", help="Channel names or indexes (repeat or comma list)."),
        slices: Optional[List[str]] = typer.Option(None, "-z", "--slices",
                                                   help="Slice indexes, e.g. 0,1 or 0-9."),
        times: Optional[List[str]] = typer.Option(None, "-t", "--times", help="Time indexes."),
        positions: Optional[List[str]] = typer.Option(None, "-p", "--positions",
                                                      help="Position indexes."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Concurrent reads from storage."),
        storage: Optional[str] = typer.Option(
            None, "--storage", "--storage_access", metavar="STORE",
            help="Read from this store of the site config (default: the primary, else a "
                 "store holding a copy)."),
    ) -> None:
        """Write a dataset, or only some channels/slices/times/positions, as OME-Zarr or OME-TIFF.

        OME-Zarr: an OME-Zarr 0.5 plate store, a well per position (named by its
        index), times, channels and slices numbered 0.. in the order selected.
        OME-TIFF: one image series per position, axes TCZYX. Frames an incomplete
        acquisition never recorded are zeros. DEST appears complete or not at all.
        """
        import warnings

        from .errors import ImagingDBWarning
        from .progress import TerminalProgress

        progress = TerminalProgress("Exporting", "Exported")
        with _database(ctx) as db, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImagingDBWarning)
            target = db.dataset(dataset_id).export(
                dest, to=to.value,
                **_selection(channels, slices, times, positions),
                workers=workers, progress=progress, storage=storage)
        for warning in caught:
            print(f"Warning: {printable(warning.message)}", file=sys.stderr)
        kind = "OME-Zarr store" if to == ExportFormat.ome_zarr else "OME-TIFF"
        print(printable(f"wrote {kind} {target} ({progress.done_frames} frame(s) of {dataset_id})"),
              file=sys.stderr)


WHERE_HELP = ("KEY=VALUE: an annotation, a global metadata path (Summary.Objective) or a "
              "field (uploaded_by); also != ~ (substring) < > <= >=. Repeat: all must hold.")


def _filter_options(where_help: str = WHERE_HELP):
    """The dataset filters query and stats share, as typer options (one dict of defaults)."""
    return {
        "project_id": typer.Option(None, "--project-id", help="Project part of the ID, e.g. ML."),
        "microscope": typer.Option(None, "--microscope", help="Substring of the microscope name."),
        "start_date": typer.Option(None, "--start-date", metavar="YYYY-MM-DD",
                                   help="Acquired on or after this day."),
        "end_date": typer.Option(None, "--end-date", metavar="YYYY-MM-DD",
                                 help="Acquired on or before this day."),
        "description": typer.Option(None, "--description", help="Substring of the description."),
        "where": typer.Option(None, "--where", metavar="KEY=VALUE", help=where_help),
    }


_FILTERS = _filter_options()


def _add_info_commands(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n\b\n"
                        "  imagingdb query --microscope scope2 --format json | jq .\n"
                        "  imagingdb query --where strain=WT --where Summary.Objective~10x "
                        "--sort date_time --reverse --limit 20")
    def query(
        ctx: typer.Context,
        project_id: Optional[str] = _FILTERS["project_id"],
        microscope: Optional[str] = _FILTERS["microscope"],
        start_date: Optional[str] = _FILTERS["start_date"],
        end_date: Optional[str] = _FILTERS["end_date"],
        description: Optional[str] = _FILTERS["description"],
        where: Optional[List[str]] = _FILTERS["where"],
        sort: str = typer.Option(
            "dataset_id", "--sort", metavar="FIELD",
            help="dataset_id, date_time, microscope, description, uploaded_at, stored_bytes, "
                 "nbr_frames, an annotation key, a metadata path or a QC figure (qc.focus_min)."),
        reverse: bool = typer.Option(False, "--reverse", help="Sort the other way."),
        limit: Optional[int] = typer.Option(None, "--limit", min=0, metavar="N",
                                            help="At most N datasets (after sorting)."),
        output: Optional[OutputFormat] = typer.Option(
            None, "--format", help="table (default on a terminal), json (default in a pipe), "
                                   "jsonl or csv."),
    ) -> None:
        """Find datasets; --format json prints a JSON array fit for jq.

        The table shows the first columns; json, jsonl and csv have every field
        (annotations, sizes, who uploaded it, when, from where).
        """
        with _database(ctx) as db:
            found = db.query(project_id=project_id, microscope=microscope,
                             start_date=start_date, end_date=end_date, description=description,
                             where=where, sort=sort, reverse=reverse, limit=limit)
        if output is None:
            output = OutputFormat.table if sys.stdout.isatty() else OutputFormat.json
        records = [d.to_json() for d in found]
        if output == OutputFormat.table:
            from .api import DatasetInfo

            records = [{k: r[k] for k in DatasetInfo.TABLE_KEYS} for r in records]
        elif output == OutputFormat.csv:
            records = [{**r, "annotations": json.dumps(r["annotations"], ensure_ascii=False),
                        "stores": ";".join(r["stores"])} for r in records]
        _print_records(records, output)
        if output == OutputFormat.table:
            print(f"{len(found)} dataset(s)", file=sys.stderr)

    @app.command(epilog="Example: imagingdb show ML-2005-05-23-10-00-00-0001")
    def show(
        ctx: typer.Context,
        dataset_id: str = typer.Argument(..., metavar="ID", help="The dataset ID."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format"),
    ) -> None:
        """One dataset: its fields, annotations, stored size, who uploaded it, global metadata
        and frame summary."""
        with _database(ctx) as db:
            summary = db.dataset(dataset_id).summary()
        if output == ReportFormat.json:
            print(printable_json(json.dumps(summary, indent=2, sort_keys=True, default=str,
                                            ensure_ascii=False)))
            return
        _print_summary(summary)

    @app.command(epilog="Examples:\n\n\b\n"
                        "  imagingdb preview ML-2005-05-23-10-00-00-0001 --out preview.png\n"
                        "  imagingdb preview ML-2005-05-23-10-00-00-0001 --out p.png "
                        "--format json")
    def preview(
        ctx: typer.Context,
        dataset_id: str = typer.Argument(..., metavar="ID", help="The dataset ID."),
        out: Path = typer.Option(..., "--out", metavar="FILE",
                                 help="The PNG to write (its folder must exist)."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: what was written, for scripts."),
    ) -> None:
        """Write a contact sheet of a dataset's thumbnails: one row per position, one column
        per channel, each cell the max projection over slices and time points (<= 128 px,
        8-bit, contrast from its percentiles), made at upload."""
        with _database(ctx) as db:
            written = db.dataset(dataset_id).preview(out)
        if output == ReportFormat.json:
            print(printable_json(json.dumps(written, indent=2, ensure_ascii=False)))
            return
        print(printable(f"{written['path']}: {len(written['positions'])} position(s) x "
                        f"{len(written['channels'])} channel(s), {written['width']} x "
                        f"{written['height']} pixels, {written['bytes']:,} bytes"))
        print(printable("  rows, top to bottom: position "
                        + ", ".join(str(p) for p in written["positions"])
                        + "; columns, left to right: " + ", ".join(written["channel_names"])))

    @app.command(epilog="Examples:\n\n\b\n"
                        "  imagingdb edit ML-2005-05-23-10-00-00-0001 --description \"plate B\" "
                        "--annotate strain=WT\n"
                        "  imagingdb edit ML-2005-05-23-10-00-00-0001 --unset strain --no-parent")
    def edit(
        ctx: typer.Context,
        dataset_id: str = typer.Argument(..., metavar="ID", help="The dataset ID."),
        description: Optional[str] = typer.Option(None, "--description", metavar="TEXT",
                                                  help="The new description (\"\": none)."),
        microscope: Optional[str] = typer.Option(None, "--microscope", metavar="TEXT",
                                                 help="The new microscope (\"\": none)."),
        parent: Optional[str] = typer.Option(None, "--parent", metavar="ID",
                                             help="The new parent dataset."),
        no_parent: bool = typer.Option(False, "--no-parent", help="Remove the parent."),
        annotate: Optional[List[str]] = typer.Option(
            None, "--annotate", metavar="KEY=VALUE",
            help="Set an annotation (repeat); KEY= with no value removes it."),
        unset: Optional[List[str]] = typer.Option(None, "--unset", metavar="KEY",
                                                  help="Remove an annotation (repeat)."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: the changes on stdout for scripts."),
    ) -> None:
        """Change a dataset's description, microscope, parent or annotations.

        All changes are made in one transaction, or none. Each field that
        changed is printed as `field: old -> new`.
        """
        from .edit import UNSET

        if parent is not None and no_parent:
            raise InputError("give --parent ID or --no-parent, not both")
        with _database(ctx) as db:
            report = db.edit(
                dataset_id,
                description=UNSET if description is None else description,
                microscope=UNSET if microscope is None else microscope,
                parent=None if no_parent else (UNSET if parent is None else parent),
                annotate=annotate, unset=unset)
        if output == ReportFormat.json:
            print(printable_json(json.dumps(report.to_json(), indent=2, ensure_ascii=False)))
        else:
            for change in report.changes:
                print(printable(f"{change.field}: {_shown(change.old)} -> {_shown(change.new)}"))
        if not report.changes:
            print(f"{report.dataset_id}: nothing to change", file=sys.stderr)

    @app.command(epilog="Example: imagingdb stats --project-id ML --where strain=WT")
    def stats(
        ctx: typer.Context,
        project_id: Optional[str] = _FILTERS["project_id"],
        microscope: Optional[str] = _FILTERS["microscope"],
        start_date: Optional[str] = _FILTERS["start_date"],
        end_date: Optional[str] = _FILTERS["end_date"],
        description: Optional[str] = _FILTERS["description"],
        where: Optional[List[str]] = _FILTERS["where"],
        output: Optional[ReportFormat] = typer.Option(
            None, "--format", help="text (default on a terminal) or json (exact integers; "
                                   "the default in a pipe)."),
    ) -> None:
        """Datasets, frames and stored bytes, by project and microscope, and in total.

        Takes query's filters. Datasets uploaded before imagingdb recorded sizes
        count as datasets and frames; how many lack a size is said.
        """
        with _database(ctx) as db:
            report = db.stats(project_id=project_id, microscope=microscope,
                              start_date=start_date, end_date=end_date, description=description,
                              where=where)
        if output is None:
            output = ReportFormat.text if sys.stdout.isatty() else ReportFormat.json
        if output == ReportFormat.json:
            print(printable_json(json.dumps(report.to_json(), indent=2, ensure_ascii=False)))
            return
        _print_stats(report)


def _shown(value: Any) -> str:
    return "(none)" if value is None else repr(value) if value == "" else str(value)


#: summary keys show prints in sentences of their own, not as `key  value`
_SUMMARY_OWN_LINES = ("annotations", "stored_bytes", "stored_objects", "stored_size_measured",
                      "uploaded_by", "uploaded_host", "uploaded_at", "imagingdb_version",
                      "source_path", "content_sha256", "global_meta", "stores", "replicas",
                      "nbr_channels", "nbr_slices", "nbr_timepoints", "nbr_positions",
                      "im_height", "im_width", "im_colors", "bit_depth", "frame_format",
                      "missing_frames", "missing_frame_indexes", "qc")
#: the groups of missing frames show lists (--format json has every frame)
_MISSING_GROUPS_SHOWN = 8


def _print_summary(summary: dict[str, Any]) -> None:
    """`imagingdb show`: one line a field, the dimensions in a sentence, missing frames by
    index, global metadata as the names of its keys (its values fill pages: OME-XML)."""
    import shutil

    from .terminal import shortened

    rows = [(k, v) for k, v in summary.items() if k not in _SUMMARY_OWN_LINES]
    if summary["frames"] and "nbr_channels" in summary:
        at = next(i for i, (k, _) in enumerate(rows) if k == "channel_names")
        rows[at:at] = [("dimensions", _dimensions(summary))]
        rows.append(("missing_frames", _missing_frames(summary)))
    rows.extend(_qc_rows(summary))
    size, objects = summary["stored_bytes"], summary["stored_objects"]
    if size is None:
        stored = "unknown (not recorded, and the storage cannot list sizes)"
    else:
        stored = f"{human_size(size)} ({size:,} bytes) in {objects:,} object(s)"
        if summary["stored_size_measured"]:
            stored += ", measured in storage (no size recorded at upload)"
    rows.append(("stored", stored))
    rows.append(("stores", describe_replicas(summary["replicas"])))
    rows.append(("source_path", summary["source_path"] or "(not recorded)"))
    rows.append(("content_sha256", summary["content_sha256"] or "(not recorded)"))
    if summary["uploaded_by"] or summary["uploaded_at"]:
        who = "@".join(p for p in (summary["uploaded_by"], summary["uploaded_host"]) if p)
        rows.append(("uploaded", f"by {who or '?'} at {summary['uploaded_at'] or '?'} UTC with "
                                 f"imagingdb {summary['imagingdb_version'] or '?'}"))
    else:
        rows.append(("uploaded", "(not recorded)"))
    annotations = summary["annotations"]
    rows.append(("annotations", "" if annotations else "(none)"))
    width = max(len(k) for k, _ in [*rows, ("global_meta", None)])
    for key, value in rows:
        if key == "channel_names" and isinstance(value, dict):
            value = ", ".join(f"{index}: {name}" for index, name in value.items())
        shown = "-" if value is None else _plain(value)
        print(f"{key:<{width}}  {printable(shown)}".rstrip())
    for key in sorted(annotations):
        print(printable(f"  {key}: {annotations[key]}"))
    meta = summary["global_meta"] or {}
    keys = sorted(meta) if isinstance(meta, dict) else []
    line = (f"{'global_meta':<{width}}  {len(keys)} key(s) (--format json for the whole "
            f"record){': ' if keys else ''}{', '.join(keys)}")
    if sys.stdout.isatty():  # a pipe gets every key's name
        line = shortened(line, max(shutil.get_terminal_size().columns - 1, 40))
    print(printable(line))


def _qc_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The QC section: ``qc  24 frames measured; ...`` then one line per finding."""
    from .qc import describe

    if not summary["frames"]:
        return [("qc", "none (a file kept whole is not read)")]
    lines = describe(summary.get("qc"))
    return [("qc" if number == 0 else "", line) for number, line in enumerate(lines)]


def _dimensions(summary: dict[str, Any]) -> str:
    """2 channels x 3 slices x 2 time points x 2 positions; 64 x 64 pixels, uint16 (png)."""
    axes = [(summary["nbr_channels"], "channel"), (summary["nbr_slices"], "slice"),
            (summary["nbr_timepoints"], "time point"), (summary["nbr_positions"], "position")]
    grid = " x ".join(f"{n} {name}{'' if n == 1 else 's'}" for n, name in axes)
    colors = summary["im_colors"]
    pixels = f"{summary['im_height']} x {summary['im_width']} pixels"
    if colors > 1:
        pixels += f" x {colors} colours"
    return f"{grid}; {pixels}, {summary['bit_depth']} ({summary['frame_format']})"


def _missing_frames(summary: dict[str, Any]) -> str:
    """none, or ``9 of 32: t=3`` (the groups of missing frames by index, as -c -z -t -p name
    them; an axis left out: all of it)."""
    from .acquisition import FrameIndex, describe_missing

    missing = [FrameIndex(i["channel"], i["slice"], i["time"], i["position"])
               for i in summary["missing_frame_indexes"]]
    if not missing:
        return "none"
    counts = {"c": summary["nbr_channels"], "z": summary["nbr_slices"],
              "t": summary["nbr_timepoints"], "p": summary["nbr_positions"]}
    intended = 1
    for count in counts.values():
        intended *= count
    groups = describe_missing(missing, {axis: range(n) for axis, n in counts.items()})
    shown = "; ".join(groups[:_MISSING_GROUPS_SHOWN])
    if len(groups) > _MISSING_GROUPS_SHOWN:
        shown += (f"; … ({len(groups) - _MISSING_GROUPS_SHOWN} more; --format json lists "
                  "every frame)")
    return f"{len(missing)} of {max(intended, len(missing))}: {shown}"


def describe_replicas(replicas: list[dict[str, Any]]) -> str:
    """``local (verified 2026-12-01T10:00:00Z), s3 (complete since ...)``: show's stores line."""
    parts = []
    for replica in replicas:
        if not replica["recorded"]:
            state = "assumed: registered before imagingdb recorded copies"
        elif replica["verified_at"]:
            state = f"verified {replica['verified_at']}"
        else:
            state = f"complete since {replica['complete_at']}"
        parts.append(f"{replica['store']} ({state})")
    return ", ".join(parts)


def _print_stats(report: Any) -> None:
    records = [{"project": g.project, "microscope": g.microscope, "datasets": f"{g.datasets:,}",
                "frames": f"{g.frames:,}", "stored": human_size(g.stored_bytes)}
               for g in report.groups]
    total = report.total
    records.append({"project": "total", "microscope": "", "datasets": f"{total.datasets:,}",
                    "frames": f"{total.frames:,}", "stored": human_size(total.stored_bytes)})
    _print_table(records)
    if total.unsized:
        print(f"{total.unsized:,} of {total.datasets:,} dataset(s) have no recorded size "
              "(uploaded before imagingdb recorded sizes): not in the stored bytes",
              file=sys.stderr)


def _add_plugins_commands(app: typer.Typer) -> None:
    plugins_app = typer.Typer(name="plugins", add_completion=False, rich_markup_mode=None)

    @plugins_app.callback(invoke_without_command=True,
                          epilog="Example: imagingdb plugins --format json")
    def plugins_list(
        ctx: typer.Context,
        output: ListFormat = typer.Option(ListFormat.table, "--format",
                                          help="table (or text) or json."),
    ) -> None:
        """Every splitter, filename parser, storage backend and plugin command, with the
        plugin (package and version) that provides it; broken plugins and why.
        Plugins are installed into the plugins folder with `imagingdb plugins install`."""
        if ctx.invoked_subcommand is not None:
            return
        from . import plugins

        records = [
            {"kind": entry.kind, "name": entry.name, "plugin": entry.plugin}
            for kind in plugins.KINDS
            for entry in sorted(plugins.registry(kind).values(), key=lambda e: e.name)
        ]
        records += [{"kind": "command", "name": c.name, "plugin": c.plugin}
                    for c in plugins.commands]
        broken = [{"kind": "broken plugin", "name": b.name, "plugin": b.plugin, "error": b.error}
                  for b in plugins.broken_plugins]
        if output == ListFormat.json:
            _print_records(records + broken, OutputFormat.json)
            return
        _print_records(records, OutputFormat.table)
        for entry in broken:
            print(printable(f"broken plugin {entry['name']} ({entry['plugin']}): {entry['error']}"))

    @plugins_app.command(epilog="Example: imagingdb plugins install imagingdb-ndtiff")
    def install(
        requirements: List[str] = typer.Argument(..., metavar="PKG_OR_PATH",
                                                 help="Package names, wheels or source folders."),
        find_links: Optional[List[str]] = typer.Option(
            None, "--find-links", metavar="DIR", help="Look for packages in DIR too (repeat)."),
        index_url: Optional[str] = typer.Option(None, "--index-url", metavar="URL",
                                                help="Package index to use instead of PyPI."),
        no_index: bool = typer.Option(False, "--no-index",
                                      help="Use no package index: only --find-links (offline)."),
        no_build_isolation: bool = typer.Option(
            False, "--no-build-isolation", help="Build source folders with the build tools "
                                                "already installed (pip's option)."),
    ) -> None:
        """Install plugins, and what they need, into the plugins folder with pip.

        The folder is $IMAGINGDB_PLUGINS_DIR, else $IMAGINGDB_HOME/plugins. What
        imagingdb itself runs on (numpy...) is used, never installed again.
        """
        from .plugin_install import PipOptions
        from .plugin_install import install as install_plugins
        from .plugins import plugins_dir

        options = PipOptions(find_links or (), index_url, no_index, no_build_isolation)
        added = install_plugins(requirements, options)
        if not added:
            print("Nothing to install: already installed.", file=sys.stderr)
        for dist in added:
            role = "plugin" if dist.is_plugin else "needed by a plugin"
            print(f"Installed {dist.name} {dist.version} ({role})", file=sys.stderr)
        if added and not any(dist.is_plugin for dist in added):
            print("Warning: nothing installed declares an 'imagingdb' entry point, "
                  "so no plugin was added", file=sys.stderr)
        print(f"Plugins folder: {plugins_dir()}", file=sys.stderr)

    @plugins_app.command(epilog="Example: imagingdb plugins uninstall imagingdb-ndtiff "
                                "--with-unused-dependencies")
    def uninstall(
        names: List[str] = typer.Argument(..., metavar="NAME",
                                          help="Distribution names, as `imagingdb plugins` shows."),
        with_unused_dependencies: bool = typer.Option(
            False, "--with-unused-dependencies",
            help="Remove too the dependencies they brought that nothing else installed needs."),
    ) -> None:
        """Remove distributions from the plugins folder (the files their RECORD lists).

        Their dependencies stay unless --with-unused-dependencies: those nothing
        else needs are listed, with the command that removes them.
        """
        from .plugin_install import uninstall as uninstall_plugins

        report = uninstall_plugins(names, with_unused_dependencies)
        for dist in report.removed:
            print(f"Uninstalled {dist.name} {dist.version}", file=sys.stderr)
        unused = ", ".join(f"{dist.name} {dist.version}" for dist in report.unused)
        if report.unused_removed:
            for dist in report.unused:
                print(f"Uninstalled {dist.name} {dist.version} (a dependency nothing else "
                      "needs)", file=sys.stderr)
        elif report.unused:
            again = " ".join(dist.name for dist in report.unused)
            print(f"Left {unused} in the plugins folder: dependencies nothing else installed "
                  f"needs; remove them with: imagingdb plugins uninstall {again} (or use "
                  "--with-unused-dependencies)", file=sys.stderr)
        for dist, users in report.shared:
            print(f"Kept {dist.name} {dist.version}: needed by {', '.join(users)}",
                  file=sys.stderr)

    app.add_typer(plugins_app)


def _add_python_command(app: typer.Typer) -> None:
    @app.command(
        name="python", context_settings={"allow_extra_args": True,
                                         "ignore_unknown_options": True,
                                         "allow_interspersed_args": False},
        epilog="Examples:\n\n\b\n"
               "imagingdb python analysis.py --plot\n"
               "imagingdb python -c 'import imagingdb; print(imagingdb.connect().query())'\n"
               "imagingdb python -m json.tool frames.json\n"
               "imagingdb python                       (an interactive session)")
    def python(ctx: typer.Context) -> None:
        """Run Python with imagingdb and its packages importable (numpy, dask...): a script,
        -c CODE, -m MODULE, or an interactive session. The way to the Python API from the
        single-file executable."""
        from . import start_up
        from .pyrun import run

        start_up.done()
        code = run(ctx.args)
        if code:
            raise typer.Exit(code)


def _add_demo_command(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n\b\n"
                        "imagingdb demo                        (into ./imagingdb-demo)\n"
                        "imagingdb demo --dir /tmp/try-imagingdb")
    def demo(
        folder: Path = typer.Option(
            Path(DEMO_FOLDER), "--dir", metavar="DIR",
            help="The folder to write everything into: new, empty, or an earlier demo's "
                 "(emptied first)."),
    ) -> None:
        """Try imagingdb on a generated Micro-Manager acquisition: upload, query, download
        and read it, each step the command you would type. Everything goes into DIR, with
        its own database and storage; your imagingdb data is never touched."""
        from . import start_up
        from .demo import run_demo

        start_up.done()  # its work begins: writing the acquisition, then the commands
        run_demo(folder, _run_in_process)


#: `imagingdb demo`'s folder when given none, in the current folder
DEMO_FOLDER = "imagingdb-demo"


def _run_in_process(args: Any) -> int:
    """Run `imagingdb ARGS...` in this process, on a fresh app; its exit code."""
    command = typer.main.get_command(make_app(plugin_commands=False))
    try:
        command.main(args=list(args), prog_name="imagingdb")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


class ConfigSection(str, Enum):
    site = "site"
    upload = "upload"


def _make_config_app() -> typer.Typer:
    config_app = typer.Typer(
        name="config", no_args_is_help=True, rich_markup_mode=None,
        epilog="Example: imagingdb config example site > lab.yaml",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )

    @config_app.callback()
    def config() -> None:
        """The configuration files: an example of each, every key documented."""

    @config_app.command(epilog="Examples:\n\n\b\n"
                               "imagingdb config example site > lab.yaml   (then edit it)\n"
                               "imagingdb config example upload | less")
    def example(
        section: Optional[ConfigSection] = typer.Argument(
            None, metavar="[site|upload]", show_default=False,
            help="Only the site config or the upload config part."),
    ) -> None:
        """Print the example configuration (config.example.yaml): the site config (where a
        lab's database and storage are) and the upload config, every key with what it does."""
        from .config import example_config

        sys.stdout.write(example_config(section.value if section else None))

    return config_app


def _make_db_app() -> typer.Typer:
    db_app = typer.Typer(
        name="db", no_args_is_help=True, rich_markup_mode=None,
        help="The database schema: its version, upgrades, adopting an original imagingDB database.",
        epilog="Example: imagingdb db status",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )

    @db_app.command(epilog="Example: imagingdb db status --format json")
    def status(
        ctx: typer.Context,
        output: ReportFormat = typer.Option(ReportFormat.text, "--format", help="text or json."),
    ) -> None:
        """The database (URL masked), its schema version, and what `db upgrade` would do."""
        with _database(ctx) as db:
            info = db.schema_status()
            record = {
                "database": db.database_url,
                "storage": db.storage_location,
                "stores": db.stores,
                "primary": db.site.primary,
                "schema_version": info.version,
                "imagingdb_schema_version": info.target,
                "state": info.state,
                "datasets": info.datasets,
                "upgrade_steps": info.steps,
                "upgrade_adds": info.missing,
                "blocked": [str(p) for p in info.problems],
            }
        if output == ReportFormat.json:
            print(json.dumps(record, indent=2))
            return
        for key in ("database", "storage", "schema_version", "state", "datasets"):
            print(f"{key:<15} {printable(record[key])}")
        if len(record["stores"]) > 1:
            stores = ", ".join(f"{name}{' (primary)' if name == record['primary'] else ''}: "
                               f"{where}" for name, where in record["stores"].items())
            print(f"{'stores':<15} {printable(stores)}")
        for key in ("upgrade_steps", "upgrade_adds", "blocked"):
            for n, item in enumerate(record[key]):
                print(f"{key if n == 0 else '':<15} {printable(item)}")

    @db_app.command(epilog="Example: imagingdb --site-config lab.yaml db upgrade")
    def upgrade(ctx: typer.Context) -> None:
        """Bring the schema to this imagingdb's version, or adopt an original imagingDB database.

        Nothing is lost or changed in any row. What rows block (a dataset ID
        registered twice, a NULL where a value is needed) is reported, and
        added by running this again once those rows are put right.
        """
        with _database(ctx) as db:
            report = db.upgrade()
            _print_upgrade(report)
            print(f"schema version {report.after}: {db.describe()}", file=sys.stderr)

    return db_app


def _print_upgrade(report: Any) -> None:
    """What an upgrade did and what rows still block, on stderr."""
    if report.before is None:
        print(f"created the schema (version {report.after})", file=sys.stderr)
    elif report.steps:
        print(f"upgraded the schema from version {report.before} to {report.after}",
              file=sys.stderr)
    elif not report.added:
        print(f"the schema is up to date (version {report.after})", file=sys.stderr)
    for step in report.steps:
        print(f"  step {step}", file=sys.stderr)
    for added in report.added:
        print(f"  added {added}", file=sys.stderr)
    for problem in report.problems:
        print(f"Warning: {printable(problem)}", file=sys.stderr)
    if report.problems:
        print("Warning: imagingdb works meanwhile; put those rows right (see README, \"Adopting "
              "an imagingDB database\"), then run imagingdb db upgrade again", file=sys.stderr)


def _add_integrity_commands(app: typer.Typer) -> None:
    @app.command(epilog="Example: imagingdb verify ML-2005-05-23-10-00-00-0001")
    def verify(
        ctx: typer.Context,
        dataset_id: Optional[str] = typer.Argument(None, metavar="[ID]", help="The dataset ID."),
        all_datasets: bool = typer.Option(False, "--all", help="Verify every dataset."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Concurrent reads from storage."),
        storage: Optional[str] = typer.Option(
            None, "--storage", "--storage_access", metavar="STORE",
            help="Check the copy in this store (with --all: every dataset it holds)."),
        all_stores: bool = typer.Option(False, "--all-stores",
                                        help="Check every store's copy of each dataset."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: a report on stdout for scripts."),
    ) -> None:
        """Re-read a dataset from storage and check each object against its recorded sha256.

        Reports objects that are missing, corrupted (do not decode, or differ
        from their checksum) or extra (in the dataset's folder, named by no
        row); exits 1 if there is any. Objects other upload attempts left
        (an interrupted overwrite's) are noted, not counted as damage.
        """
        from .errors import WorkError
        from .progress import TerminalProgress

        if (dataset_id is None) == (not all_datasets):
            raise InputError("give one dataset ID or --all (see: imagingdb verify --help)")
        if storage and all_stores:
            raise InputError("give --storage STORE or --all-stores, not both")
        progress = TerminalProgress("Verifying", "Verified", summary=False)
        with _database(ctx) as db:
            run = db.verify(None if all_datasets else [dataset_id], workers=workers,
                            storage=storage, all_stores=all_stores, progress=progress)
            several = len(db.site.store_names) > 1
            for check in run:
                if output == ReportFormat.text:
                    progress.clear()
                    state = "ok" if check.ok else f"{len(check.problems)} problem(s)"
                    where = f" in {check.store}" if several else ""
                    print(printable(f"{check.dataset_id}{where}  {state}  "
                                    f"({check.objects_checked} object(s) checked)"))
                    for problem in check.problems:
                        print(f"  {printable(problem.describe())}")
                    for line in check.describe_leftovers():
                        print(f"  {printable(line)}")
                    sys.stdout.flush()  # before the bar is drawn again on the same terminal
        if output == ReportFormat.json:
            print(json.dumps({"ok": run.ok, "datasets": [c.to_json() for c in run.checks]},
                             indent=2))
        if not run.ok:
            raise WorkError(run.summary())
        print(run.summary(), file=sys.stderr)

    @app.command(epilog="Example: imagingdb gc --older-than 2h --yes")
    def gc(
        ctx: typer.Context,
        yes: bool = typer.Option(False, "--yes", help="Delete; without it, only list."),
        older_than: str = typer.Option(
            GC_GRACE, "--older-than", metavar="DURATION",
            help="Skip dataset folders written to more recently by an upload still running "
                 "(a killed upload's are judged at once); e.g. 30m, 2h, 7d, 0."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: a report on stdout for scripts."),
    ) -> None:
        """Find stored objects no dataset references (left by interrupted uploads).

        A dry run by default: it lists what it would delete; --yes deletes it.
        Objects of registered datasets are never touched, nor folders written
        to within --older-than by an upload still running (each upload holds a
        claim on its dataset ID while it runs; a killed one lost it, so its
        objects are found at once). What an interrupted delete or rename left
        is removed whatever its age.
        """
        from .progress import TerminalProgress

        progress = TerminalProgress("Checking", "Checked", summary=False)
        several = [False]

        def listed(obj) -> None:
            if output == ReportFormat.text:
                progress.clear()
                where = f"{obj.store}:" if several[0] else ""
                print(f"{printable(where + obj.key)}\t{obj.size}", flush=True)

        with _database(ctx) as db:
            several[0] = len(db.site.store_names) > 1
            report = db.gc(delete=yes, older_than=older_than, on_garbage=listed,
                           progress=progress)
        for name, reason in report.unreachable.items():
            print(f"Warning: store {name!r} was not looked into: {printable(reason)}",
                  file=sys.stderr)
        if output == ReportFormat.json:
            print(json.dumps(report.to_json(), indent=2))
        for removal in report.pending_removals:
            print(printable(removal.describe()), file=sys.stderr)
        for line in _gc_summary(report, yes, older_than):
            print(line, file=sys.stderr)


def _gc_summary(report: Any, deleted: bool, older_than: str) -> list[str]:
    """What gc found, in one line, and what it left alone and why, in one more."""
    garbage = report.garbage_folders()
    interrupted = report.interrupted_garbage()
    if report.garbage:
        found = (f"{len(report.garbage)} unreferenced object(s), {human_size(report.bytes)}, "
                 f"in {len(garbage)} folder(s)")
        if interrupted:
            left = (f"left by {len(report.interrupted)} interrupted upload(s) not running any "
                    "more")
            found += (f", {left}" if len(interrupted) == len(report.garbage) else
                      f" ({len(interrupted)}, {human_size(sum(o.size for o in interrupted))}, "
                      f"{left})")
        lines = [f"deleted {found}" if deleted else
                 f"{found}; nothing deleted (dry run): run imagingdb gc --yes to delete them"]
    else:
        lines = ["no unreferenced objects"]
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)} folder(s), {human_size(report.skipped_bytes)}, "
                     f"written to less than {older_than} ago by an upload (or a delete or "
                     "rename) still running: run gc again once it is over (--format json "
                     "lists them)")
    return lines


def _add_sync_command(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n\b\n"
                        "  imagingdb sync --to s3 --all          # the daily off-site copy (cron)\n"
                        "  imagingdb sync --to s3 --all --dry-run\n"
                        "  imagingdb sync --to s3 --id ML-2005-05-23-10-00-00-0001 --recheck\n"
                        "  imagingdb sync --to s3 --all --no-copy  # record what an external "
                        "sync copied")
    def sync(
        ctx: typer.Context,
        to: Optional[List[str]] = typer.Option(
            None, "--to", metavar="STORE", help="The store to copy into (repeatable; default: "
                                                "every store of the site config)."),
        dataset_ids: Optional[List[str]] = typer.Option(None, "--id", metavar="ID",
                                                        help="A dataset (repeatable)."),
        all_datasets: bool = typer.Option(False, "--all", help="Every dataset (or those the "
                                                               "filters match)."),
        project_id: Optional[str] = _FILTERS["project_id"],
        microscope: Optional[str] = _FILTERS["microscope"],
        start_date: Optional[str] = _FILTERS["start_date"],
        end_date: Optional[str] = _FILTERS["end_date"],
        description: Optional[str] = _FILTERS["description"],
        where: Optional[List[str]] = _FILTERS["where"],
        dry_run: bool = typer.Option(False, "--dry-run", help="Only count the objects and bytes "
                                                              "to copy."),
        no_copy: bool = typer.Option(False, "--no-copy", help="Copy nothing: check the copies "
                                     "already in the store and record those that are complete "
                                     "(a bucket an external sync filled)."),
        recheck: bool = typer.Option(False, "--recheck", help="Also re-check copies already "
                                     "recorded, rewriting damaged objects from another store."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Concurrent transfers."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: a report on stdout for scripts."),
    ) -> None:
        """Copy datasets into the stores that lack a complete copy, each object checked.

        For each dataset and target store without a recorded copy: objects the
        store already has are checked, the others copied from a store holding
        a copy (checked there first) and checked once written; the copy is
        recorded only when every object is there. Safe to interrupt and rerun;
        a second run copies nothing. Exit 0: every copy asked for is complete;
        1: some failed (the JSON report says which); 2: bad input.
        """
        from . import console
        from .progress import TerminalProgress

        filters = {"project_id": project_id, "microscope": microscope,
                   "start_date": start_date, "end_date": end_date, "description": description,
                   "where": where}
        filtered = any(value for value in filters.values())
        if bool(dataset_ids) == (all_datasets or filtered):
            raise InputError("give --id ID (repeatable), or --all and/or filters "
                             "(see: imagingdb sync --help)")
        if no_copy and (dry_run or recheck):
            raise InputError("--no-copy checks and records what is there; it takes neither "
                             "--dry-run nor --recheck")
        console.interrupted_note = ("interrupted: the copies recorded so far are complete; "
                                    "objects copied for the dataset being synced are kept and "
                                    "checked by the rerun: run the same command again to finish")
        with _database(ctx) as db:
            ids = list(dataset_ids or [])
            if filtered:
                ids = [d.dataset_id for d in db.query(**filters)]
            report = db.sync(ids if ids or filtered else None, to=to, dry_run=dry_run,
                             no_copy=no_copy, recheck=recheck, workers=workers,
                             progress=TerminalProgress("Syncing", "Synced"))
        if output == ReportFormat.json:
            print(json.dumps(report.to_json(), indent=2))
        print(printable(report.summary()), file=sys.stderr)
        if report.exit_code:
            raise typer.Exit(report.exit_code)


def _add_removal_commands(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n\b\n"
                        "  imagingdb delete ML-2005-05-23-10-00-00-0001            # a dry run\n"
                        "  imagingdb delete ML-2005-05-23-10-00-00-0001 --yes")
    def delete(
        ctx: typer.Context,
        dataset_ids: List[str] = typer.Argument(..., metavar="ID...", help="The dataset IDs."),
        yes: bool = typer.Option(False, "--yes", help="Delete; without it, only list."),
        with_children: bool = typer.Option(
            False, "--with-children", help="Delete the datasets naming these as parent too."),
        orphan_children: bool = typer.Option(
            False, "--orphan-children", help="Keep the datasets naming these as parent, "
                                             "without a parent."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: a report on stdout for scripts."),
    ) -> None:
        """Delete datasets: their rows and their stored objects, all or nothing.

        A dry run by default: it lists the rows, objects and bytes that would go;
        --yes deletes them. The rows of every ID go in one transaction (an unknown
        ID: nothing is deleted), the objects after it; an interrupted delete is
        finished by running it again, or by imagingdb gc --yes.
        """
        with _database(ctx) as db:
            report = db.delete(dataset_ids, with_children=with_children,
                               clear_parent_links=orphan_children, dry_run=not yes)
        if output == ReportFormat.json:
            print(json.dumps(report.to_json(), indent=2))
        else:
            for removal in report.datasets:
                print(printable(removal.describe(report.dry_run)))
            for child in report.orphaned:
                print(printable(f"{child}: {'would keep' if report.dry_run else 'kept'}, "
                                "without a parent"))
        for removal in report.removals:
            if removal.skipped:
                print(f"Warning: {printable(removal.describe())}", file=sys.stderr)
        print(report.summary(), file=sys.stderr)

    @app.command(epilog="Example: imagingdb rename ML-2005-05-23-10-00-00-0001 "
                        "ML-2005-05-23-10-00-00-0002")
    def rename(
        ctx: typer.Context,
        old: str = typer.Argument(..., metavar="OLD", help="The dataset's ID now."),
        new: str = typer.Argument(..., metavar="NEW", help="The ID it should have."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Concurrent copies."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: a report on stdout for scripts."),
    ) -> None:
        """Move a dataset to another ID (a mistaken one): objects copied and checked, rows
        switched in one transaction, the old objects removed last.

        Safe to interrupt: run it again and it finishes (before the switch the
        dataset is still OLD, after it NEW).
        """
        with _database(ctx) as db:
            report = db.rename(old, new, workers=workers)
        if output == ReportFormat.json:
            print(json.dumps(report.to_json(), indent=2))
        for removal in report.removals:
            if removal.skipped:
                print(f"Warning: {printable(removal.describe())}", file=sys.stderr)
        print(report.summary(), file=sys.stderr)


def _print_records(records: list[dict[str, Any]], output: OutputFormat) -> None:
    if output == OutputFormat.json:
        print(printable_json(json.dumps(records, indent=2, ensure_ascii=False)))
    elif output == OutputFormat.jsonl:
        for record in records:
            print(printable_json(json.dumps(record, ensure_ascii=False)))
    elif output == OutputFormat.csv:
        import csv
        import io

        if records:  # exact in a file or pipe; escaped on a terminal, as ls does names
            records = [{k: _plain(v) for k, v in r.items()} for r in records]
            if sys.stdout.isatty():
                records = [{k: _cell(v) for k, v in r.items()} for r in records]
            # "\r\n" ends a row only so that a carriage return in a value is quoted too (the
            # csv module quotes a field holding a character of the line terminator); rows
            # are printed ending in "\n"
            row = io.StringIO()
            writer = csv.DictWriter(row, fieldnames=list(records[0]), lineterminator="\r\n")
            for record in [dict(zip(records[0], records[0])), *records]:
                row.seek(0)
                row.truncate()
                writer.writerow(record)
                print(row.getvalue()[:-2])
    else:
        _print_table(records, cut_last=("date_time", "parent_dataset_id"))


#: the widest a table column gets when the output is no terminal (a pipe, a file)
_WIDEST_CELL = 60


def _print_table(records: list[dict[str, Any]], cut_last: tuple[str, ...] = ()) -> None:
    """Columns as wide as their values; on a terminal, cells cut (with an ellipsis) so that
    a row fits its width: the first column (the ID) never, those named in ``cut_last`` (a
    date, another ID: cut, they say little) only once free text is as narrow as it goes."""
    import shutil

    from .terminal import fitted_widths, shortened

    if not records:
        return
    columns = list(records[0])
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if sys.stdout.isatty():
        widths = fitted_widths(widths, shutil.get_terminal_size().columns,
                               cut_last=[i for i, c in enumerate(columns) if c in cut_last])
    else:
        widths = [w if i == 0 else min(w, _WIDEST_CELL) for i, w in enumerate(widths)]
    for row in [columns, ["-" * w for w in widths], *cells]:
        print("  ".join(shortened(v, w).ljust(w) for v, w in zip(row, widths)).rstrip())


def _cell(value: Any) -> str:
    """A table cell on one line: a newline, tab or escape sequence in data shows as \\n, \\t,
    \\x1b."""
    if value is None:
        return ""
    return printable(_plain(value))


def _plain(value: Any) -> Any:
    """A value as JSON writes it, for text output: true/false, not Python's True/False; lists
    and mappings as JSON; nothing for null. Text and numbers stay as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value
