import os
from pathlib import Path

import pytest

from imagingdb.config import (
    embedded_default,
    find_site_config,
    load_login_file,
    load_site_config,
    load_upload_config,
    mask_url,
)
from imagingdb.errors import InputError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_default_lives_under_imagingdb_home(isolated_home):
    config = find_site_config()
    assert config.is_embedded_default
    assert config.database.url == f"sqlite:///{isolated_home / 'imagingdb.sqlite'}"
    assert config.storage.backend == "local"
    assert config.storage.options["root"] == str(isolated_home / "storage")


def test_site_config_from_env_var(tmp_path, monkeypatch):
    path = write(tmp_path / "site.yaml", "database:\n  url: sqlite:///db.sqlite\n"
                                         "storage:\n  backend: local\n  root: data\n")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(path))
    config = find_site_config()
    assert config.source == path
    # relative paths are relative to the config file's folder
    assert config.database.url == f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert config.storage.options["root"] == str(tmp_path / "data")


def test_explicit_site_config_wins_over_env(tmp_path, monkeypatch):
    explicit = write(tmp_path / "a.yaml", "database:\n  url: sqlite:////tmp/a.sqlite\n")
    monkeypatch.setenv("IMAGINGDB_CONFIG", str(tmp_path / "missing.yaml"))
    assert find_site_config(explicit).database.url == "sqlite:////tmp/a.sqlite"


def test_user_config_in_xdg_config_home_is_found(tmp_path):
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "imagingdb"
    folder.mkdir(parents=True)
    write(folder / "config.yaml", "database:\n  url: sqlite:////tmp/user.sqlite\n")
    assert find_site_config().database.url == "sqlite:////tmp/user.sqlite"


@pytest.mark.parametrize("text, message", [
    ("database:\n  url: sqlite:///x\n  pasword_env: X\n",
     "unknown key database.'pasword_env'.*did you mean 'password_env'"),
    ("databse:\n  url: sqlite:///x\n", "unknown key 'databse'"),
    ("database:\n  url: 5\n", "database.'url' must be a string"),
    ("database:\n  url: sqlite:///x\n  connect_timeout: true\n", "must be an integer"),
    ("storage:\n  backend: local\n", "database.url' is required"),
    ("database:\n  url: postgresql+pg8000://u:secret@h/db\n", "contains a password"),
    ("database:\n  url: sqlite:///x\ndatabase:\n  url: sqlite:///y\n", "duplicate key 'database'"),
    ("database: [\n", "invalid YAML at line"),
    ("", "is empty"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_bad_site_config_names_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path / "site.yaml", text)
    with pytest.raises(InputError, match=message) as info:
        load_site_config(path)
    assert str(path) in str(info.value)
    assert "secret" not in str(info.value)


def test_missing_explicit_site_config_is_an_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        find_site_config(tmp_path / "nope.yaml")


def test_mask_url_hides_the_password():
    assert mask_url("postgresql+pg8000://me:hunter2@db:5432/x") == "postgresql+pg8000://me:***@db:5432/x"
    assert mask_url("sqlite:///a:b@c") == "sqlite:///a:b@c"


def test_upload_config_yaml(tmp_path):
    path = write(tmp_path / "u.yaml", "upload_type: frames\nframes_format: ome_tiff\n"
                                      "microscope: scope2\nnbr_workers: 4\n")
    config = load_upload_config(path)
    assert (config.upload_type, config.frames_format, config.microscope, config.nbr_workers) == (
        "frames", "ome_tiff", "scope2", 4)


def test_upload_config_json_of_the_original_is_accepted(tmp_path):
    path = write(tmp_path / "config.json", '{"upload_type": "file", "microscope": "Leica"}')
    assert load_upload_config(path).upload_type == "file"


def test_meta_schema_file_is_loaded_relative_to_the_config(tmp_path):
    write(tmp_path / "schema.json", '{"type": "object", "required": ["ChannelIndex"]}')
    path = write(tmp_path / "u.yaml", "upload_type: frames\nframes_format: ome_tiff\n"
                                      "meta_schema: schema.json\n")
    assert load_upload_config(path).meta_schema["required"] == ["ChannelIndex"]


def test_frames_format_left_out_is_auto_and_sequences_run_along_z(tmp_path):
    config = load_upload_config(write(tmp_path / "u.yaml", "upload_type: frames\n"))
    assert (config.frames_format, config.sequence_axis) == ("auto", "slice")


def test_sequence_axis_t_runs_sequences_along_time(tmp_path):
    path = write(tmp_path / "u.yaml", "upload_type: frames\nsequence_axis: t\n")
    assert load_upload_config(path).sequence_axis == "time"


@pytest.mark.parametrize("text, message", [
    ("upload_type: frames\nframe_format: ome_tiff\n",
     "'frame_format' .* must be one of png, ome-zarr, got 'ome_tiff'; the source's format is "
     "the key 'frames_format'"),
    ("upload_type: frames\nframes_formats: ome_tiff\n",
     "unknown key 'frames_formats'.*did you mean 'frames_format'"),
    ("upload_type: video\n", "'upload_type' must be 'file' or 'frames'"),
    ("upload_type: frames\nsequence_axis: c\n", "'sequence_axis' must be z .* or t"),
    ("upload_type: file\nnbr_workers: many\n", "'nbr_workers' must be an integer"),
    ("upload_type: file\nnbr_workers: 0\n", "at least 1"),
    ("upload_type: file\nupload_type: frames\n", "duplicate key 'upload_type'"),
    ("upload_type: file\n  microscope: x\n", "invalid YAML"),
    ("upload_type: frames\nframes_format: ome_tiff\nmeta_schema: missing.json\n", "not found"),
])
def test_bad_upload_config_names_the_key(tmp_path, text, message):
    path = write(tmp_path / "u.yaml", text)
    with pytest.raises(InputError, match=message):
        load_upload_config(path)


def test_login_file_of_the_original_gives_a_url_without_password(tmp_path, capsys):
    path = write(tmp_path / "db_credentials.json",
                 '{"drivername": "postgres", "username": "u", "password": "pw", '
                 '"host": "h", "port": 5432, "dbname": "d"}')
    path.chmod(0o600)
    settings = load_login_file(path)
    assert settings.url == "postgresql+pg8000://u@h:5432/d"
    assert settings.password == "pw"
    assert "pw" not in repr(settings)
    assert capsys.readouterr().err == ""


def test_login_file_readable_by_others_gets_a_warning(tmp_path, capsys):
    path = write(tmp_path / "db_credentials.json",
                 '{"drivername": "postgresql", "username": "u", "password": "pw", '
                 '"host": "h", "port": 5432, "dbname": "d"}')
    path.chmod(0o644)
    load_login_file(path)
    err = capsys.readouterr().err
    assert "Warning:" in err and "chmod 600" in err and "pw" not in err


def test_embedded_default_is_not_from_a_file():
    assert embedded_default().source is None


EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def test_example_config_is_a_valid_site_config():
    config = load_site_config(EXAMPLE)
    assert config.database.password_env == "IMAGINGDB_DB_PASSWORD"
    assert config.storage.backend == "local"


def test_example_config_documents_every_key():
    from imagingdb import config as config_module

    text = EXAMPLE.read_text()
    keys = (set(config_module.UPLOAD_KEYS) | set(config_module._DATABASE_KEYS)
            | set(config_module._STORAGE_KEYS) | set(config_module._SITE_TOP_KEYS))
    undocumented = [key for key in sorted(keys) if f"{key}:" not in text]
    assert undocumented == []
