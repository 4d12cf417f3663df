"""`imagingdb python`: Python with imagingdb importable, as the python command line runs it."""

import subprocess
import sys

import pytest

from imagingdb.onefile import interpreter_problem


def imagingdb_python(*args, input=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "imagingdb", "python", *args], input=input,
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_code_gets_its_arguments_and_the_api():
    done = imagingdb_python("-c", "import sys, imagingdb, numpy; print(imagingdb.__version__, "
                                  "sys.argv[1:])", "a", "--b")
    assert (done.returncode, done.stdout, done.stderr) == (0, "0.1.0 ['a', '--b']\n", "")


def test_a_script_runs_as_main_with_its_options_and_folder_on_the_path(tmp_path):
    (tmp_path / "helper.py").write_text("VALUE = 42\n")
    script = tmp_path / "analysis.py"
    script.write_text("import sys\nfrom helper import VALUE\n"
                      "if __name__ == '__main__':\n    print(sys.argv, VALUE)\n"
                      "    sys.exit(3)\n")
    done = imagingdb_python(str(script), "--help", "x", cwd=tmp_path.parent)
    assert done.returncode == 3, done.stderr
    assert done.stdout == f"{[str(script), '--help', 'x']} 42\n"


def test_a_module_and_standard_input(tmp_path):
    data = tmp_path / "frames.json"
    data.write_text('{"a": [1, 2]}')
    done = imagingdb_python("-m", "json.tool", "--compact", str(data))
    assert (done.returncode, done.stdout) == (0, '{"a":[1,2]}\n'), done.stderr
    done = imagingdb_python(input="import imagingdb\nprint('in', imagingdb.__name__)\n")
    assert (done.returncode, done.stdout) == (0, "in imagingdb\n"), done.stderr


def test_a_program_error_is_its_own_traceback_and_exit_1(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("def f():\n    return 1 / 0\nf()\n")
    done = imagingdb_python(str(script))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1] == f'  File "{script}", line 3, in <module>'  # no imagingdb frames
    assert lines[-1] == "ZeroDivisionError: division by zero"


@pytest.mark.parametrize("args, message", [
    (["missing.py"], "Error: cannot open script missing.py: no such file"),
    (["-c"], "Error: imagingdb python -c needs an argument, e.g. -c 'import imagingdb'"),
    (["-X", "dev"], "Error: imagingdb python takes a script, -c CODE or -m MODULE, not '-X'"),
])
def test_bad_usage_is_one_error_line(tmp_path, args, message):
    done = imagingdb_python(*args, cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()) == (2, [message])


BUILT_FOR = {"python": "3.11", "platform": "linux", "machine": "x86_64"}


def test_the_build_s_interpreter_passes_and_any_other_is_named():
    assert interpreter_problem(BUILT_FOR, (3, 11, 7), "linux", "x86_64") is None
    problem = interpreter_problem(BUILT_FOR, (3, 12, 1), "linux", "x86_64")
    assert problem.startswith("this imagingdb executable was built for Python 3.11 on linux "
                              "x86_64; it was started by Python 3.12 on linux x86_64 (")
    assert problem.endswith("): run it with that Python (e.g. python3.11 imagingdb ...), or "
                            "build one for this machine with make zipapp")
    assert interpreter_problem(BUILT_FOR, (3, 11, 7), "linux", "aarch64") is not None
    assert interpreter_problem(BUILT_FOR, (3, 11, 7), "darwin", "x86_64") is not None


def test_code_and_modules_find_the_working_folder_first(tmp_path):
    (tmp_path / "mine.py").write_text("VALUE = 7\n")
    done = imagingdb_python("-c", "import mine; print(mine.VALUE)", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "7\n"), done.stderr
    done = imagingdb_python("-m", "mine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
