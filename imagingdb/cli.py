"""The command layer: parse, call the Python API, print. Nothing else lives here.

Heavy modules (numpy, tifffile, SQLAlchemy, boto3) are imported inside the
commands, never at module level, so ``imagingdb --help`` starts instantly.
"""

from __future__ import annotations

import json
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperGroup

from . import PLUGIN_API_VERSION, __version__
from .errors import ImagingDBError, InputError

EXAMPLES = """
\b
Examples:
  imagingdb upload --csv files_for_upload.csv --config upload.yaml
  imagingdb query --project-id ML --start-date 2005-05-01 --format json | jq '.[].dataset_id'
  imagingdb download --id ML-2005-05-23-10-00-00-0001 --dest ./data -c DAPI -t 0

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


class ImagingDBGroup(TyperGroup):
    """Turns every error into one ``Error:`` line and the exit codes of SPEC section 4."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug = _global_flag(args, "--debug")
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            _error("interrupted", debug)
            sys.exit(130)
        except ImagingDBError as exc:
            _error(str(exc), debug)
            sys.exit(exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - never a traceback unless --debug
            if _is_click_error(exc):
                code = _click_error(exc, debug)
            else:
                _error(f"unexpected {type(exc).__name__}: {exc}; run again with --debug "
                       "for details", debug)
                code = 1
            sys.exit(code)
        sys.exit(result if isinstance(result, int) else 0)


def _is_click_error(exc: Exception) -> bool:
    # Typer may vendor its own copy of click, so recognise its exceptions by shape.
    return hasattr(exc, "format_message") and hasattr(exc, "exit_code")


def _click_error(exc: Exception, debug: bool) -> int:
    """Print a click usage/parameter error as one line; returns the exit code."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
        return 0
    message = exc.format_message()
    if ctx is not None and exc.exit_code == 2:
        command = " ".join(ctx.command_path.split()[1:])
        message += f" (see: imagingdb {command + ' ' if command else ''}--help)"
    _error(message, debug)
    return exc.exit_code


def _global_flag(args: list[str], flag: str) -> bool:
    for arg in args:
        if arg == flag:
            return True
        if not arg.startswith("-"):
            return False  # the command name: global options end here
    return False


def _error(message: str, debug: bool) -> None:
    if debug:
        import traceback

        exc = sys.exc_info()[1]
        if exc is not None:
            traceback.print_exc(file=sys.stderr)
    first_line = " ".join(str(message).split())
    print(f"Error: {first_line}", file=sys.stderr)


# --------------------------------------------------------------------- the app


def _version(value: bool) -> None:
    if value:
        print(f"imagingdb {__version__} (plugin API {PLUGIN_API_VERSION})")
        raise typer.Exit()


def _state(ctx: typer.Context) -> dict[str, Any]:
    return ctx.find_root().obj or {}


def _database(ctx: typer.Context):
    from .api import connect

    state = _state(ctx)
    return connect(state.get("site_config"), login=state.get("login"))


def _split_list(values: Optional[List[str]], what: str, integers: bool) -> Optional[list]:
    """Repeated flags and comma lists alike: -c DAPI -c GFP, -c DAPI,GFP, -z 0-4."""
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
            return list(range(low_i, high_i + 1))
        return [int(part)]
    except ValueError:
        if not strict:
            return [part]
        raise InputError(f"invalid {what} {part!r}: expected an index, a list (0,2) or a "
                         "range (0-4)") from None


def make_app(argv: Optional[list[str]] = None) -> typer.Typer:
    """A fresh CLI app (tests and plugins get their own); plugins add commands to it.

    When ``argv`` names a built-in command, plugins are not loaded: none of
    their commands can be the one that runs, and scanning the installed
    packages' entry points costs start-up time every user feels.
    """
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
    if argv is not None and _command_word(argv) in _builtin_command_names(app):
        return app
    from . import plugins

    plugins.register_commands(app)
    return app


_GLOBAL_OPTIONS_WITH_VALUE = ("--site-config", "--login")


def _command_word(args: list[str]) -> Optional[str]:
    """The command named in ``args`` after the global options, if any."""
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            args = args[1:]
        elif not arg.startswith("-"):
            return arg
    return None


def _builtin_command_names(app: typer.Typer) -> set[str]:
    names = {info.name or info.callback.__name__.replace("_", "-") for info in app.registered_commands}
    return names | {info.name for info in app.registered_groups if info.name}


def _add_data_commands(app: typer.Typer) -> None:
    @app.command(epilog="Example: imagingdb init")
    def init(ctx: typer.Context) -> None:
        """Create or upgrade the database schema and the storage (safe to run again)."""
        with _database(ctx) as db:
            version = db.init()
            print(f"imagingdb is ready: schema version {version}, {db.describe()}",
                  file=sys.stderr)

    @app.command(epilog="Example: imagingdb upload --csv files_for_upload.csv --config upload.yaml")
    def upload(
        ctx: typer.Context,
        csv_file: Path = typer.Option(..., "--csv", metavar="FILE",
                                      help="CSV: dataset_id, file_name, description, "
                                           "parent_dataset_id, positions (one dataset a row)."),
        config: Path = typer.Option(..., "--config", metavar="YAML",
                                    help="Upload config: upload_type, frames_format, microscope..."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Threads encoding and storing frames."),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="Replace datasets that already exist."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="json: a report on stdout for scripts."),
    ) -> None:
        """Upload datasets listed in a CSV: files kept whole, or split into PNG frames.

        Rows are independent: a bad row fails alone with an Error: line, the
        others are uploaded, and the exit code says that some failed. An
        interrupted upload can simply be run again.
        """
        from .progress import TerminalProgress
        from .upload import upload_csv

        def report(result) -> None:
            if not result.ok:  # a success was already summed up by the progress line
                print(f"Error: {result.error}", file=sys.stderr)

        with _database(ctx) as db:
            outcome = upload_csv(db, csv_file, config, overwrite=overwrite, workers=workers,
                                 progress=TerminalProgress("Uploading", "Uploaded"), on_result=report)
        ok = len(outcome.results) - len(outcome.failed)
        print(f"{ok} of {len(outcome.results)} dataset(s) uploaded", file=sys.stderr)
        if output == ReportFormat.json:
            print(json.dumps([r.to_json() for r in outcome.results], indent=2))
        if outcome.exit_code:
            raise typer.Exit(outcome.exit_code)

    @app.command(epilog="Example: imagingdb download --id ML-2005-05-23-10-00-00-0001 "
                        "--dest ./data -c DAPI -z 0-9 -t 0")
    def download(
        ctx: typer.Context,
        dataset_id: str = typer.Option(..., "--id", metavar="ID", help="The dataset ID."),
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
    ) -> None:
        """Download a dataset, or only some channels/slices/times/positions, to DIR/<ID>/."""
        from .progress import TerminalProgress

        with _database(ctx) as db:
            ds = db.dataset(dataset_id)
            target = ds.download(
                dest,
                channels=_split_list(channels, "channel", integers=False),
                slices=_split_list(slices, "slice index", integers=True),
                times=_split_list(times, "time index", integers=True),
                positions=_split_list(positions, "position index", integers=True),
                metadata=metadata, download=download, workers=workers,
                progress=TerminalProgress("Downloading", "Downloaded") if download and ds.is_frames else None,
            )
        print(target)


def _add_info_commands(app: typer.Typer) -> None:
    @app.command(epilog="Example: imagingdb query --microscope scope2 --format json | jq .")
    def query(
        ctx: typer.Context,
        project_id: Optional[str] = typer.Option(None, "--project-id",
                                                 help="Project part of the ID, e.g. ML."),
        microscope: Optional[str] = typer.Option(None, "--microscope",
                                                 help="Substring of the microscope name."),
        start_date: Optional[str] = typer.Option(None, "--start-date", metavar="YYYY-MM-DD",
                                                 help="Acquired on or after this day."),
        end_date: Optional[str] = typer.Option(None, "--end-date", metavar="YYYY-MM-DD",
                                               help="Acquired on or before this day."),
        description: Optional[str] = typer.Option(None, "--description",
                                                  help="Substring of the description."),
        output: Optional[OutputFormat] = typer.Option(
            None, "--format", help="table (default on a terminal), json (default in a pipe), "
                                   "jsonl or csv."),
    ) -> None:
        """Find datasets; --format json prints a JSON array fit for jq."""
        with _database(ctx) as db:
            found = db.query(project_id=project_id, microscope=microscope,
                             start_date=start_date, end_date=end_date, description=description)
        if output is None:
            output = OutputFormat.table if sys.stdout.isatty() else OutputFormat.json
        _print_records([d.to_json() for d in found], output)
        if output == OutputFormat.table:
            print(f"{len(found)} dataset(s)", file=sys.stderr)

    @app.command(epilog="Example: imagingdb show ML-2005-05-23-10-00-00-0001")
    def show(
        ctx: typer.Context,
        dataset_id: str = typer.Argument(..., metavar="ID", help="The dataset ID."),
        output: ReportFormat = typer.Option(ReportFormat.text, "--format"),
    ) -> None:
        """One dataset's global metadata and frame summary."""
        with _database(ctx) as db:
            summary = db.dataset(dataset_id).summary()
        if output == ReportFormat.json:
            print(json.dumps(summary, indent=2, sort_keys=True, default=str))
            return
        meta = summary.pop("global_meta")
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {value}")
        print(f"{'global_meta':<{width}}  {json.dumps(meta, sort_keys=True, default=str)[:2000]}")

    @app.command(name="plugins", epilog="Example: imagingdb plugins --format json")
    def plugins_command(
        output: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                            help="text (a table) or json."),
    ) -> None:
        """Every splitter, filename parser, storage backend and plugin, with its source."""
        from . import plugins

        records = [
            {"kind": entry.kind, "name": entry.name, "plugin": entry.plugin}
            for kind in plugins.KINDS
            for entry in sorted(plugins.registry(kind).values(), key=lambda e: e.name)
        ]
        records += [{"kind": "broken plugin", "name": b.name, "plugin": b.error}
                    for b in plugins.broken_plugins]
        _print_records(records, OutputFormat.json if output == ReportFormat.json
                       else OutputFormat.table)


def _print_records(records: list[dict[str, Any]], output: OutputFormat) -> None:
    if output == OutputFormat.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
    elif output == OutputFormat.jsonl:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
    elif output == OutputFormat.csv:
        import csv

        if records:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
    else:
        _print_table(records)


def _print_table(records: list[dict[str, Any]]) -> None:
    if not records:
        return
    columns = list(records[0])
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [min(60, max(len(c), *(len(row[i]) for row in cells))) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v[:w].ljust(w) for v, w in zip(row, widths)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())


def main(argv: Optional[list[str]] = None) -> None:
    """The ``imagingdb`` console script."""
    app = make_app(list(sys.argv[1:] if argv is None else argv))
    command = typer.main.get_command(app)
    command.main(args=argv, prog_name="imagingdb")


if __name__ == "__main__":
    main()
