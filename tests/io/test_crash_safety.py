"""Crash safety: trainers killed with SIGKILL at any moment lose nothing.

A full-batch trainer (2000 points on a ring, 32 centers that start crowded
on an arc and keep moving for over a hundred steps) checkpoints after every
step (`save_checkpoints_steps=1`, `keep_checkpoint_max=3`) and is killed
with SIGKILL again and again (40 times), each time by a new process that
resumes from what the last one left. Kills are aimed two ways (seeded):
- blocked: the child stops inside its j-th checkpoint save at one of the six
  phases of `checkpoints.save_checkpoint` (see tests/_child.py) and is
  killed there, so every window of a save is hit, several times;
- at random moments: a random time after the child's j-th save, with short
  pauses inside each save that widen its windows.
After every kill: `checkpoints.latest_checkpoint` names a complete checkpoint
(or none, if none was ever finished), and the estimator reads it;
`tf.train.latest_checkpoint` names it too, or the one before it when the
kill fell between a save's renames and its state file's, and
`tf.train.load_variable(model_dir, 'clusters')` reads that; the centers are,
bit for bit, those of an uninterrupted run at the same step; no checkpoint a
trainer reported as saved is lost; `global_step` never goes backwards; the lock file the dead
trainer left does not stop the next one, which resumes at the next step. At
the end, a last trainer finishes the run with the centers of the
uninterrupted run, and no temporary file or lock is left.

Mini-batch training over an array read in slices (`batch_size`), and
Hamerly's full-batch steps, are killed a few times each too: every
checkpoint, and the end of the resumed run, holds the centers of their
uninterrupted runs.

The trainers are forked from one process that imported TensorFlow once
(tests/_child.py), so a kill costs a fraction of a second, not an import.
"""

import collections
import os
import re
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering
from kmeans_estimator.io import checkpoints
from kmeans_estimator.io import locking

import _child

# Trainers are forked from a server process, and the lock is an flock;
# subprocesses and long runs are left out of the fast subset
# (-m 'not slow').
pytestmark = [
    pytest.mark.skipif(not hasattr(os, 'fork') or locking.fcntl is None,
                       reason='needs os.fork and fcntl (POSIX)'),
    pytest.mark.slow,
]

_SEED = 7
_N = 2000
_K = 32
_TOTAL_STEPS = 150
_KEEP = 3
_BLOCKED_KILLS_PER_PHASE = 4
_RANDOM_KILLS = 16
_DATA = '.data-00000-of-00001'
# Every trainer: points on a ring, centers starting crowded on an arc, which
# keep moving for over a hundred steps (see _child.clumped_centers).
_JOB = {'seed': _SEED, 'n': _N, 'k': _K, 'on_ring': True,
        'max_steps': _TOTAL_STEPS}


@pytest.fixture(scope='module')
def server(tmp_path_factory):
  log = tmp_path_factory.mktemp('fork_server') / 'stderr.log'
  forks = _child.ForkServer(str(log))
  yield forks
  forks.close()


@pytest.fixture(scope='module')
def reference(server, tmp_path_factory):
  """Centers after each step of an uninterrupted run: {step: (k, d)}."""
  model_dir = tmp_path_factory.mktemp('reference') / 'model'
  pid = server.start('train', model_dir=str(model_dir), keep=0, **_JOB)
  status, events = server.wait_exit(pid)
  assert status == 0, events
  assert [int(e.value) for e in events if e.kind == 'saved'] == list(
      range(1, _TOTAL_STEPS + 1))
  return {
      step: checkpoints.read_checkpoint(
          str(model_dir / f'model.ckpt-{step}'))['clusters']
      for step in range(1, _TOTAL_STEPS + 1)
  }


def _step(prefix):
  return None if prefix is None else int(prefix.rsplit('-', 1)[1])


def _temp_files(model_dir):
  return sorted(n for n in os.listdir(model_dir)
                if '_temp_' in n or n.startswith('checkpoint.tmp'))


def _check_disk_after_blocked_kill(model_dir, phase, step):
  """The files on disk are those of a save killed in `phase` of `step`."""
  names = set(os.listdir(model_dir))
  latest = _step(tf.train.latest_checkpoint(str(model_dir)))
  before = step - 1 if step > 1 else None
  temp = [n for n in names if n.startswith(f'model.ckpt-{step}_temp_')]
  if phase == 'save_v2':
    assert latest == before and not temp, (names, latest)
  elif phase == 'rename_data':
    assert latest == before, latest
    assert {n.rsplit('.', 1)[-1] for n in temp} >= {'index',
                                                   'data-00000-of-00001'}
  elif phase == 'rename_index':
    assert latest == before, latest
    assert f'model.ckpt-{step}{_DATA}' in names
    assert [n for n in temp if n.endswith('.index')], names
  elif phase == 'rename_state':
    assert latest == before, latest
    assert {f'model.ckpt-{step}{_DATA}', f'model.ckpt-{step}.index'} <= names
    assert any(n.startswith('checkpoint.tmp') for n in names), names
  else:  # state_written, delete_old: the new checkpoint is the latest.
    assert latest == step, (latest, step)
    state = tf.train.get_checkpoint_state(str(model_dir))
    assert len(state.all_model_checkpoint_paths) <= _KEEP


def _where(model_dir, saved_any):
  """Where a kill at a random moment landed, judged from the files."""
  if not saved_any and tf.train.latest_checkpoint(str(model_dir)) is None:
    return 'before the first checkpoint'
  if _temp_files(model_dir):
    return 'inside a checkpoint write'
  return 'between checkpoint writes'


def _kill_plan(rng):
  """[(target, saves before it)], shuffled: blocked phases and random ones."""
  plan = [(phase, int(rng.integers(1, 4))) for phase in _child.PHASES
          for _ in range(_BLOCKED_KILLS_PER_PHASE)]
  plan += [('random', int(rng.integers(0, 3))) for _ in range(_RANDOM_KILLS)]
  return [plan[i] for i in rng.permutation(len(plan))]


def _kill_one(server, model_dir, target, saves, rng, job=None):
  """Starts a trainer, kills it as planned; returns (events, blocked step)."""
  random_kill = target == 'random'
  pid = server.start(
      'train', model_dir=str(model_dir), keep=_KEEP, **(job or _JOB),
      block_at=None if random_kill else [target, saves],
      phase_sleep=0.01 if random_kill else 0.0)
  events, blocked_step, seen = [], None, 0
  if random_kill and saves == 0:  # Any moment from the start on.
    time.sleep(rng.uniform(0.0, 0.4))
  while not (random_kill and saves == 0):
    event = server.next_event(timeout=60)
    assert event.kind not in ('exit', 'error', 'done'), (
        f'the trainer ended before it was killed: {event}; see '
        f'{server.log_path}')
    events.append(event)
    if random_kill and event.kind == 'saved':
      seen += 1
    if random_kill and seen >= saves:
      time.sleep(rng.uniform(0.0, 0.15))
      break
    if event.kind == 'phase' and event.value.split()[0] == target:
      seen += 1
      if seen == saves:  # The child now waits inside this phase.
        blocked_step = int(event.value.split()[1])
        break
  os.kill(pid, signal.SIGKILL)
  status, more = server.wait_exit(pid)
  assert status == -signal.SIGKILL, (status, more)
  return pid, events + more, blocked_step


def test_sigkill_at_random_moments_loses_nothing(server, reference,
                                                 tmp_path):
  rng = np.random.default_rng(_SEED)
  model_dir = tmp_path / 'model'
  latest_step = 0  # Step of the latest checkpoint after the last kill.
  announced = 0  # Highest step a trainer reported as saved.
  landed = collections.Counter()
  for target, saves in _kill_plan(rng):
    pid, events, blocked_step = _kill_one(server, model_dir, target, saves,
                                          rng)
    saved = [int(e.value) for e in events if e.kind == 'saved']
    if saved:
      # The new trainer resumed from the latest checkpoint.
      assert saved[0] == latest_step + 1, (target, saved, latest_step)
      announced = max(announced, saved[-1])
    if blocked_step is not None:
      _check_disk_after_blocked_kill(model_dir, target, blocked_step)
      landed[f'blocked in {target}'] += 1
    else:
      landed[_where(model_dir, announced > 0)] += 1

    if any(e.kind in ('phase', 'saved') for e in events):  # It trained.
      # The dead trainer's lock file is left behind, naming it...
      lock_note = (model_dir / locking.LOCK_FILENAME).read_text()
      assert lock_note.startswith(f'pid {pid} '), lock_note
    # ... and at most the files of the one save it was in are left over.
    assert len({re.match(r'model\.ckpt-\d+_temp_[0-9a-f]+', n)[0]
                for n in _temp_files(model_dir)
                if '_temp_' in n}) <= 1, _temp_files(model_dir)

    # The library's latest checkpoint: the state file's, or a complete one
    # that a kill between the renames and the state file's left unnamed.
    latest = checkpoints.latest_checkpoint(str(model_dir))
    if latest is None:
      assert announced == 0 and latest_step == 0
      continue
    step = _step(latest)
    assert step >= announced, 'a checkpoint reported as saved was lost'
    assert step >= latest_step, 'global_step went backwards'
    assert os.path.exists(latest + '.index')
    assert os.path.exists(latest + _DATA)
    values = checkpoints.read_checkpoint(latest)
    assert values['global_step'] == step
    reader = KMeansClustering(num_clusters=_K, model_dir=str(model_dir))
    np.testing.assert_array_equal(reader.cluster_centers(), reference[step])
    # TensorFlow's readers follow the state file: at most that one save
    # behind, and always a complete checkpoint.
    tf_step = _step(tf.train.latest_checkpoint(str(model_dir)))
    assert tf_step in (step, step - 1 if step > 1 else None), (tf_step, step)
    if tf_step is not None:
      centers = tf.train.load_variable(str(model_dir), 'clusters')
      np.testing.assert_array_equal(centers, reference[tf_step])
    latest_step = step

  kills = sum(landed.values())
  print(f'\n{kills} SIGKILLs survived; landed: {dict(landed)}; last '
        f'checkpoint before the final run: step {latest_step}')
  assert kills == len(_child.PHASES) * _BLOCKED_KILLS_PER_PHASE + (
      _RANDOM_KILLS)
  assert latest_step < _TOTAL_STEPS, 'the kills came too late to matter'

  # A last trainer finishes the run: the centers of the uninterrupted run.
  pid = server.start('train', model_dir=str(model_dir), keep=_KEEP, **_JOB)
  status, events = server.wait_exit(pid)
  assert status == 0, events
  saved = [int(e.value) for e in events if e.kind == 'saved']
  assert saved == list(range(latest_step + 1, _TOTAL_STEPS + 1))
  assert tf.train.latest_checkpoint(str(model_dir)) == str(
      model_dir / f'model.ckpt-{_TOTAL_STEPS}')
  np.testing.assert_array_equal(
      tf.train.load_variable(str(model_dir), 'clusters'),
      reference[_TOTAL_STEPS])
  assert tf.train.load_variable(str(model_dir), 'global_step') == (
      _TOTAL_STEPS)
  # Nothing is left over: no temporary file, no lock file, and every
  # checkpoint the state file lists is complete.
  assert not _temp_files(model_dir)
  assert not (model_dir / locking.LOCK_FILENAME).exists()
  state = tf.train.get_checkpoint_state(str(model_dir))
  assert len(state.all_model_checkpoint_paths) == _KEEP
  for prefix in state.all_model_checkpoint_paths:
    assert checkpoints.read_checkpoint(prefix)['global_step'] == _step(prefix)


def test_the_reference_run_moves_the_centers_until_late(reference):
  # Otherwise comparing with it at each step would prove little.
  moved = [step for step in range(2, _TOTAL_STEPS + 1)
           if not np.array_equal(reference[step], reference[step - 1])]
  assert len(moved) >= 120, len(moved)
  assert all(np.isfinite(c).all() for c in reference.values())


# Mini-batch steps over an array read in slices (resumed at the slice where
# the killed trainer stopped), and Hamerly's full-batch steps (bounds
# carried from step to step, rebuilt by the resumed trainer).
_OTHER_STEPS = 40
_OTHER_JOBS = {
    'mini_batch': dict(_JOB, max_steps=_OTHER_STEPS, use_mini_batch=True,
                       batch_size=150),
    'hamerly': dict(_JOB, max_steps=_OTHER_STEPS, algorithm='hamerly'),
}


@pytest.mark.parametrize('mode', sorted(_OTHER_JOBS))
def test_killed_and_resumed_mini_batch_and_hamerly_equal_uninterrupted(
    mode, server, tmp_path):
  job = _OTHER_JOBS[mode]
  reference_dir = tmp_path / 'reference'
  pid = server.start('train', model_dir=str(reference_dir), keep=0, **job)
  status, events = server.wait_exit(pid)
  assert status == 0, events
  reference = {
      step: checkpoints.read_checkpoint(
          str(reference_dir / f'model.ckpt-{step}'))['clusters']
      for step in range(1, _OTHER_STEPS + 1)}
  # 2000 rows in slices of 150: 14 per pass; the kills land mid-pass.
  rng = np.random.default_rng(_SEED)
  model_dir = tmp_path / 'model'
  latest_step = 0
  for target in ('state_written', 'random', 'rename_data', 'random',
                 'delete_old'):
    _kill_one(server, model_dir, target, int(rng.integers(2, 5)), rng, job)
    latest = tf.train.latest_checkpoint(str(model_dir))
    if latest is None:
      continue
    step = _step(latest)
    assert step >= latest_step
    np.testing.assert_array_equal(
        tf.train.load_variable(str(model_dir), 'clusters'), reference[step])
    latest_step = step
  assert 0 < latest_step < _OTHER_STEPS
  pid = server.start('train', model_dir=str(model_dir), keep=_KEEP, **job)
  status, events = server.wait_exit(pid)
  assert status == 0, events
  np.testing.assert_array_equal(
      tf.train.load_variable(str(model_dir), 'clusters'),
      reference[_OTHER_STEPS])
  assert not np.array_equal(reference[_OTHER_STEPS], reference[latest_step])
