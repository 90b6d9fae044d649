"""The code blocks of the Markdown documentation, found and run as a user would.

Every ```` ```python ```` and ```` ```bash ```` block of a Markdown file runs,
in the order of the file, in one fresh temporary directory per file:

- python blocks (also `py`, `python3`) run in one namespace per file
  (`__name__ == '__main__'`), in a child Python process, so a block sees
  what the blocks before it defined; a `PythonChildren` pool lets files
  share one child, one after another (fresh namespace and directory each,
  the imports and traced functions kept), and a file whose block fails
  takes its child with it, so the next file starts a fresh one;
- bash blocks (also `sh`, `shell`) run with `bash -euo pipefail` in the same
  directory, so a python block may write `points.csv` that a later bash
  block trains on;
- the directory holds the symlinks `examples` and `benchmarks` to the
  repository's folders, so `python examples/quickstart.py` works as written;
- both see the test Python's bin directory first on PATH (so `python` and
  `kmeans-estimator` are the test environment's) and the repository first
  on PYTHONPATH (so the package under test is the one imported).

A block directly preceded by the line `<!-- docs-test: skip -->` (blank lines
between are allowed) does not run: installs, virtualenvs, `mkdocs serve`,
several machines, full benchmarks. Fences of any other language (`text`,
`console`, `json`, `toml`, `ini`, none) never run. Fences may be indented
(inside list items); their content is dedented by the fence's indentation.
A fence closes with the same character repeated at least as often, so a
```` ````markdown ```` fence can show ```` ```python ```` blocks that do not run.

`python tests/docs/docs_blocks.py` prints how many blocks each file has.
"""

import dataclasses
import json
import os
import pathlib
import re
import select
import subprocess
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[2]
SKIP_MARKER = '<!-- docs-test: skip -->'
PYTHON_LANGUAGES = ('python', 'py', 'python3')
BASH_LANGUAGES = ('bash', 'sh', 'shell')
# The longest a single block may run before its test fails as hung.
BLOCK_TIMEOUT_SECONDS = 600

_CHILD = pathlib.Path(__file__).with_name('_docs_block_child.py')
_FENCE_RE = re.compile(r'^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$')


@dataclasses.dataclass(frozen=True)
class Block:
  """One fenced code block.

  Attributes:
    language: the first word of the fence's info string, lower case ('' for
      none).
    code: the block's text, dedented by the fence's indentation.
    line: the 1-based line number of the opening fence.
    skip: whether the skip marker precedes the fence.
  """
  language: str
  code: str
  line: int
  skip: bool

  @property
  def kind(self):
    """'python', 'bash', or None for a block that never runs."""
    if self.language in PYTHON_LANGUAGES:
      return 'python'
    if self.language in BASH_LANGUAGES:
      return 'bash'
    return None

  @property
  def runs(self):
    return self.kind is not None and not self.skip


def parse_blocks(text):
  """Every fenced code block of a Markdown text, in order.

  An unclosed fence runs to the end of the text, as CommonMark has it.
  """
  lines = text.splitlines()
  blocks = []
  index = 0
  previous = ''  # The last non-blank line before the current one.
  while index < len(lines):
    match = _FENCE_RE.match(lines[index])
    if match is None or (match['fence'][0] == '`' and '`' in match['info']):
      if lines[index].strip():
        previous = lines[index].strip()
      index += 1
      continue
    indent, fence = match['indent'], match['fence']
    words = match['info'].strip().split()
    language = words[0].lower().lstrip('{.').rstrip('}') if words else ''
    start = index
    body = []
    index += 1
    closing = re.compile(r'^[ \t]*' + re.escape(fence[0]) + '{%d,}[ \t]*$'
                         % len(fence))
    while index < len(lines) and not closing.match(lines[index]):
      body.append(_strip_indent(lines[index], len(indent)))
      index += 1
    index += 1  # The closing fence.
    blocks.append(Block(language=language, code='\n'.join(body) + '\n',
                        line=start + 1, skip=previous == SKIP_MARKER))
    previous = ''
  return blocks


def _strip_indent(line, width):
  """`line` without up to `width` leading spaces (CommonMark's rule)."""
  stripped = line[:width].lstrip(' ')
  return stripped + line[width:] if stripped.strip() else line[width:]


def markdown_files(root=REPO):
  """README.md and every Markdown file under docs/, as paths under `root`."""
  files = [root / 'README.md'] if (root / 'README.md').exists() else []
  return files + sorted((root / 'docs').rglob('*.md'))


def child_environment(root=REPO):
  """The environment of the blocks: the test Python's bin directory first
  on PATH, the repository first on PYTHONPATH."""
  env = dict(os.environ)
  env['PATH'] = os.pathsep.join(
      [os.path.dirname(sys.executable), env.get('PATH', '')])
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in [str(root), env.get('PYTHONPATH', '')] if p)
  return env


def make_workdir(path, root=REPO):
  """Makes `path` the blocks' directory, with the `examples` and
  `benchmarks` symlinks."""
  path.mkdir(parents=True, exist_ok=True)
  for name in ('examples', 'benchmarks'):
    if (root / name).exists() and not (path / name).exists():
      (path / name).symlink_to(root / name, target_is_directory=True)
  return path


class BlockFailed(AssertionError):
  """A block failed; the message names the file, the line and the output."""


class _PythonChild:
  """A child Python that runs python blocks in one namespace.

  Commands go down one pipe and results come back up another, one JSON line
  each; the child's own stdout and stderr (prints, logging, TensorFlow's C++
  messages) go to a log file, whose new part is each block's output.
  """

  def __init__(self, workdir, env, log_path, display_name):
    self._log_path = log_path
    self._log = open(log_path, 'wb')  # pylint: disable=consider-using-with
    command_read, self._command_write = os.pipe()
    self._result_read, result_write = os.pipe()
    self._process = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, str(_CHILD), str(command_read), str(result_write),
         display_name],
        cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, pass_fds=(command_read, result_write))
    os.close(command_read)
    os.close(result_write)
    self._results = os.fdopen(self._result_read, 'r')
    self._offset = 0
    self._closed = False

  @property
  def alive(self):
    return not self._closed

  def reset(self, workdir, display_name):
    """Starts the next file: a fresh namespace, in `workdir`."""
    message = json.dumps({'reset': {'cwd': str(workdir),
                                    'display_name': display_name}}) + '\n'
    os.write(self._command_write, message.encode())
    reply = self._results.readline()
    if not reply:
      raise BlockFailed(f'{display_name}: the shared Python process ended: '
                        f'{self._new_output()}')
    self._new_output()

  def run(self, block):
    """Runs one block: (None, output) on success, (traceback, output)."""
    message = json.dumps({'code': block.code, 'line': block.line}) + '\n'
    os.write(self._command_write, message.encode())
    ready, _, _ = select.select([self._results], [], [], BLOCK_TIMEOUT_SECONDS)
    reply = self._results.readline() if ready else ''
    if not reply:
      if not ready:
        self._process.kill()
      self._process.wait()
      output = self._new_output()
      self.close()
      error = (f'the block ran longer than {BLOCK_TIMEOUT_SECONDS} s'
               if not ready else
               f'the Python process ended (exit status '
               f'{self._process.returncode})')
      return error, output
    return json.loads(reply)['error'], self._new_output()

  def _new_output(self):
    self._log.flush()
    with open(self._log_path, 'rb') as log:
      log.seek(self._offset)
      output = log.read()
    self._offset += len(output)
    return output.decode(errors='replace')

  def close(self):
    if self._closed:
      return
    self._closed = True
    os.close(self._command_write)  # The child ends at the end of its input.
    try:
      self._process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      self._process.kill()
      self._process.wait()
    self._results.close()
    self._log.close()


class PythonChildren:
  """A pool of one child Python that files use one after another.

  `child(workdir, display_name)` gives the live child reset for the file
  (or a new one); `discard()` ends it after a failure, so that no file runs
  after a failed one in the same process; `close()` ends it.
  """

  def __init__(self, log_dir, root=REPO):
    self._log_dir = pathlib.Path(log_dir)
    self._root = root
    self._child = None
    self._started = 0

  def child(self, workdir, display_name):
    if self._child is not None and self._child.alive:
      self._child.reset(workdir, display_name)
      return self._child
    self._started += 1
    self._child = _PythonChild(
        workdir, child_environment(self._root),
        self._log_dir / f'python.{self._started}.log', display_name)
    return self._child

  @property
  def started(self):
    """How many child processes the pool has started."""
    return self._started

  def discard(self):
    if self._child is not None:
      self._child.close()
      self._child = None

  close = discard


def run_bash(block, workdir, env):
  """Runs one bash block: (None, output) on success, (error, output)."""
  try:
    completed = subprocess.run(
        ['bash', '-euo', 'pipefail', '-c', block.code], cwd=workdir, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT_SECONDS, check=False)
  except subprocess.TimeoutExpired as error:
    output = (error.output or b'').decode(errors='replace')
    return f'the block ran longer than {BLOCK_TIMEOUT_SECONDS} s', output
  output = completed.stdout.decode(errors='replace')
  if completed.returncode:
    return f'bash exited with status {completed.returncode}', output
  return None, output


def run_file(path, workdir, display_name=None, root=REPO, children=None):
  """Runs the blocks of the Markdown file `path` in order, in `workdir`.

  With `children` (a `PythonChildren`), the python blocks run in its shared
  child; else in a child of their own that ends with the file.

  Returns:
    The list of blocks that ran.

  Raises:
    BlockFailed: at the first block that fails, naming the file, the
      block's line, the block and its output.
  """
  display_name = display_name or str(path)
  blocks = [b for b in parse_blocks(pathlib.Path(path).read_text()) if b.runs]
  make_workdir(workdir, root)
  env = child_environment(root)
  child = None
  failed = True
  try:
    for block in blocks:
      if block.kind == 'python':
        if child is None:
          child = (children.child(workdir, display_name) if children else
                   _PythonChild(workdir, env, workdir.parent /
                                (workdir.name + '.python.log'),
                                display_name))
        error, output = child.run(block)
      else:
        error, output = run_bash(block, workdir, env)
      if error is not None:
        raise BlockFailed(
            f'{display_name}:{block.line}: the {block.kind} block failed: '
            f'{error.splitlines()[-1] if error.strip() else error}\n'
            f'--- block ({display_name}:{block.line}) ---\n'
            f'{textwrap.indent(block.code, "  ")}'
            f'--- error ---\n{error}\n--- output ---\n{output}')
    failed = False
  finally:
    if children is not None and failed:
      children.discard()
    elif children is None and child is not None:
      child.close()
  return blocks


def _print_counts():
  total = {'python': 0, 'bash': 0, 'skipped': 0, 'other': 0}
  for path in markdown_files():
    counts = dict.fromkeys(total, 0)
    for block in parse_blocks(path.read_text()):
      key = ('other' if block.kind is None else
             'skipped' if block.skip else block.kind)
      counts[key] += 1
    for key in total:
      total[key] += counts[key]
    print(f'{path.relative_to(REPO)}: ' +
          ', '.join(f'{counts[k]} {k}' for k in total))
  print('total: ' + ', '.join(f'{total[k]} {k}' for k in total))


if __name__ == '__main__':
  _print_counts()
