"""Counts the documentation's code blocks that ran, for the terminal summary;
the Python process that the files' python blocks share."""

import collections

import pytest

import docs_blocks

_COUNTS = pytest.StashKey[collections.Counter]()


@pytest.fixture()
def count_blocks(request):
  """Records the blocks of a Markdown file whose blocks all passed (a list
  of every `Block` of the file)."""
  counts = request.config.stash.setdefault(_COUNTS, collections.Counter())

  def record(blocks):
    counts['files'] += 1
    for block in blocks:
      if block.kind is not None:
        counts['skipped' if block.skip else block.kind] += 1

  return record


def pytest_sessionfinish(session):
  # Under pytest-xdist each worker counts its own files: hand the counts to
  # the controller, which adds them up (`pytest_testnodedown`).
  workeroutput = getattr(session.config, 'workeroutput', None)
  counts = session.config.stash.get(_COUNTS, None)
  if workeroutput is not None and counts:
    workeroutput['docs_block_counts'] = dict(counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
  del error  # A crashed worker's counts are simply missing.
  counts = getattr(node, 'workeroutput', {}).get('docs_block_counts')
  if counts:
    node.config.stash.setdefault(
        _COUNTS, collections.Counter()).update(counts)


def pytest_terminal_summary(terminalreporter, config):
  counts = config.stash.get(_COUNTS, None)
  if counts:
    terminalreporter.write_line(
        f"documentation code blocks: {counts['python']} python and "
        f"{counts['bash']} bash blocks ran and passed, {counts['skipped']} "
        f"skipped, in {counts['files']} Markdown files")


@pytest.fixture(scope='session')
def python_children(tmp_path_factory):
  """One child Python that the Markdown files' python blocks share, one file
  after another (see `docs_blocks.PythonChildren`)."""
  children = docs_blocks.PythonChildren(tmp_path_factory.mktemp('python'))
  yield children
  children.close()
