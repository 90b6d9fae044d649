"""Counts the documentation's code blocks that ran, for the terminal summary."""

import collections

import pytest

_COUNTS = pytest.StashKey[collections.Counter]()


@pytest.fixture()
def count_blocks(request):
  """Records the blocks of one Markdown file that ran (a list of `Block`)."""
  counts = request.config.stash.setdefault(_COUNTS, collections.Counter())

  def record(blocks):
    counts['files'] += 1
    for block in blocks:
      counts[block.kind] += 1

  return record


def pytest_terminal_summary(terminalreporter, config):
  counts = config.stash.get(_COUNTS, None)
  if counts:
    terminalreporter.write_line(
        f"documentation code blocks run and passed: {counts['python']} python, "
        f"{counts['bash']} bash, in {counts['files']} Markdown files")
