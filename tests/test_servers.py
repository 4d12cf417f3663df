"""Smoke tests proving the fixtures in tests/servers.py give real servers.

If these fail, every test built on pg_url or s3_bucket is suspect, so they
check the properties the rest of the suite relies on: real password auth,
isolated databases, real HTTP to moto, and real S3 error codes.
"""

import os

import boto3
import pg8000.dbapi
import pg8000.native
import pytest
import sqlalchemy
from botocore.exceptions import ClientError
from sqlalchemy.engine import make_url

from tests.servers import PG_PASSWORD_ENV, PostgresServer


def _engine(url: str, password: str | None = None) -> sqlalchemy.Engine:
    password = os.environ[PG_PASSWORD_ENV] if password is None else password
    return sqlalchemy.create_engine(url, connect_args={"password": password})


def test_pg_url_is_a_real_postgres_reached_with_the_env_password(pg_url):
    assert make_url(pg_url).password is None
    assert make_url(pg_url).host == "127.0.0.1"
    engine = _engine(pg_url)
    with engine.connect() as connection:
        version = connection.execute(sqlalchemy.text("SELECT version()")).scalar_one()
    engine.dispose()
    assert version.startswith("PostgreSQL")


def test_password_may_also_go_in_the_url(pg_url):
    url = make_url(pg_url).set(password=os.environ[PG_PASSWORD_ENV])
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
    engine.dispose()


def test_wrong_password_is_refused(pg_url):
    engine = _engine(pg_url, password="not-the-password")
    with pytest.raises(sqlalchemy.exc.DBAPIError) as refused:
        engine.connect()
    engine.dispose()
    assert isinstance(refused.value.orig, pg8000.dbapi.DatabaseError)
    assert "28P01" in str(refused.value.orig)  # invalid_password


def test_extra_role_logs_in_with_its_own_password_only(pg_server, pg_url):
    database = make_url(pg_url).database
    pg_server.create_role("smoke_reader", "reader-secret")
    try:
        connect = dict(host=pg_server.host, port=pg_server.port, database=database)
        pg8000.native.Connection("smoke_reader", password="reader-secret", **connect).close()
        with pytest.raises(pg8000.native.DatabaseError, match="28P01"):
            pg8000.native.Connection("smoke_reader", password="wrong", **connect)
    finally:
        pg_server.drop_role("smoke_reader")


def test_each_pg_url_is_a_separate_empty_database(pg_server, pg_url):
    other_name = "smoke_other_db"
    other_url = pg_server.create_database(other_name)
    try:
        assert make_url(other_url).database != make_url(pg_url).database
        with _engine(pg_url).begin() as connection:
            connection.execute(sqlalchemy.text("CREATE TABLE only_here (id int)"))
        engine = _engine(other_url)
        with engine.connect() as connection:
            tables = sqlalchemy.inspect(connection).get_table_names()
        engine.dispose()
        assert tables == []
    finally:
        pg_server.drop_database(other_name)


def test_drop_database_survives_a_leaked_connection(pg_server):
    url = pg_server.create_database("smoke_leaky")
    leaked = _engine(url, password=pg_server.password).connect()
    pg_server.drop_database("smoke_leaky")
    with pg_server.connect() as admin:
        rows = admin.run("SELECT 1 FROM pg_database WHERE datname = 'smoke_leaky'")
    assert rows == []
    leaked.invalidate()


def test_password_stays_out_of_the_repr(pg_server):
    assert pg_server.password not in repr(pg_server)


def test_server_stops_and_cleans_up():
    with PostgresServer() as server:
        base_dir = server.base_dir
        assert (base_dir / "data" / "PG_VERSION").exists()
    assert not base_dir.exists()
    server.stop()  # a second stop is harmless


def test_s3_bucket_round_trips_an_object_over_http(s3_bucket):
    assert s3_bucket.endpoint_url.startswith("http://127.0.0.1:")
    s3 = boto3.client("s3", endpoint_url=s3_bucket.endpoint_url)
    s3.put_object(Bucket=s3_bucket.name, Key="a/b.bin", Body=b"\x00pixels\xff")
    body = s3.get_object(Bucket=s3_bucket.name, Key="a/b.bin")["Body"].read()
    assert body == b"\x00pixels\xff"


def test_missing_bucket_is_a_real_nosuchbucket_error(s3_server, aws_env):
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="no-such-bucket-here", Key="x")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"


def test_aws_env_hides_host_configuration(aws_env):
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "AWS_PROFILE" not in os.environ
    assert not os.path.exists(os.environ["AWS_CONFIG_FILE"])
    assert not os.path.exists(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
