"""imagingdb's own test fixtures (isolated IMAGINGDB_HOME, the CLI runner, upload files),
so the plugin is tested exactly as imagingdb's suite tests its built-in formats."""

from tests.conftest import isolated_home, run_cli, upload_files  # noqa: F401 - pytest fixtures
