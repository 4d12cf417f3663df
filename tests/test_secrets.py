"""Secrets stay secret: no password or AWS key in stdout, stderr, --debug logs or written files.

A real PostgreSQL role with a recognisable password serves a site whose
config names the password's environment variable; a recognisable AWS secret
sits in the environment. Every command runs as a real process with --debug
(tracebacks and library logs on stderr), succeeding and failing, including
with a wrong password.
"""

import json
import os
import subprocess
import sys
import uuid
from contextlib import closing
from urllib.parse import quote

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import DATASET_ID

PASSWORD = "Pw-Zebra-5528-secret"
WRONG_PASSWORD = "Pw-Okapi-7710-wrong"
AWS_SECRET = "AwsSecret-Kangaroo-9931"
AWS_TOKEN = "AwsToken-Wombat-4417"
SECRETS = (PASSWORD, WRONG_PASSWORD, AWS_SECRET, AWS_TOKEN)
PASSWORD_ENV = "IMAGINGDB_SECRET_TEST_PW"


@pytest.fixture
def secret_site(pg_server, tmp_path, monkeypatch, upload_files, mm_ometiff):
    """A site on PostgreSQL as a role with PASSWORD; AWS secrets in the environment."""
    from pg8000.native import identifier

    role = f"lab_{uuid.uuid4().hex[:10]}"
    name = f"secrets_{uuid.uuid4().hex[:10]}"
    pg_server.create_role(role, PASSWORD)
    superuser_url = pg_server.create_database(name)
    with closing(pg_server.connect()) as admin:
        admin.run(f"ALTER DATABASE {identifier(name)} OWNER TO {identifier(role)}")
    url = sa.make_url(superuser_url).set(username=role).render_as_string(hide_password=False)
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": url, "password_env": PASSWORD_ENV},
        "storage": {"backend": "local", "root": str(tmp_path / "storage")}}))
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(config))
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTSECRETS0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_TOKEN)
    yield {"role": role, "database": name, "url": url}
    pg_server.drop_database(name)
    pg_server.drop_role(role)


def imagingdb(*args, env=None, stderr_only=False):
    """Run the command as a real process; returns (exit code, stdout + stderr)."""
    done = subprocess.run([sys.executable, "-m", "imagingdb", *map(str, args)],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stderr if stderr_only else done.stdout + done.stderr


def assert_no_secret(output):
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} leaked:\n{output}"


def assert_no_secret_in_files(folder, skip=()):
    for path in folder.rglob("*"):
        if path.is_file() and path not in skip:
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"{secret!r} written to {path}"


@pytest.fixture
def commands(secret_site, upload_files, mm_ometiff, tmp_path):
    """Every command, the ones expected to succeed and to fail, with their exit codes."""
    good_csv = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": str(mm_ometiff)}])
    bad_csv = upload_files.csv([{"dataset_id": "ML-2005-05-23-10-00-00-0002",
                                 "file_name": str(tmp_path / "missing.ome.tif")}])
    config = upload_files.frames_config()
    return [
        (["init"], 0),
        (["upload", "--csv", good_csv, "--config", config], 0),
        (["upload", "--csv", bad_csv, "--config", config], 2),
        (["upload", "--csv", good_csv, "--config", config], 0),  # already there: skipped
        (["upload", "--csv", good_csv, "--config", upload_files.file_config()], 2),  # other kind
        (["query", "--format", "json"], 0),
        (["show", DATASET_ID], 0),
        (["show", "ML-1999-01-01-00-00-00-0001"], 2),
        (["download", "--id", DATASET_ID, "--dest", tmp_path / "dl"], 0),
        (["download", "--id", DATASET_ID, "--dest", tmp_path / "dl2", "-c", "Cy5"], 2),
        (["plugins"], 0),
        (["verify", DATASET_ID], 0),
        (["verify", "--all", "--format", "json"], 0),
        (["gc", "--older-than", "0"], 0),
        (["gc", "--older-than", "soon"], 2),
        (["edit", DATASET_ID, "--annotate", "strain=WT"], 0),
        (["query", "--where", "strain=WT", "--format", "json"], 0),
        (["query", "--where", "strain"], 2),
        (["stats", "--format", "json"], 0),
        (["delete", DATASET_ID], 0),  # a dry run
        (["delete", "ML-1999-01-01-00-00-00-0001", "--yes"], 2),
        (["rename", DATASET_ID, "ML-2005-05-23-10-00-00-0003"], 0),
        (["delete", "ML-2005-05-23-10-00-00-0003", "--yes"], 0),
    ]


# Runs commands one after another in one process (one interpreter start-up for all),
# marking where each ends and with which exit code on both streams.
DRIVER = """
import json, sys
from imagingdb.entry import main
for args in json.loads(sys.argv[1]):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        print(f"@@exit {code}", file=stream, flush=True)
"""


def run_in_one_process(commands):
    """[(exit code, stdout, stderr)] of each command, run with --debug in one real process."""
    argv = [["--debug", *map(str, args)] for args, _expected in commands]
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argv)], env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    outs = done.stdout.split("@@exit ")
    errs = done.stderr.split("@@exit ")
    assert len(outs) == len(commands) + 1, done.stdout + done.stderr
    results = []
    for number in range(len(commands)):
        code = int(outs[number + 1].split("\n", 1)[0])
        out = outs[number].split("\n", 1)[1] if number else outs[0]
        err = errs[number].split("\n", 1)[1] if number else errs[0]
        results.append((code, out, err))
    return results, done.stdout + done.stderr


def test_no_command_prints_or_writes_a_secret(commands, run_cli, tmp_path):
    results, everything = run_in_one_process(commands)
    assert_no_secret(everything)
    for (args, expected), (code, _out, err) in zip(commands, results):
        assert code == expected, (args, err)
    assert "Traceback" in everything  # --debug really showed tracebacks...
    assert "DEBUG imagingdb.db.postgres: database: postgresql+pg8000://lab_" in everything  # ...and logs
    for args, expected in commands:
        if expected:  # without --debug: the one Error: line
            result = run_cli(*args)
            assert result.exit_code == expected and len(result.errors) == 1, result.stderr
            assert_no_secret(result.stdout + result.stderr)
    assert_no_secret_in_files(tmp_path)


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_wrong_password_is_refused_without_showing_either_password(secret_site, debug):
    code, output = imagingdb(*debug, "query", env={PASSWORD_ENV: WRONG_PASSWORD})
    assert code == 1
    assert f"Error: cannot connect to database {secret_site['url']}:" in output
    assert "password authentication failed" in output
    assert_no_secret(output)


def test_a_missing_password_variable_names_the_variable(secret_site):
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    done = subprocess.run([sys.executable, "-m", "imagingdb", "--debug", "query"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"environment variable {PASSWORD_ENV} (database.password_env) is not set" in done.stderr
    assert_no_secret(done.stdout + done.stderr)


def login_file(path, secret_site, password, mode):
    url = sa.make_url(secret_site["url"])
    path.write_text(json.dumps({
        "drivername": "postgres", "username": secret_site["role"], "password": password,
        "host": url.host, "port": url.port, "dbname": secret_site["database"]}))
    path.chmod(mode)
    return path


def test_login_file_works_and_its_password_is_never_shown(secret_site, tmp_path):
    login = login_file(tmp_path / "db_credentials.json", secret_site, PASSWORD, 0o600)
    code, output = imagingdb("--debug", "--login", login, "init")
    assert code == 0, output
    assert "Warning" not in output
    assert_no_secret(output)


def test_login_file_with_a_wrong_password(secret_site, tmp_path):
    login = login_file(tmp_path / "db_credentials.json", secret_site, WRONG_PASSWORD, 0o600)
    code, output = imagingdb("--debug", "--login", login, "query")
    assert code == 1 and "password authentication failed" in output
    assert_no_secret(output)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_login_file_readable_by_group_or_others_gets_a_warning(secret_site, tmp_path, mode):
    login = login_file(tmp_path / "db_credentials.json", secret_site, PASSWORD, mode)
    code, output = imagingdb("--login", login, "query", "--format", "json", stderr_only=True)
    assert code == 0, output
    assert output.splitlines()[0] == (
        f"Warning: {login} holds a password and is readable by other users; "
        f"run: chmod 600 {login}")
    assert_no_secret(output)


def test_password_in_a_site_config_url_is_refused_unshown(tmp_path, monkeypatch):
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({"database": {
        "url": f"postgresql+pg8000://lab:{PASSWORD}@db.lab:5432/imaging"}}))
    code, output = imagingdb("--debug", "--site-config", config, "query")
    assert code == 2
    assert "database.url contains a password" in output
    assert_no_secret(output)


# ------------------------------------------------- passwords anywhere in a URL

#: a password with every character that breaks naive URL parsing, made of words that
#: are each searched for: no fragment of it may show either
FRAGMENTS = ("Heron", "Ibis", "Stork", "Crane", "Egret")
ODD_PASSWORD = "Heron@Ibis:Stork%Crane/Egret"


def assert_no_fragment(output):
    for fragment in FRAGMENTS:
        assert fragment not in output, f"{fragment!r} of the password leaked:\n{output}"


@pytest.mark.parametrize(("url", "masked", "password"), [
    ("postgresql+pg8000://lab:Heron@db:5432/x", "postgresql+pg8000://lab:***@db:5432/x", "Heron"),
    (f"postgresql+pg8000://lab:{ODD_PASSWORD}@db:5432/x", "postgresql+pg8000://lab:***@db:5432/x",
     ODD_PASSWORD),
    ("postgresql://lab:Heron%40Ibis@db/x", "postgresql://lab:***@db/x", "Heron@Ibis"),
    ("postgresql://lab@db/x?password=Heron", "postgresql://lab@db/x?password=***", "Heron"),
    ("postgresql://lab@db/x?sslmode=require&PassWord=Heron&Ibis&connect_timeout=3",
     "postgresql://lab@db/x?sslmode=require&PassWord=***&connect_timeout=3", "Heron&Ibis"),
    ("postgresql://lab@db/x?pass%77ord=Heron%2FIbis", "postgresql://lab@db/x?pass%77ord=***",
     "Heron/Ibis"),
    ("postgresql://lab:Heron?Ibis#Stork@db/x", "postgresql://lab:***@db/x", "Heron?Ibis#Stork"),
    ("lab:Heron@db/x", "lab:***@db/x", "Heron"),  # no scheme: still a password
    ("postgresql://lab@db:5432/x", "postgresql://lab@db:5432/x", None),
    ("postgresql://lab@db:5432/x?application_name=me%40lab", "postgresql://lab@db:5432/x"
     "?application_name=me%40lab", None),
    ("sqlite:////data/a:b@c.sqlite", "sqlite:////data/a:b@c.sqlite", None),
])
def test_a_password_anywhere_in_a_url_is_masked_and_taken_out(url, masked, password):
    from imagingdb.config import mask_url, split_url_password, url_has_password

    assert mask_url(url) == masked
    assert url_has_password(url) == (password is not None)
    without, found = split_url_password(url)
    assert found == password
    assert not url_has_password(without) and mask_url(without) == without
    assert_no_fragment(without)


@pytest.mark.parametrize("url", [
    f"postgresql://lab@db:5432/x?password={ODD_PASSWORD}",  # "@" unencoded in the query
    "postgresql://lab:Heron?password=Ibis@db/x",
    # no password, but read to its last "@" the userinfo would run into the query
    "postgresql://lab@db:5432/x?application_name=alice@lab",
])
def test_a_url_that_reads_two_ways_is_masked_whole_and_refused(url):
    from imagingdb.config import DatabaseSettings, mask_url, split_url_password
    from imagingdb.db import create_engine
    from imagingdb.errors import InputError

    assert_no_fragment(mask_url(url))
    with pytest.raises(InputError, match="percent-encode the password") as caught:
        split_url_password(url)
    assert_no_fragment(str(caught.value))
    with pytest.raises(InputError) as caught:
        create_engine(DatabaseSettings(url=url))
    assert_no_fragment(str(caught.value))


def test_an_at_in_a_site_config_urls_query_is_refused_as_ambiguous(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({"database": {
        "url": "postgresql+pg8000://lab@db.lab:5432/imaging?application_name=alice@lab"}}))
    code, output = imagingdb("--site-config", config, "db", "status")
    assert code == 2, output
    assert output.splitlines()[-1].startswith(
        f"Error: {config}: database URL ") and "can be read more than one way" in output
    assert "any @ in the query" in output
    assert_no_fragment(output)


@pytest.mark.parametrize(("url", "command"), [
    (f"postgresql+pg8000://lab:{ODD_PASSWORD}@db.lab:5432/imaging", ["init"]),
    ("postgresql+pg8000://lab@db.lab:5432/imaging?password=Heron", ["init"]),
    ("postgresql+pg8000://lab@db.lab:5432/imaging?password=Heron", ["db", "status"]),
    ("postgresql+pg8000://lab@db.lab:5432/imaging?sslmode=require&PASSWORD=Heron%40Ibis",
     ["query"]),
    ("postgresql+pg8000://lab@db.lab:5432/imaging?pass%77ord=Heron", ["db", "upgrade"]),
])
def test_password_in_a_site_config_url_is_refused_wherever_it_sits(tmp_path, url, command):
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": url}}))
    code, output = imagingdb("--debug", "--site-config", config, *command)
    assert code == 2, output
    assert f"Error: {config}: database.url contains a password;" in output
    assert "password_env" in output
    assert_no_fragment(output)


@pytest.fixture
def odd_password_db(pg_server):
    """A PostgreSQL database owned by a role whose password is ODD_PASSWORD; its URL parts."""
    from pg8000.native import identifier

    role = f"lab_{uuid.uuid4().hex[:10]}"
    name = f"secrets_{uuid.uuid4().hex[:10]}"
    pg_server.create_role(role, ODD_PASSWORD)
    superuser_url = sa.make_url(pg_server.create_database(name))
    with closing(pg_server.connect()) as admin:
        admin.run(f"ALTER DATABASE {identifier(name)} OWNER TO {identifier(role)}")
    yield {"role": role, "database": name, "host": superuser_url.host,
           "port": superuser_url.port}
    pg_server.drop_database(name)
    pg_server.drop_role(role)


def _urls(db, password):
    """The same database with ``password`` unencoded in the userinfo, and in the query."""
    place = f"{db['host']}:{db['port']}/{db['database']}"
    return (f"postgresql+pg8000://{db['role']}:{password}@{place}",
            f"postgresql+pg8000://{db['role']}@{place}?password={quote(password, safe='')}")


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_api_takes_an_unencoded_password_from_the_url_and_never_shows_it(odd_password_db, where):
    import imagingdb

    url = _urls(odd_password_db, ODD_PASSWORD)[where == "query"]
    with imagingdb.connect(database_url=url, storage={"root": "unused"}) as db:
        db.upgrade()
        assert db.query() == []
        shown = [db.database_url, db.describe(), repr(db.config), repr(db.site.unchecked_engine)]
    assert f"{odd_password_db['role']}" in db.database_url and "***" in db.database_url
    assert_no_fragment("\n".join(shown))


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_api_wrong_password_in_the_url_is_refused_without_showing_it(odd_password_db, where):
    import traceback

    import imagingdb
    from imagingdb.errors import WorkError

    url = _urls(odd_password_db, "Heron@Ibis:Stork%Crane/Wrong")[where == "query"]
    with imagingdb.connect(database_url=url, storage={"root": "unused"}) as db:
        with pytest.raises(WorkError) as caught:
            db.query()
    message = str(caught.value)
    assert message.startswith(f"cannot connect to database {imagingdb.config.mask_url(url)}: ")
    assert "password authentication failed" in message
    assert_no_fragment(message)
    assert_no_fragment("".join(traceback.format_exception(caught.value)))


def test_login_file_password_with_url_characters_is_never_shown(odd_password_db, tmp_path,
                                                                 upload_files):
    db = odd_password_db
    login = tmp_path / "db_credentials.json"
    login.write_text(json.dumps({"drivername": "postgres", "username": db["role"],
                                 "password": ODD_PASSWORD, "host": db["host"], "port": db["port"],
                                 "dbname": db["database"]}))
    login.chmod(0o600)
    bad_csv = upload_files.csv([{"dataset_id": DATASET_ID, "file_name": tmp_path / "missing.tif"}])
    commands = [["init"], ["db", "status"], ["query", "--format", "json"], ["show", DATASET_ID],
                ["upload", "--csv", bad_csv, "--config", upload_files.file_config()]]
    argv = [["--debug", "--login", str(login), *map(str, args)] for args in commands]
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argv)], env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert [int(part.split("\n", 1)[0]) for part in done.stdout.split("@@exit ")[1:]] == [
        0, 0, 0, 2, 2], output
    assert f"{db['role']}@{db['host']}" in output  # the URL was shown, without the password
    assert_no_fragment(output)
    login.write_text(login.read_text().replace("Egret", "Wrong"))
    code, output = imagingdb("--debug", "--login", login, "query")
    assert code == 1 and "password authentication failed" in output
    assert_no_fragment(output)
