"""Training progress and the training defaults of the command line.

Evidence: on a terminal (a stream whose isatty() is True) progress is one
line redrawn in place and ended by a newline; elsewhere a line comes at the
first step, every --progress_every_secs (a fake clock) and at the last step;
six equal well-separated blobs, written blob after blob, trained with no
flag but --model_dir and --num_clusters give six clusters of 1000.
"""

import io
import re

import numpy as np

from cli_cases import PROGRESS_LINE, summary_value
from helpers import run_cli
from kmeans_estimator.cli import commands


class _Terminal(io.StringIO):

  def isatty(self):
    return True


class _Values:

  def __init__(self, step):
    self.results = (step, 1000.0 / step, 100)


def _drive(out, every_secs, times, steps=None):
  """Runs the Progress hook over steps 1.. at the clock's `times`."""
  clock = iter([0.0, *times])
  progress = commands.Progress(out, every_secs, steps=steps,
                               clock=lambda: next(clock))
  progress.begin()
  for step in range(1, len(times) + 1):
    progress.before_run(None)
    progress.after_run(None, _Values(step))
  progress.end()
  progress.close()  # Again, as train() does after an error: a no-op.
  return out.getvalue()


def test_off_a_terminal_a_line_comes_every_few_seconds_and_at_the_end():
  # Steps every 4 s; a line at most every 10 s, then the last step's.
  text = _drive(io.StringIO(), 10, [4.0 * step for step in range(1, 9)],
                steps=8)
  assert '\r' not in text
  assert re.findall(r'^step +(\d+)/8 ', text, re.M) == ['1', '4', '7', '8']
  assert all(re.match(PROGRESS_LINE, line) for line in text.splitlines())


def test_off_a_terminal_every_secs_0_prints_every_step():
  text = _drive(io.StringIO(), 0, [0.001 * step for step in range(1, 6)])
  assert re.findall(r'^step +(\d+) ', text, re.M) == ['1', '2', '3', '4', '5']


def test_on_a_terminal_one_line_is_redrawn_in_place():
  # Steps every 0.03 s: redrawn at most every 0.1 s, whatever every_secs.
  text = _drive(_Terminal(), 0, [0.03 * step for step in range(1, 11)],
                steps=10)
  assert text.endswith('\n') and text.count('\n') == 1
  redraws = text.rstrip('\n').split('\r')[1:]
  assert 2 <= len(redraws) < 10
  assert [re.match(r'step +(\d+)/10 ', r).group(1) for r in redraws][-1] == (
      '10')
  # A shorter line blanks what a longer one left.
  assert len({len(redraw) for redraw in redraws[1:]}) <= 2


def test_train_on_a_terminal_redraws_progress_then_prints_the_summary(
    tmp_path, monkeypatch):
  rng = np.random.default_rng(0)
  np.save(tmp_path / 'p.npy', rng.normal(size=(200, 2)).astype(np.float32))
  terminal = _Terminal()
  monkeypatch.setattr('sys.stdout', terminal)
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 '--num_clusters=3', '--steps=4', '--relative_tolerance=0',
                 tmp_path / 'p.npy') == 0
  text = terminal.getvalue()
  progress, summary = text.split('\nTrained 4 steps in ')
  assert progress.startswith('\rstep      1/4  loss')
  assert re.search(r'\rstep +4/4 +loss \S+ +relative change', progress)
  assert '\n' not in progress
  assert '(reached --steps or --max_steps)' in summary


def test_default_flags_find_six_equal_blobs_written_one_after_another(
    tmp_path, capsys):
  rng = np.random.default_rng(0)
  centers = np.array([[0, 0], [10, 0], [20, 0], [0, 10], [10, 10], [20, 10]])
  points = np.concatenate([center + rng.normal(size=(1000, 2))
                           for center in centers]).astype(np.float32)
  np.save(tmp_path / 'blobs.npy', points)
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 '--num_clusters=6', tmp_path / 'blobs.npy') == 0
  out = capsys.readouterr().out
  sizes = re.search(r'cluster sizes: +\[([\d, ]+)\]', out).group(1)
  sizes = [int(size) for size in sizes.split(',')]
  # Within 3% of 1000 each (the legacy defaults, one mini-batch pass from
  # random centers, gave sizes such as [1685, 49, 1604, 1640, 3377, 1645]).
  assert len(sizes) == 6 and all(abs(size - 1000) <= 30 for size in sizes)
  assert summary_value(out, r'iterations \(global step\)') != '300'
