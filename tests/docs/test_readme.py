"""The README keeps its promises: short, opening with the two commands, the
second of which is the very command `.ci/run` runs."""

import re

from docs_blocks import REPO, parse_blocks

_README = REPO / 'README.md'


def _opening_commands():
  first = next(b for b in parse_blocks(_README.read_text()) if b.kind)
  return [line for line in first.code.splitlines() if line.strip()]


def test_readme_is_at_most_200_lines():
  assert len(_README.read_text().splitlines()) <= 200


def test_readme_opens_with_the_example_and_the_test_commands():
  example, tests = _opening_commands()
  assert re.search(r'python examples/quickstart\.py$', example), example
  assert re.search(r'-m pytest .*tests$', tests), tests


def test_ci_runs_the_readme_test_command_verbatim():
  _, tests = _opening_commands()
  ci_lines = (REPO / '.ci' / 'run').read_text().splitlines()
  assert tests in ci_lines
