"""A user's typed code type-checks against kmeans_estimator's annotations.

mypy runs on small scripts (`typed_quickstart.py`, `typed_misuse.py`) in a
subprocess, from the repository root, so it reads the package from the
source tree with the project's mypy configuration (pyproject.toml: only
TensorFlow and protobuf, which ship no type information, are ignored when
missing; kmeans_estimator itself must be found and typed). `.ci/wheel_check`
checks the same script against the installed wheel, through py.typed.
"""

import importlib
import pathlib
import re
import subprocess
import sys

import pytest

importlib.import_module('mypy')

pytestmark = pytest.mark.slow

_HERE = pathlib.Path(__file__).parent
_ROOT = _HERE.parents[1]


def _mypy(tmp_path, *arguments):
  return subprocess.run(
      [sys.executable, '-m', 'mypy', '--config-file',
       str(_ROOT / 'pyproject.toml'), '--cache-dir', str(tmp_path / 'cache'),
       '--no-error-summary', '--show-error-codes', *arguments],
      cwd=_ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_the_typed_quickstart_passes_mypy(tmp_path):
  result = _mypy(tmp_path, str(_HERE / 'typed_quickstart.py'))
  assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_reports_each_misuse_from_the_annotations(tmp_path):
  script = _HERE / 'typed_misuse.py'
  expected = {number for number, line in enumerate(
      script.read_text().splitlines(), start=1) if line.endswith('# error')}
  result = _mypy(tmp_path, str(script))
  reported = {int(match) for match in re.findall(
      r'^[^:\n]*typed_misuse\.py:(\d+): error:', result.stdout, re.MULTILINE)}
  assert result.returncode == 1, result.stdout + result.stderr
  assert reported == expected, result.stdout


def test_the_package_itself_passes_mypy(tmp_path):
  result = _mypy(tmp_path, '-p', 'kmeans_estimator')
  assert result.returncode == 0, result.stdout + result.stderr
