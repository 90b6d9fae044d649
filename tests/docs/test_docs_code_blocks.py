"""Every python and bash block of README.md and docs/ runs, as written.

One test per Markdown file (see `docs_blocks` for what runs and how); the
fast tests below pin the collector itself on small pages.
"""

import pathlib
import textwrap

import pytest

import docs_blocks
from docs_blocks import REPO

_FILES = docs_blocks.markdown_files()


@pytest.mark.slow
@pytest.mark.parametrize(
    'path', _FILES, ids=[str(p.relative_to(REPO)) for p in _FILES])
def test_markdown_code_blocks_run(path, tmp_path, count_blocks,
                                  python_children):
  docs_blocks.run_file(path, tmp_path / 'work', str(path.relative_to(REPO)),
                       children=python_children)
  count_blocks(docs_blocks.parse_blocks(path.read_text()))


def _page(tmp_path, text, name='page.md'):
  path = tmp_path / name
  path.write_text(textwrap.dedent(text))
  return path


_PAGE = '''\
    # A page

    ```python
    x = 1
    ```

    Some text.

    <!-- docs-test: skip -->
    ```bash
    pip install something
    ```

    ```text
    output, never run
    ```

    - A list item:

      ```python
      y = x + 1
      ```

    ````markdown
    ```python
    shown, never run
    ```
    ````

    ```
    no language, never run
    ```

    ```bash
    echo hello
    ```
    '''


def test_parser_finds_every_fence_with_its_language_line_and_skip():
  blocks = docs_blocks.parse_blocks(textwrap.dedent(_PAGE))
  assert [(b.language, b.line, b.skip) for b in blocks] == [
      ('python', 3, False), ('bash', 10, True), ('text', 14, False),
      ('python', 20, False), ('markdown', 24, False), ('', 30, False),
      ('bash', 34, False)]
  assert [b.kind for b in blocks if b.runs] == ['python', 'python', 'bash']
  # An indented fence's code is dedented; a longer fence holds shorter ones.
  assert blocks[3].code == 'y = x + 1\n'
  assert blocks[4].code == '```python\nshown, never run\n```\n'


def test_skip_marker_applies_only_to_the_next_fence():
  blocks = docs_blocks.parse_blocks(textwrap.dedent('''\
      <!-- docs-test: skip -->

      ```python
      skipped()
      ```
      ```python
      run()
      ```
      '''))
  assert [b.skip for b in blocks] == [True, False]


def test_python_blocks_share_a_namespace_and_bash_blocks_the_directory(
    tmp_path):
  path = _page(tmp_path, '''\
      ```python
      import numpy as np
      points = np.arange(6.0).reshape(3, 2)
      ```

      ```python
      np.savetxt('points.csv', points, delimiter=',')
      assert __name__ == '__main__'
      ```

      ```bash
      test "$(wc -l < points.csv)" -eq 3
      echo 4,5 >> points.csv
      test -d examples && test -d benchmarks
      test "$(command -v python)" -ef "$(command -v python)"
      ```

      ```python
      assert len(open('points.csv').read().splitlines()) == 4
      ```
      ''')
  blocks = docs_blocks.run_file(path, tmp_path / 'work')
  assert [b.kind for b in blocks] == ['python', 'python', 'bash', 'python']


def test_files_sharing_a_child_get_a_fresh_namespace_and_their_own_directory(
    tmp_path):
  first = _page(tmp_path, '''\
      ```python
      import os, sys
      x = 1
      sys.modules['__docs_marker__'] = os.getpid()
      open('first.txt', 'w').close()
      ```
      ''', name='first.md')
  second = _page(tmp_path, '''\
      ```python
      import os, sys
      assert 'x' not in globals(), 'the namespace of the file before leaked'
      assert sys.modules['__docs_marker__'] == os.getpid(), 'not shared'
      assert not os.path.exists('first.txt'), os.getcwd()
      ```
      ''', name='second.md')
  children = docs_blocks.PythonChildren(tmp_path)
  try:
    docs_blocks.run_file(first, tmp_path / 'one', children=children)
    docs_blocks.run_file(second, tmp_path / 'two', children=children)
    assert children.started == 1
    assert (tmp_path / 'one' / 'first.txt').exists()
  finally:
    children.close()


def test_a_failed_file_ends_the_shared_child_and_the_next_starts_fresh(
    tmp_path):
  failing = _page(tmp_path, '''\
      ```python
      import sys
      sys.modules['__docs_marker__'] = 'left behind'
      raise ValueError('broken page')
      ```
      ''', name='failing.md')
  next_page = _page(tmp_path, '''\
      ```python
      import sys
      assert '__docs_marker__' not in sys.modules
      ```
      ''', name='next.md')
  children = docs_blocks.PythonChildren(tmp_path)
  try:
    with pytest.raises(docs_blocks.BlockFailed, match='failing.md:1:.*broken'):
      docs_blocks.run_file(failing, tmp_path / 'one', 'failing.md',
                           children=children)
    docs_blocks.run_file(next_page, tmp_path / 'two', children=children)
    assert children.started == 2
  finally:
    children.close()


def test_blocks_run_the_test_python_and_the_repository_package(tmp_path):
  # find_spec locates the package without importing it (and TensorFlow).
  path = _page(tmp_path, '''\
      ```bash
      python -c "import sys; print(sys.executable)" > python.txt
      python -c "import importlib.util as u; print(u.find_spec('kmeans_estimator').origin)" > package.txt
      ```

      ```python
      import importlib.util
      import os
      import sys
      assert os.path.samefile(open('python.txt').read().strip(), sys.executable)
      assert importlib.util.find_spec('kmeans_estimator').origin == (
          open('package.txt').read().strip())
      ```
      ''')
  docs_blocks.run_file(path, tmp_path / 'work')
  package = pathlib.Path((tmp_path / 'work' / 'package.txt').read_text().strip())
  assert package == REPO / 'kmeans_estimator' / '__init__.py'


def test_a_failing_python_block_names_the_file_its_line_and_output(tmp_path):
  path = _page(tmp_path, '''\
      # Title

      ```python
      print('before the failure')
      x = 1
      assert x == 2, 'x is not 2'
      ```

      ```python
      never_run()
      ```
      ''')
  with pytest.raises(docs_blocks.BlockFailed) as failure:
    docs_blocks.run_file(path, tmp_path / 'work', 'docs/page.md')
  message = str(failure.value)
  assert message.startswith(
      'docs/page.md:3: the python block failed: AssertionError: x is not 2')
  # The traceback gives the line in the page, and the output is the block's.
  assert 'File "docs/page.md", line 6' in message
  assert 'before the failure' in message
  assert 'never_run' not in message


def test_a_failing_bash_block_fails_with_its_status_line_and_output(tmp_path):
  path = _page(tmp_path, '''\
      ```bash
      echo fine
      ```

      ```bash
      echo partial output
      false
      echo never printed
      ```
      ''')
  with pytest.raises(docs_blocks.BlockFailed) as failure:
    docs_blocks.run_file(path, tmp_path / 'work', 'page.md')
  message = str(failure.value)
  assert message.startswith(
      'page.md:5: the bash block failed: bash exited with status 1')
  assert 'partial output' in message
  assert 'never printed' not in message.split('--- output ---')[1]


def test_a_python_process_that_dies_fails_the_block(tmp_path):
  path = _page(tmp_path, '```python\nimport os\nos._exit(3)\n```\n')
  with pytest.raises(docs_blocks.BlockFailed, match=r'page.md:1: .*exit status 3'):
    docs_blocks.run_file(path, tmp_path / 'work', 'page.md')


def test_bash_blocks_fail_on_an_unset_variable_and_a_failed_pipe(tmp_path):
  for code in ('echo "$UNSET_VARIABLE_OF_THE_TEST"', 'false | cat'):
    path = _page(tmp_path, f'```bash\n{code}\n```\n')
    with pytest.raises(docs_blocks.BlockFailed):
      docs_blocks.run_file(path, tmp_path / 'work')


def test_skipped_and_other_blocks_do_not_run(tmp_path):
  blocks = docs_blocks.run_file(_page(tmp_path, _PAGE), tmp_path / 'work')
  assert len(blocks) == 3


def test_the_collector_finds_readme_and_every_docs_page():
  files = [str(p.relative_to(REPO)) for p in docs_blocks.markdown_files()]
  assert files[0] == 'README.md'
  assert 'docs/migrating.md' in files and 'docs/architecture.md' in files
  assert all(f.startswith('docs/') for f in files[1:])
