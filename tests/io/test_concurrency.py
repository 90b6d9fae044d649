"""Concurrent use of one model_dir: one trainer at a time, readers any time.

`KMeansClustering.train` holds an exclusive `flock` on
`model_dir/.kmeans_estimator.lock` (kmeans_estimator/locking.py). Evidence:
- a second trainer, in another process (the Python API or the command line)
  or in this one, fails at once with an error naming the directory and the
  holder, and writes nothing; the first trainer is not disturbed;
- a trainer killed with SIGKILL leaves its lock file behind but not the
  lock: the next trainer starts at once;
- threads racing for the lock on fresh directories never hold it together;
- the lock file never confuses `tf.train.latest_checkpoint`,
  `list_variables` or the deletion of old checkpoints, and a normal release
  (even after a failed `train`) removes it;
- readers (`cluster_centers`, `tf.train.load_variable`, `predict`,
  `evaluate`) work in a loop in this process while a child trains and
  checkpoints every step, and every read is a consistent checkpoint.
Other processes are forked from tests/_child.py (one TensorFlow import).
"""

import errno
import os
import re
import signal
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator import SessionRunHook
from kmeans_estimator.io import checkpoints
from kmeans_estimator.io import locking

import _child
import oracles
from helpers import run_cli

# Trainers are forked from a server process, and the lock is an flock.
pytestmark = pytest.mark.skipif(
    not hasattr(os, 'fork') or locking.fcntl is None,
    reason='needs os.fork and fcntl (POSIX)')

_K = 4
_POINTS = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)


@pytest.fixture(scope='module')
def server(tmp_path_factory):
  log = tmp_path_factory.mktemp('fork_server') / 'stderr.log'
  forks = _child.ForkServer(str(log))
  yield forks
  forks.close()


def _estimator(model_dir, **kwargs):
  kwargs = {'num_clusters': _K, 'use_mini_batch': False, 'seed': 0, **kwargs}
  return KMeansClustering(model_dir=str(model_dir), **kwargs)


def _locked(model_dir):
  return (rf"`model_dir` is locked: .* is training into it \(pid \d+ .*"
          rf"Received: model_dir='{re.escape(str(model_dir))}'")


def _wait_for(server, pid, kind):
  while True:
    event = server.next_event(timeout=60)
    assert event.kind not in ('error', 'exit'), event
    if event.pid == pid and event.kind == kind:
      return event


# ------------------------------------------------------ across processes
@pytest.mark.slow
def test_a_second_trainer_is_refused_and_the_first_finishes(
    server, tmp_path, capsys):
  model_dir, release = tmp_path / 'model', tmp_path / 'release'
  pid = server.start('train', model_dir=str(model_dir), k=_K, n=200,
                     max_steps=5, hold_file=str(release))
  _wait_for(server, pid, 'holding')  # Trained step 1, holds the lock.
  before = oracles.snapshot(model_dir)

  with pytest.raises(locking.ModelDirLockedError,
                     match=_locked(model_dir)) as info:
    _estimator(model_dir).train(lambda: _POINTS, steps=1)
  assert f'pid {pid} on host ' in str(info.value)
  assert 'another process' in str(info.value)
  assert isinstance(info.value, OSError)
  np.save(tmp_path / 'points.npy', _POINTS)
  assert run_cli('train', f'--model_dir={model_dir}', f'--num_clusters={_K}',
                  '--steps=1', tmp_path / 'points.npy') == 1
  assert re.search(r'^kmeans-estimator train: error: `model_dir` is locked: '
                   rf'another process .*pid {pid} '
                   rf'.*{re.escape(str(model_dir))}',
                   capsys.readouterr().err, re.M)
  # The refused trainers wrote nothing; the lock note names the holder.
  assert oracles.snapshot(model_dir) == before
  assert (model_dir / locking.LOCK_FILENAME).read_text().startswith(
      f'pid {pid} ')

  release.touch()
  status, events = server.wait_exit(pid)
  assert status == 0, events
  assert events[-1].kind == 'done' and events[-1].value == '5'
  assert not (model_dir / locking.LOCK_FILENAME).exists()
  # Now the directory is free.
  _estimator(model_dir).train(lambda: _child.points(0, 200, 2), steps=1)
  assert tf.train.load_variable(str(model_dir), 'global_step') == 6


@pytest.mark.slow
def test_a_killed_trainer_does_not_leave_the_lock_stuck(server, tmp_path):
  model_dir, release = tmp_path / 'model', tmp_path / 'never'
  pid = server.start('train', model_dir=str(model_dir), k=_K, n=200,
                     max_steps=5, hold_file=str(release))
  _wait_for(server, pid, 'holding')
  os.kill(pid, signal.SIGKILL)
  status, _ = server.wait_exit(pid)
  assert status == -signal.SIGKILL
  # Its note is left behind, but the lock died with it.
  lock_file = model_dir / locking.LOCK_FILENAME
  assert lock_file.read_text().startswith(f'pid {pid} ')
  start = time.monotonic()
  estimator = _estimator(model_dir)
  estimator.train(lambda: _POINTS, steps=2)
  assert time.monotonic() - start < 30  # No waiting for a timeout.
  assert estimator.get_variable_value('global_step') == 2
  assert not lock_file.exists()


@pytest.mark.slow
def test_readers_work_while_a_trainer_writes(server, tmp_path):
  """Reads in a loop while a child checkpoints every step (keeping two)."""
  reference_dir, model_dir = tmp_path / 'reference', tmp_path / 'model'
  job = {'n': 2000, 'k': 32, 'on_ring': True, 'max_steps': 120}
  pid = server.start('train', model_dir=str(reference_dir), keep=0, **job)
  assert server.wait_exit(pid)[0] == 0
  reference = {step: tf.train.load_variable(
      str(reference_dir / f'model.ckpt-{step}'), 'clusters')
               for step in range(1, 121)}
  data = _child.ring(0, 2000)

  # Short pauses inside each save (a test hook of _child.py) keep the writes
  # going for a few seconds.
  pid = server.start('train', model_dir=str(model_dir), keep=2,
                     phase_sleep=0.004, **job)
  _wait_for(server, pid, 'saved')
  reader = KMeansClustering(num_clusters=32, model_dir=str(model_dir))
  steps_seen, reads, last_step = set(), 0, 0
  exited = None
  while exited is None:
    # Every read is one complete checkpoint: its centers are the reference
    # run's at its global_step, and steps never go backwards.
    values = checkpoints.read_checkpoint(str(model_dir))
    step = int(values['global_step'])
    np.testing.assert_array_equal(values['clusters'], reference[step])
    centers = reader.cluster_centers()
    assert any(np.array_equal(centers, reference[s])
               for s in range(step, 121))
    loaded = tf.train.load_variable(str(model_dir), 'clusters')
    assert loaded.shape == (32, 2) and np.isfinite(loaded).all()
    assert step >= last_step
    last_step = step
    if reads % 4 == 0:  # The slower readers, every fourth round.
      batch = next(reader.predict(lambda: data[:500],
                                  yield_single_examples=False))
      np.testing.assert_array_equal(batch['cluster_index'],
                                    batch['all_distances'].argmin(axis=1))
      metrics = reader.evaluate(lambda: data)
      assert metrics['global_step'] >= last_step
      assert np.isfinite(metrics['inertia'])
      last_step = metrics['global_step']
    steps_seen.add(step)
    reads += 1
    while exited is None:
      try:
        event = server.next_event(timeout=0.001)
      except TimeoutError:
        break
      assert event.kind != 'error', event
      if event.kind == 'exit' and event.pid == pid:
        exited = int(event.value)
  assert exited == 0
  print(f'\n{reads} rounds of reads while the trainer wrote; checkpoints '
        f'seen at {len(steps_seen)} different steps')
  assert reads >= 30
  assert len(steps_seen) >= 10, steps_seen  # The reads overlapped the writes.


# ------------------------------------------------------- in one process
class _CallDuringTraining(SessionRunHook):
  """Calls `fn()` once, after the first training step, and keeps its outcome."""

  def __init__(self, fn):
    self._fn = fn
    self.outcome = None

  def after_run(self, run_context, run_values):
    if self.outcome is None:
      try:
        self.outcome = ('returned', self._fn())
      except Exception as e:  # pylint: disable=broad-except
        self.outcome = ('raised', e)


def test_two_estimators_in_one_process_exclude_each_other(tmp_path):
  model_dir = tmp_path / 'model'
  other = _estimator(model_dir)
  hook = _CallDuringTraining(
      lambda: other.train(lambda: _POINTS, steps=1))
  _estimator(model_dir).train(lambda: _POINTS, steps=2, hooks=[hook])
  kind, error = hook.outcome
  assert kind == 'raised' and isinstance(error, locking.ModelDirLockedError)
  assert re.search(_locked(model_dir), str(error))
  assert 'another estimator or thread of this process' in str(error)
  assert tf.train.load_variable(str(model_dir), 'global_step') == 2
  other.train(lambda: _POINTS, steps=1)  # Free again.
  assert tf.train.load_variable(str(model_dir), 'global_step') == 3


def test_the_lock_file_does_not_confuse_tensorflow(tmp_path):
  model_dir = tmp_path / 'model'
  config = RunConfig(save_checkpoints_steps=1, keep_checkpoint_max=2)
  _estimator(model_dir, config=config).train(lambda: _POINTS, steps=3)
  seen = {}

  def look():
    seen['files'] = sorted(os.listdir(model_dir))
    seen['latest'] = tf.train.latest_checkpoint(str(model_dir))
    seen['variables'] = tf.train.list_variables(str(model_dir))
    seen['glob'] = tf.io.gfile.glob(str(model_dir / 'model.ckpt*'))

  hook = _CallDuringTraining(look)
  _estimator(model_dir, config=config).train(lambda: _POINTS, steps=4,
                                             hooks=[hook])
  assert hook.outcome[0] == 'returned', hook.outcome
  assert locking.LOCK_FILENAME in seen['files']  # Held during training.
  # (after step 4, before its checkpoint).
  assert seen['latest'] == str(model_dir / 'model.ckpt-3')
  assert [name for name, _ in seen['variables']] == [
      'clusters', 'distance_metric', 'global_step', 'initialized']
  assert not [p for p in seen['glob'] if 'lock' in os.path.basename(p)]
  # keep_checkpoint_max deleted old checkpoints, never the lock; the release
  # removed it.
  assert sorted(os.listdir(model_dir)) == sorted(
      ['checkpoint', 'model.ckpt-6.index', 'model.ckpt-6.data-00000-of-00001',
       'model.ckpt-7.index', 'model.ckpt-7.data-00000-of-00001'] +
      [n for n in os.listdir(model_dir) if n.startswith('events.out')])


def test_a_failed_train_releases_the_lock_and_leaves_no_trace(tmp_path):
  fresh = tmp_path / 'a' / 'b' / 'model'  # The lock creates all three.
  with pytest.raises(ValueError, match='NaN or Inf'):
    _estimator(fresh).train(lambda: _POINTS * np.nan, steps=1)
  assert not (tmp_path / 'a').exists()

  trained = tmp_path / 'trained'
  _estimator(trained).train(lambda: _POINTS, steps=1)
  before = oracles.snapshot(trained)
  with pytest.raises(ValueError, match='NaN or Inf'):
    _estimator(trained).train(lambda: _POINTS * np.nan, steps=1)
  assert oracles.snapshot(trained) == before
  _estimator(trained).train(lambda: _POINTS, steps=1)
  assert tf.train.load_variable(str(trained), 'global_step') == 2


def test_a_stale_lock_file_is_taken_over(tmp_path):
  model_dir = tmp_path / 'model'
  model_dir.mkdir()
  (model_dir / locking.LOCK_FILENAME).write_text(
      'pid 999999 on host gone since 1999-12-31 23:59:59 UTC\n')
  # And half-written files of a save that was killed.
  stale = ['model.ckpt-3_temp_' + 'a' * 32 + '.index',
           'model.ckpt-3_temp_' + 'a' * 32 + '.data-00000-of-00001.tempstate1',
           'checkpoint.tmp' + 'b' * 32]
  for name in stale:
    (model_dir / name).write_bytes(b'partial')
  keep = ['model.ckpt-3_temp_notes.txt', 'checkpoint.tmp']  # Not ours.
  for name in keep:
    (model_dir / name).write_bytes(b'user file')
  _estimator(model_dir).train(lambda: _POINTS, steps=1)
  names = set(os.listdir(model_dir))
  assert not names & set(stale)
  assert set(keep) <= names
  assert locking.LOCK_FILENAME not in names


def _plant_symlink(lock, victim):
  victim.write_text('precious')
  lock.symlink_to(victim)


def _plant_dangling_symlink(lock, victim):
  lock.symlink_to(victim)  # O_CREAT through it would create the victim.


def _plant_hard_link(lock, victim):
  victim.write_text('precious')
  os.link(victim, lock)


def _plant_fifo(lock, victim):
  del victim
  os.mkfifo(lock)


def _plant_directory(lock, victim):
  del victim
  os.mkdir(lock)


def _plant_socket(lock, victim):
  del victim
  with socket.socket(socket.AF_UNIX) as server:
    server.bind(str(lock))


@pytest.mark.parametrize('plant,message', [
    (_plant_symlink, r'is a symbolic link to .*victim'),
    (_plant_dangling_symlink, r'is a symbolic link to .*victim'),
    (_plant_hard_link, r'is a hard link to a file with 2 names'),
    (_plant_fifo, r'is not a regular file'),
    (_plant_directory, r'is a directory'),
    (_plant_socket, r'is not a regular file'),
], ids=['symlink', 'dangling_symlink', 'hard_link', 'fifo', 'directory',
        'socket'])
def test_a_link_planted_at_the_lock_path_is_refused_and_its_target_untouched(
    tmp_path, plant, message):
  model_dir = tmp_path / 'model'
  _estimator(model_dir).train(lambda: _POINTS, steps=1)
  victim = tmp_path / 'victim'
  plant(model_dir / locking.LOCK_FILENAME, victim)
  before = oracles.snapshot(model_dir)
  victim_before = victim.read_bytes() if victim.exists() else None
  with pytest.raises(checkpoints.CheckpointWriteError,
                     match=rf"lock file '.*{re.escape(locking.LOCK_FILENAME)}'"
                     rf" {message}.*Received: model_dir="):
    _estimator(model_dir).train(lambda: _POINTS, steps=1)
  assert oracles.snapshot(model_dir) == before
  assert (victim.read_bytes() if victim.exists() else None) == victim_before
  # Removing it is the fix.
  lock = model_dir / locking.LOCK_FILENAME
  if lock.is_dir() and not lock.is_symlink():
    lock.rmdir()
  else:
    os.unlink(lock)
  _estimator(model_dir).train(lambda: _POINTS, steps=1)
  assert tf.train.load_variable(str(model_dir), 'global_step') == 2


def test_threads_racing_for_the_lock_never_hold_it_together(tmp_path):
  holders, most, acquired, errors = [0], [0], [0], []
  count_lock = threading.Lock()

  def contend(model_dir, barrier):
    barrier.wait()
    for _ in range(20):
      try:
        with locking.model_dir_lock(model_dir):
          with count_lock:
            holders[0] += 1
            acquired[0] += 1
            most[0] = max(most[0], holders[0])
          time.sleep(0.0005)
          with count_lock:
            holders[0] -= 1
      except locking.ModelDirLockedError:
        pass
      except Exception as error:  # pylint: disable=broad-except
        # Seen: a directory that another thread created and removed again
        # between our mkdir and our check was called "not a directory".
        errors.append(repr(error))

  for round_ in range(5):
    # A fresh directory each round: taking the lock creates it, releasing
    # it removes it again, the racy case.
    model_dir = str(tmp_path / f'round{round_}' / 'model')
    barrier = threading.Barrier(6)
    threads = [threading.Thread(target=contend, args=(model_dir, barrier))
               for _ in range(6)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join(timeout=60)
    # Whoever created the directory removes it if it is empty then; a
    # directory created by one thread and released by another may stay.
    assert not os.path.exists(model_dir) or not os.listdir(model_dir)
  assert not errors
  assert most[0] == 1
  assert acquired[0] >= 5


def test_a_directory_created_and_removed_by_another_trainer_is_made_again(
    tmp_path, monkeypatch):
  # Between our mkdir (FileExistsError: another trainer made it) and our
  # check, that trainer released the lock and removed the directory.
  model_dir = str(tmp_path / 'fresh' / 'model')
  real_mkdir, raced = os.mkdir, []

  def mkdir(path, *args, **kwargs):
    if path == model_dir and not raced:
      raced.append(path)
      raise FileExistsError(path)
    return real_mkdir(path, *args, **kwargs)

  monkeypatch.setattr(locking.os, 'mkdir', mkdir)
  with locking.model_dir_lock(model_dir):
    assert os.path.isdir(model_dir)
  assert raced == [model_dir]


def test_unlockable_model_dirs_run_without_a_lock(tmp_path, caplog):
  with locking.model_dir_lock('ram://kmeans_estimator_test/model'):
    with locking.model_dir_lock('ram://kmeans_estimator_test/model'):
      pass  # No lock at all for URLs: nothing to refuse.
  assert 'without a lock' in caplog.text

  class Strategy:  # A non-chief worker of a tf.distribute run.

    class extended:  # pylint: disable=invalid-name
      should_checkpoint = False

  class Worker:
    model_dir = str(tmp_path / 'model')
    config = type('Config', (), {'train_distribute': Strategy()})()

    @locking.holds_model_dir_lock
    def train(self):
      return os.path.exists(os.path.join(self.model_dir,
                                         locking.LOCK_FILENAME))

  with locking.model_dir_lock(Worker.model_dir):  # The chief holds it.
    assert Worker().train()  # The worker is not refused.


def test_a_file_system_without_flock_trains_unlocked(tmp_path, monkeypatch,
                                                     caplog):
  def no_flock(fd, operation):
    raise OSError(errno.ENOLCK, 'No locks available')

  monkeypatch.setattr(locking.fcntl, 'flock', no_flock)
  model_dir = tmp_path / 'model'
  _estimator(model_dir).train(lambda: _POINTS, steps=1)
  assert 'refuses flock' in caplog.text
  assert sorted(p.name for p in model_dir.iterdir() if 'lock' in p.name) == []
  assert tf.train.load_variable(str(model_dir), 'global_step') == 1


def test_a_reader_starts_over_when_its_checkpoint_is_replaced(tmp_path,
                                                              monkeypatch):
  """A trainer saves a newer checkpoint and deletes the one being opened."""
  model_dir = tmp_path / 'model'
  _estimator(model_dir).train(lambda: _POINTS, steps=1)
  newer = dict(checkpoints.read_checkpoint(str(model_dir)),
               global_step=np.int64(2),
               clusters=np.full((_K, 2), 7.0, np.float32))
  original, opened = tf.train.load_checkpoint, []

  def racing_load_checkpoint(prefix):
    opened.append(os.path.basename(prefix))
    if len(opened) == 1:  # Between finding the latest and opening it:
      checkpoints.save_checkpoint(str(model_dir), 2, newer,
                                  keep_checkpoint_max=1)
    return original(prefix)

  monkeypatch.setattr(tf.train, 'load_checkpoint', racing_load_checkpoint)
  np.testing.assert_array_equal(_estimator(model_dir).cluster_centers(),
                                newer['clusters'])
  assert opened == ['model.ckpt-1', 'model.ckpt-2']
  assert not os.path.exists(model_dir / 'model.ckpt-1.index')
  # A checkpoint named explicitly is not swapped for another one.
  with pytest.raises(ValueError, match=r"model\.ckpt-1' is unreadable.*its "
                                       r'index file .* is missing'):
    checkpoints.read_checkpoint(str(model_dir / 'model.ckpt-1'))


def test_the_lock_note_replaces_a_longer_stale_note_without_emptying_the_file(
    tmp_path, monkeypatch):
  # Emptying a file and writing it again makes ext4 flush it on close,
  # which every train() would wait for when it releases the lock.
  model_dir = tmp_path / 'model'
  model_dir.mkdir()
  (model_dir / locking.LOCK_FILENAME).write_text('stale note ' * 40 + '\n')
  cuts = []
  ftruncate = os.ftruncate
  monkeypatch.setattr(
      os, 'ftruncate', lambda fd, length: cuts.append(length) or ftruncate(
          fd, length))
  hook = _CallDuringTraining(
      lambda: (model_dir / locking.LOCK_FILENAME).read_text())
  _estimator(model_dir).train(lambda: _POINTS, steps=1, hooks=[hook])
  kind, note = hook.outcome
  assert kind == 'returned', hook.outcome
  assert re.fullmatch(rf'pid {os.getpid()} on host .* since .* UTC\n', note)
  assert cuts and 0 not in cuts
