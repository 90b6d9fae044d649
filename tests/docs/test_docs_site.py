"""The documentation site builds with `mkdocs build --strict`: a broken link
or anchor, a page missing from the nav or a docstring mkdocstrings cannot
read fails the build, so it fails here."""

import os
import subprocess
import sys

import pytest

from docs_blocks import REPO


@pytest.mark.slow
def test_mkdocs_strict_build_has_no_warning(tmp_path):
  env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
  completed = subprocess.run(
      [sys.executable, '-m', 'mkdocs', 'build', '--strict',
       '--config-file', str(REPO / 'mkdocs.yml'), '-d', str(tmp_path / 'site')],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      check=False)
  output = completed.stdout.decode(errors='replace')
  assert completed.returncode == 0, output
  assert 'WARNING' not in output, output
  assert (tmp_path / 'site' / 'reference' / 'kmeans_clustering'
          / 'index.html').exists()
