"""PostgreSQL through pg8000 on a real server: every password source, the libpq
variables, the password kept out of every output, and failures that come in seconds."""

import json
import os
import socket
import subprocess
import time

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

import imagingdb
from imagingdb import db as dbq
from imagingdb.config import DatabaseSettings
from tests.conftest import DATASET_ID
from tests.helpers import imagingdb_command
from tests.servers import PG_PASSWORD_ENV, find_free_port


def site_config(tmp_path, url, **database):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": url, **database},
        "storage": {"backend": "local", "root": str(tmp_path / "storage")},
    }), encoding="utf-8")
    return path


def assert_schema_created(pg_server, url):
    """The schema really landed in that database (not in some other one)."""
    engine = sa.create_engine(url, connect_args={"password": pg_server.password})
    try:
        with engine.connect() as conn:
            assert dbq.current_version(conn) == dbq.SCHEMA_VERSION
    finally:
        engine.dispose()


def test_password_from_password_env(pg_server, pg_url, tmp_path, run_cli):
    config = site_config(tmp_path, pg_url, password_env=PG_PASSWORD_ENV)
    result = run_cli("--site-config", config, "init")
    assert result.exit_code == 0, result.stderr
    assert_schema_created(pg_server, pg_url)


def test_unset_password_env_is_an_input_error_naming_it(pg_url, tmp_path, run_cli):
    config = site_config(tmp_path, pg_url, password_env="IMAGINGDB_NOT_SET_HERE")
    result = run_cli("--site-config", config, "query")
    assert result.exit_code == 2
    assert result.errors == ["Error: environment variable IMAGINGDB_NOT_SET_HERE "
                             "(database.password_env) is not set; export it with the database "
                             "password"]


def test_password_from_pgpassword(pg_server, pg_url, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    assert run_cli("--site-config", site_config(tmp_path, pg_url), "init").exit_code == 0
    assert_schema_created(pg_server, pg_url)


def _pgpass_line(pg_server, database, password=None):
    return f"{pg_server.host}:{pg_server.port}:{database}:{pg_server.user}:" \
           f"{password or pg_server.password}\n"


@pytest.mark.parametrize("lines", [
    ["# comment\n", "otherhost:5432:*:*:nope\n", "{exact}"],
    ["*:*:*:{user}:{password}\n"],
])
def test_password_from_pgpassfile(pg_server, pg_url, tmp_path, run_cli, monkeypatch, lines):
    database = make_url(pg_url).database
    exact = _pgpass_line(pg_server, database)
    passfile = tmp_path / "pgpass"
    passfile.write_text("".join(line.format(exact=exact, user=pg_server.user,
                                            password=pg_server.password) for line in lines))
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    result = run_cli("--site-config", site_config(tmp_path, pg_url), "init")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("Warning") == 0


def test_password_from_pgpass_in_the_home_folder(pg_server, pg_url, tmp_path, run_cli,
                                                 monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pgpass").write_text(_pgpass_line(pg_server, make_url(pg_url).database))
    (home / ".pgpass").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    assert run_cli("--site-config", site_config(tmp_path, pg_url), "init").exit_code == 0


def test_pgpass_readable_by_others_is_ignored_like_libpq_does(pg_server, pg_url, tmp_path,
                                                               run_cli, monkeypatch):
    passfile = tmp_path / "pgpass"
    passfile.write_text(_pgpass_line(pg_server, make_url(pg_url).database))
    passfile.chmod(0o644)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    result = run_cli("--site-config", site_config(tmp_path, pg_url), "init")
    assert result.exit_code == 1
    assert f"Warning: password file {passfile} is ignored" in result.stderr
    assert "chmod 600" in result.stderr
    assert result.errors == [f"Error: cannot connect to database {pg_url}: the server asks for a "
                             "password and none was found: set database.password_env, PGPASSWORD "
                             "or ~/.pgpass"]
    assert pg_server.password not in result.stderr


def test_pgpass_line_of_another_database_does_not_match(pg_server, pg_url, tmp_path, run_cli,
                                                        monkeypatch):
    passfile = tmp_path / "pgpass"
    passfile.write_text(_pgpass_line(pg_server, "some_other_db"))
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    result = run_cli("--site-config", site_config(tmp_path, pg_url), "query")
    assert result.exit_code == 1 and "cannot connect to database" in result.errors[0]


def test_libpq_variables_fill_what_the_url_leaves_out(pg_server, pg_url, tmp_path, run_cli,
                                                      monkeypatch):
    database = make_url(pg_url).database
    for name, value in {"PGHOST": pg_server.host, "PGPORT": str(pg_server.port),
                        "PGUSER": pg_server.user, "PGDATABASE": database,
                        "PGPASSWORD": pg_server.password}.items():
        monkeypatch.setenv(name, value)
    result = run_cli("--site-config", site_config(tmp_path, "postgresql+pg8000://"), "init")
    assert result.exit_code == 0, result.stderr
    assert_schema_created(pg_server, pg_url)


def test_url_parts_win_over_libpq_variables(pg_server, pg_url, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("PGHOST", "no-such-host.invalid")
    monkeypatch.setenv("PGDATABASE", "no_such_database")
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    assert run_cli("--site-config", site_config(tmp_path, pg_url), "init").exit_code == 0
    assert_schema_created(pg_server, pg_url)


def test_pghost_may_be_a_unix_socket_folder(pg_server, pg_url, tmp_path, run_cli, monkeypatch):
    # The test cluster trusts local socket logins, so no password is involved here.
    monkeypatch.setenv("PGHOST", str(pg_server.socket_dir))
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    url = f"postgresql+pg8000://{pg_server.user}@/{make_url(pg_url).database}"
    result = run_cli("--site-config", site_config(tmp_path, url), "init")
    assert result.exit_code == 0, result.stderr
    assert_schema_created(pg_server, pg_url)


def test_bad_pgport_is_an_input_error(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("PGPORT", "fifty")
    result = run_cli("--site-config", site_config(tmp_path, "postgresql+pg8000://u@h/db"), "query")
    assert result.exit_code == 2 and result.errors == [
        "Error: PGPORT must be a port number, got 'fifty'"]


@pytest.fixture
def login_file(pg_server, pg_url, tmp_path):
    """The original imagingDB's db_credentials.json for the test database."""
    path = tmp_path / "db_credentials.json"
    path.write_text(json.dumps({
        "drivername": "postgres", "username": pg_server.user, "password": pg_server.password,
        "host": pg_server.host, "port": pg_server.port, "dbname": make_url(pg_url).database,
    }))
    path.chmod(0o600)
    return path


def test_login_json_of_the_original_works_for_cli_and_api(pg_server, pg_url, login_file,
                                                          run_cli, monkeypatch):
    monkeypatch.delenv(PG_PASSWORD_ENV)
    result = run_cli("--login", login_file, "init")
    assert result.exit_code == 0, result.stderr
    assert pg_server.password not in result.stderr
    assert make_url(pg_url).database in result.stderr  # the URL is shown, masked
    with imagingdb.connect(login=login_file) as db:
        assert db.query() == []
        assert pg_server.password not in db.describe()


def test_password_in_an_api_url_is_masked(pg_server, pg_url):
    url = make_url(pg_url).set(password=pg_server.password).render_as_string(hide_password=False)
    with imagingdb.connect(database_url=url) as db:
        assert db.query() == []
        assert pg_server.password not in db.describe() and ":***@" in db.describe()


# -------------------------------------------------------------- failures, fast


def test_closed_port_is_an_error_within_seconds(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("SOME_PASSWORD", "irrelevant")
    port = find_free_port()
    config = site_config(tmp_path, f"postgresql+pg8000://u@127.0.0.1:{port}/imaging",
                         password_env="SOME_PASSWORD")
    started = time.monotonic()
    result = run_cli("--site-config", config, "query")
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert result.errors == [f"Error: cannot connect to database "
                             f"postgresql+pg8000://u@127.0.0.1:{port}/imaging: Connection refused"]


def test_wrong_password_is_an_error_within_seconds(pg_url, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("WRONG_PASSWORD", "Wrong-Secret-4711")
    config = site_config(tmp_path, pg_url, password_env="WRONG_PASSWORD")
    started = time.monotonic()
    result = run_cli("--site-config", config, "query")
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"Error: cannot connect to database {pg_url}: "
                                       "password authentication failed for user")
    assert "Wrong-Secret-4711" not in result.stderr + result.stdout


def test_server_that_never_answers_is_an_error_after_connect_timeout(tmp_path, run_cli,
                                                                     monkeypatch):
    monkeypatch.setenv("SOME_PASSWORD", "irrelevant")
    with socket.socket() as silent:  # the kernel accepts connections; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        config = site_config(tmp_path, f"postgresql+pg8000://u@127.0.0.1:{port}/imaging",
                             password_env="SOME_PASSWORD", connect_timeout=1)
        started = time.monotonic()
        result = run_cli("--site-config", config, "query")
        elapsed = time.monotonic() - started
    assert 1 <= elapsed < 5
    assert result.exit_code == 1
    assert result.errors == [f"Error: cannot connect to database postgresql+pg8000://u@127.0.0.1:"
                             f"{port}/imaging: no answer within 1 s (database.connect_timeout "
                             "in the site config)"]


def test_statements_may_run_longer_than_the_connect_timeout(pg_url):
    settings = DatabaseSettings(url=pg_url, password_env=PG_PASSWORD_ENV, connect_timeout=1)
    engine = dbq.create_engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_sleep(1.5)"))
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
            # a vanished server is noticed by keepalive probes instead
            sock = conn.connection.dbapi_connection._usock
            assert sock.gettimeout() is None
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            if hasattr(socket, "TCP_KEEPIDLE"):
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    finally:
        engine.dispose()


# ------------------------------------------------- the password never shows


def _run(args, env, cwd):
    result = subprocess.run([*imagingdb_command(), *map(str, args)], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_debug_output_never_contains_the_password(pg_server, pg_url, login_file, tmp_path,
                                                  mm_ometiff, upload_files):
    csv_path = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    config = site_config(tmp_path, pg_url, password_env=PG_PASSWORD_ENV)
    env = {**os.environ, "IMAGINGDB_CONFIG": str(config)}
    runs = [
        ["--debug", "init"],
        ["--debug", "upload", "--csv", csv_path, "--config", upload_files.frames_config()],
        ["--debug", "query", "--format", "json"],
        ["--debug", "show", DATASET_ID],
        ["--debug", "download", "--id", DATASET_ID, "--dest", tmp_path / "down", "-c", "DAPI"],
        ["--debug", "--login", login_file, "query"],
    ]
    for args in runs:
        code, output = _run(args, env, tmp_path)
        assert code == 0, output
        assert "DEBUG imagingdb.db.postgres: database: postgresql+pg8000://" in output, args
        assert pg_server.password not in output, args
    refused_env = {**env, PG_PASSWORD_ENV: "Wrong-Secret-4711"}
    code, output = _run(["--debug", "query"], refused_env, tmp_path)
    assert code == 1 and "Traceback" in output and "password authentication failed" in output
    assert "Wrong-Secret-4711" not in output


# -------------------------------------------------------------- TLS (libpq's sslmode)


@pytest.fixture(scope="module")
def tls_pg_server():
    from tests.servers import PostgresServer

    with PostgresServer(tls=True) as server:
        yield server


def _api_url(server, database="postgres", **query):
    url = make_url(server.url(database)).set(password=server.password)
    return url.update_query_dict(query).render_as_string(hide_password=False)


def _uses_tls(url) -> bool:
    with imagingdb.connect(database_url=url) as db:
        with db.site.engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar_one()


def test_prefer_falls_back_to_plain_without_parsing_the_certificate_bundle(pg_server,
                                                                            monkeypatch):
    """The default asks for TLS, as libpq does; a server without it gets a plain
    connection, and no verifying context (the whole system bundle, ~0.1 s) is built."""
    import ssl

    def parse_bundle(*args, **kwargs):
        raise AssertionError("the system certificate bundle was parsed")

    monkeypatch.setattr(ssl, "create_default_context", parse_bundle)
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert _uses_tls(_api_url(pg_server)) is False


def test_prefer_on_a_server_without_tls_goes_on_in_one_connection(pg_server, monkeypatch):
    """As libpq: the TLS request refused, the same connection goes on in plain (pg8000,
    given a context, drops it, and a second connection costs the server a second
    process)."""
    opened = []
    real = socket.create_connection

    def create_connection(address, *args, **kwargs):
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert _uses_tls(_api_url(pg_server)) is False
    assert len(opened) == 1


def test_a_server_that_is_not_postgresql_is_an_error_saying_so(tmp_path, run_cli, monkeypatch):
    """Something else on the port (here a web server) answers the TLS request with neither
    yes nor no: one Error: line asking whether it is PostgreSQL, within seconds."""
    import threading

    monkeypatch.setenv("SOME_PASSWORD", "irrelevant")
    with socket.socket() as web:
        web.bind(("127.0.0.1", 0))
        web.listen()
        port = web.getsockname()[1]

        def answer():
            conn, _ = web.accept()
            with conn:
                conn.recv(8)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        config = site_config(tmp_path, f"postgresql+pg8000://u@127.0.0.1:{port}/imaging",
                             password_env="SOME_PASSWORD", connect_timeout=3)
        started = time.monotonic()
        result = run_cli("--site-config", config, "query")
        assert time.monotonic() - started < 5
        thread.join(5)
    assert result.exit_code == 1
    assert result.errors == [f"Error: cannot connect to database postgresql+pg8000://u@127.0.0.1:"
                             f"{port}/imaging: the server at 127.0.0.1:{port} answered b'H' to a "
                             "TLS request: is it a PostgreSQL server?"]


def test_require_on_a_server_without_tls_is_an_error_saying_so(pg_url, tmp_path, run_cli):
    config = site_config(tmp_path, pg_url + "?sslmode=require", password_env=PG_PASSWORD_ENV)
    result = run_cli("--site-config", config, "query")
    assert result.exit_code == 1
    assert result.errors == [f"Error: cannot connect to database {pg_url}?sslmode=require: "
                             "the server offers "
                             "no TLS and sslmode is require: enable ssl on the server, or use "
                             "sslmode=prefer"]


@pytest.mark.parametrize("where", ["url", "PGSSLMODE"])
def test_unknown_sslmode_is_an_input_error(pg_url, tmp_path, run_cli, monkeypatch, where):
    if where == "url":
        url = pg_url + "?sslmode=verify"
    else:
        url = pg_url
        monkeypatch.setenv("PGSSLMODE", "verify")
    result = run_cli("--site-config", site_config(tmp_path, url, password_env=PG_PASSWORD_ENV),
                     "query")
    assert result.exit_code == 2
    assert result.errors == ["Error: sslmode must be one of disable, allow, prefer, require, "
                             "verify-ca, verify-full, got 'verify' (in database.url's "
                             "?sslmode= or PGSSLMODE)"]


@pytest.mark.parametrize("mode, tls", [("disable", False), ("prefer", True), ("require", True)])
def test_sslmode_decides_whether_the_connection_uses_tls(tls_pg_server, mode, tls):
    assert _uses_tls(_api_url(tls_pg_server, sslmode=mode)) is tls


def test_pgsslmode_is_read_when_the_url_has_none(tls_pg_server, monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "disable")
    assert _uses_tls(_api_url(tls_pg_server)) is False


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verify_modes_accept_the_certificate_of_the_given_authority(tls_pg_server, mode):
    url = _api_url(tls_pg_server, sslmode=mode, sslrootcert=str(tls_pg_server.ca_file))
    assert _uses_tls(url) is True


def test_verify_full_refuses_a_certificate_of_an_unknown_authority(tls_pg_server, tmp_path,
                                                                   run_cli, monkeypatch):
    monkeypatch.setenv(PG_PASSWORD_ENV, tls_pg_server.password)
    url = tls_pg_server.url("postgres") + "?sslmode=verify-full"
    result = run_cli("--site-config", site_config(tmp_path, url, password_env=PG_PASSWORD_ENV),
                     "query")
    assert result.exit_code == 1
    assert len(result.errors) == 1
    assert "certificate verify failed" in result.errors[0], result.errors


def test_missing_sslrootcert_is_an_input_error_naming_it(pg_url, tmp_path, run_cli):
    missing = tmp_path / "no-ca.crt"
    url = f"{pg_url}?sslmode=verify-ca&sslrootcert={missing}"
    result = run_cli("--site-config", site_config(tmp_path, url, password_env=PG_PASSWORD_ENV),
                     "query")
    assert result.exit_code == 2
    assert result.errors == [f"Error: sslrootcert {missing}: No such file or directory: give "
                             "the file of the certificate authority that signed the server's "
                             "certificate"]
