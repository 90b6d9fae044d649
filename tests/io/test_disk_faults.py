"""Disk faults and damaged model_dirs: a clear error, and nothing lost.

- An unwritable `model_dir` (under a file, a file itself, no permission, a
  read-only file system) fails `train` before any step, with a
  `CheckpointWriteError` naming the directory; a checkpoint already there
  still loads.
- A write that fails in the middle of training (disk full inside the bundle
  write, a half-written bundle, a refused rename, a state file that breaks
  off halfway, a directory that turns read-only between checkpoints) stops
  `train` with a `CheckpointWriteError` naming the checkpoint and the
  directory; the previous checkpoint is the latest, complete and readable,
  no temporary file or lock is left, and once the fault is gone a new
  estimator resumes from it and ends where an uninterrupted run ends.
  Failing to delete an old checkpoint is not an error (it is logged).
- A damaged checkpoint (truncated or garbled index or data file, a missing
  file, an unreadable state file, centers that are NaN or of the wrong
  rank) gives a ValueError naming the checkpoint or file and what to do,
  from train, evaluate, predict, cluster_centers and export_saved_model,
  and `model_dir` is left byte for byte as it was: training never silently
  starts over on a damaged directory.
Faults are simulated by wrapping `tf.raw_ops.SaveV2` and `tf.io.gfile` (so
the tests work as root, where chmod does not stop writes); the chmod tests
run only when not root.
"""

import contextlib
import errno
import io
import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig
from kmeans_estimator.io import checkpoints
from kmeans_estimator.io import locking

import oracles
from helpers import run_cli

_K = 3
_POINTS = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
_DATA = '.data-00000-of-00001'
_IS_ROOT = hasattr(os, 'geteuid') and os.geteuid() == 0
_needs_non_root = pytest.mark.skipif(
    _IS_ROOT, reason='running as root: chmod does not stop root from writing '
    '(the simulated faults cover the same paths)')


def _estimator(model_dir, **kwargs):
  kwargs = {'num_clusters': _K, 'use_mini_batch': False, 'seed': 0,
            'config': RunConfig(save_checkpoints_steps=1,
                                keep_checkpoint_max=3), **kwargs}
  return KMeansClustering(model_dir=str(model_dir), **kwargs)


def _temp_files(model_dir):
  return [n for n in os.listdir(model_dir)
          if '_temp_' in n or n.startswith('checkpoint.tmp')]


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """Centers of an uninterrupted run after each of 5 steps."""
  model_dir = tmp_path_factory.mktemp('reference') / 'model'
  _estimator(model_dir, config=RunConfig(
      save_checkpoints_steps=1, keep_checkpoint_max=0)).train(
          lambda: _POINTS, steps=5)
  return {step: tf.train.load_variable(
      str(model_dir / f'model.ckpt-{step}'), 'clusters')
          for step in range(1, 6)}


@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory, reference):
  del reference
  model_dir = tmp_path_factory.mktemp('trained') / 'model'
  _estimator(model_dir).train(lambda: _POINTS, steps=2)
  return model_dir


@pytest.fixture
def trained_copy(trained_dir, tmp_path):
  model_dir = tmp_path / 'model'
  shutil.copytree(trained_dir, model_dir)
  return model_dir


# -------------------------------------------------- unwritable model_dir
def _under_a_file(tmp_path):
  (tmp_path / 'a_file').write_text('not a directory')
  return tmp_path / 'a_file' / 'model', None


def _a_file(tmp_path):
  (tmp_path / 'a_file').write_text('not a directory')
  return tmp_path / 'a_file', None


def _denied(error_number):
  def make(tmp_path, monkeypatch, trained_copy):
    original = os.open

    def refusing_open(path, *args, **kwargs):
      if os.fspath(path).endswith(locking.LOCK_FILENAME):
        raise OSError(error_number, os.strerror(error_number), path)
      return original(path, *args, **kwargs)

    monkeypatch.setattr(os, 'open', refusing_open)
    return trained_copy, None
  return make


@pytest.mark.parametrize('make', [
    pytest.param(lambda tmp_path, mp, tc: _under_a_file(tmp_path),
                 id='under_a_regular_file'),
    pytest.param(lambda tmp_path, mp, tc: _a_file(tmp_path),
                 id='a_regular_file'),
    pytest.param(_denied(errno.EACCES), id='permission_denied_simulated'),
    pytest.param(_denied(errno.EROFS), id='read_only_file_system_simulated'),
])
def test_unwritable_model_dir_fails_before_training(make, tmp_path,
                                                    monkeypatch,
                                                    trained_copy):
  model_dir, _ = make(tmp_path, monkeypatch, trained_copy)
  before = oracles.snapshot(model_dir) if model_dir.is_dir() else None
  estimator = _estimator(model_dir)
  with pytest.raises(checkpoints.CheckpointWriteError) as info:
    estimator.train(lambda: _POINTS, steps=2)
  monkeypatch.undo()
  message = str(info.value)
  assert isinstance(info.value, OSError)
  assert f"Received: model_dir='{model_dir}'" in message
  assert 'must be a directory that this process can create and write to' in (
      message)
  assert 'Nothing was trained or written' in message
  if (tmp_path / 'a_file').exists():
    assert (tmp_path / 'a_file').read_text() == 'not a directory'
  if before is not None:  # The earlier checkpoint is intact and loads.
    assert oracles.snapshot(model_dir) == before
    assert tf.train.load_variable(str(model_dir), 'global_step') == 2
    np.testing.assert_array_equal(estimator.cluster_centers(),
                                  tf.train.load_variable(str(model_dir),
                                                         'clusters'))


@_needs_non_root
def test_read_only_model_dir_fails_before_training(trained_copy):
  before = oracles.snapshot(trained_copy)
  trained_copy.chmod(0o555)
  try:
    with pytest.raises(checkpoints.CheckpointWriteError,
                       match=r'Permission denied.*Received: model_dir='):
      _estimator(trained_copy).train(lambda: _POINTS, steps=1)
    # Readers need no write access.
    assert len(list(_estimator(trained_copy).predict_cluster_index(
        lambda: _POINTS))) == len(_POINTS)
  finally:
    trained_copy.chmod(0o755)
  assert oracles.snapshot(trained_copy) == before


def test_readers_never_write(trained_copy, tmp_path, monkeypatch):
  """Every reader works on a model_dir where any write would fail."""
  before = oracles.snapshot(trained_copy)

  def refuse(*args, **kwargs):
    raise AssertionError(f'a reader tried to write: {args} {kwargs}')

  original_gfile, original_open = tf.io.gfile.GFile, os.open

  def read_only_gfile(name, mode='r'):
    if any(c in mode for c in 'wa+'):
      refuse(name, mode)
    return original_gfile(name, mode)

  def read_only_open(path, flags, *args, **kwargs):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
      if str(trained_copy) in os.fspath(path):
        refuse(path, flags)
    return original_open(path, flags, *args, **kwargs)

  for name in ('rename', 'remove', 'makedirs', 'mkdir', 'rmtree', 'copy'):
    monkeypatch.setattr(tf.io.gfile, name, refuse)
  monkeypatch.setattr(tf.raw_ops, 'SaveV2', refuse)
  monkeypatch.setattr(tf.io.gfile, 'GFile', read_only_gfile)
  monkeypatch.setattr(os, 'open', read_only_open)
  estimator = _estimator(trained_copy)
  assert estimator.cluster_centers().shape == (_K, 2)
  assert estimator.evaluate(lambda: _POINTS)['global_step'] == 2
  assert np.isfinite(estimator.score(lambda: _POINTS))
  assert len(list(estimator.predict(lambda: _POINTS))) == len(_POINTS)
  assert len(list(estimator.transform(lambda: _POINTS))) == len(_POINTS)
  assert estimator.get_variable_names()
  monkeypatch.undo()
  assert oracles.snapshot(trained_copy) == before


# --------------------------------------------- a write that fails midway
class _Fault:
  """A file-system fault, armed by a saving listener after step `after`."""

  def __init__(self, monkeypatch, install, after=2):
    self.armed = False
    self._after = after
    install(self, monkeypatch)

  # The saving-listener protocol.
  def begin(self):
    pass

  def before_save(self, session, global_step):
    pass

  def after_save(self, session, global_step):
    if global_step == self._after:
      self.armed = True

  def end(self, session, global_step):
    pass


def _disk_full_in_save_v2(fault, monkeypatch):
  original = tf.raw_ops.SaveV2

  def save_v2(**kwargs):
    if fault.armed:
      raise tf.errors.ResourceExhaustedError(None, None,
                                             'No space left on device')
    return original(**kwargs)

  monkeypatch.setattr(tf.raw_ops, 'SaveV2', save_v2)


def _half_written_bundle(fault, monkeypatch):
  original = tf.raw_ops.SaveV2

  def save_v2(**kwargs):
    result = original(**kwargs)
    if fault.armed:  # The data file breaks off halfway; then the disk fails.
      data = pathlib.Path(os.fspath(kwargs['prefix']) + _DATA)
      content = data.read_bytes()
      data.write_bytes(content[:len(content) // 2])
      raise tf.errors.DataLossError(None, None, 'I/O error while writing')
    return result

  monkeypatch.setattr(tf.raw_ops, 'SaveV2', save_v2)


def _rename_denied(suffix):
  def install(fault, monkeypatch):
    original = tf.io.gfile.rename

    def rename(src, dst, overwrite=False):
      if fault.armed and os.fspath(dst).endswith(suffix):
        raise tf.errors.PermissionDeniedError(None, None,
                                              f'{dst}; Permission denied')
      return original(src, dst, overwrite)

    monkeypatch.setattr(tf.io.gfile, 'rename', rename)
  return install


def _state_file_breaks_off(fault, monkeypatch):
  original = tf.io.gfile.GFile

  class BreakingGFile(original):

    def write(self, content):
      if fault.armed and os.path.basename(self.name).startswith(
          'checkpoint.tmp'):
        super().write(content[:len(content) // 2])
        raise OSError(errno.ENOSPC, 'No space left on device', self.name)
      return super().write(content)

  monkeypatch.setattr(tf.io.gfile, 'GFile', BreakingGFile)


def _read_only_from_now(fault, monkeypatch):
  """The directory turns read-only: every write of a save fails."""
  original_save_v2 = tf.raw_ops.SaveV2
  original_rename = tf.io.gfile.rename

  def denied(what):
    return tf.errors.PermissionDeniedError(None, None,
                                           f'{what}; Read-only file system')

  def save_v2(**kwargs):
    if fault.armed:
      raise denied(kwargs['prefix'])
    return original_save_v2(**kwargs)

  def rename(src, dst, overwrite=False):
    if fault.armed:
      raise denied(dst)
    return original_rename(src, dst, overwrite)

  monkeypatch.setattr(tf.raw_ops, 'SaveV2', save_v2)
  monkeypatch.setattr(tf.io.gfile, 'rename', rename)


_FAULTS = {
    'disk_full_in_bundle_write': _disk_full_in_save_v2,
    'half_written_bundle': _half_written_bundle,
    'data_rename_refused': _rename_denied(_DATA),
    'index_rename_refused': _rename_denied('.index'),
    'state_rename_refused': _rename_denied('checkpoint'),
    'state_file_breaks_off_halfway': _state_file_breaks_off,
    'directory_turns_read_only': _read_only_from_now,
}


def _check_recovery(model_dir, reference):
  """The step-2 checkpoint is the latest; training resumes from it."""
  assert tf.train.latest_checkpoint(str(model_dir)) == str(
      model_dir / 'model.ckpt-2')
  np.testing.assert_array_equal(
      tf.train.load_variable(str(model_dir), 'clusters'), reference[2])
  assert not _temp_files(model_dir)
  assert not (model_dir / locking.LOCK_FILENAME).exists()
  resumed = _estimator(model_dir)
  np.testing.assert_array_equal(resumed.cluster_centers(), reference[2])
  resumed.train(lambda: _POINTS, steps=3)
  assert resumed.get_variable_value('global_step') == 5
  np.testing.assert_array_equal(resumed.cluster_centers(), reference[5])


@pytest.mark.parametrize('fault', sorted(_FAULTS))
def test_a_write_failing_midway_keeps_the_previous_checkpoint(
    fault, tmp_path, monkeypatch, reference):
  model_dir = tmp_path / 'model'
  listener = _Fault(monkeypatch, _FAULTS[fault])
  with pytest.raises(checkpoints.CheckpointWriteError) as info:
    _estimator(model_dir).train(lambda: _POINTS, steps=5,
                                saving_listeners=[listener])
  monkeypatch.undo()
  message = str(info.value)
  assert f"Could not write checkpoint '{model_dir}/model.ckpt-3'" in message
  assert f"Received: model_dir='{model_dir}'" in message
  assert 'Checkpoints listed in its \'checkpoint\' file are still complete' in (
      message)
  _check_recovery(model_dir, reference)


@_needs_non_root
def test_a_directory_made_read_only_between_checkpoints(tmp_path, reference):
  model_dir = tmp_path / 'model'

  class ReadOnlyAfterStep2(_Fault):

    def after_save(self, session, global_step):
      if global_step == 2:
        model_dir.chmod(0o555)

  listener = ReadOnlyAfterStep2(None, lambda fault, mp: None)
  try:
    with pytest.raises(checkpoints.CheckpointWriteError,
                       match=r"model\.ckpt-3.*Received: model_dir="):
      _estimator(model_dir).train(lambda: _POINTS, steps=5,
                                  saving_listeners=[listener])
  finally:
    model_dir.chmod(0o755)
  _check_recovery(model_dir, reference)


def test_failing_to_delete_an_old_checkpoint_is_not_an_error(
    tmp_path, monkeypatch, reference):
  model_dir = tmp_path / 'model'

  def remove(path):
    raise tf.errors.PermissionDeniedError(None, None, f'{path}: denied')

  monkeypatch.setattr(tf.io.gfile, 'remove', remove)
  estimator = _estimator(model_dir)  # keep_checkpoint_max=3
  estimator.train(lambda: _POINTS, steps=5)
  monkeypatch.undo()
  state = tf.train.get_checkpoint_state(str(model_dir))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'model.ckpt-3', 'model.ckpt-4', 'model.ckpt-5']
  np.testing.assert_array_equal(estimator.cluster_centers(), reference[5])
  # The files it could not delete are still there, listed nowhere.
  assert (model_dir / 'model.ckpt-1.index').exists()


# ------------------------------------------------- damaged checkpoints
def _latest(model_dir):
  return tf.train.latest_checkpoint(str(model_dir))


def _rewrite(path, transform):
  path = pathlib.Path(path)
  path.write_bytes(transform(path.read_bytes()))


def _resave(model_dir, **changes):
  """Rewrites the latest checkpoint with some values changed."""
  values = checkpoints.read_checkpoint(str(model_dir))
  values.update(changes)
  prefix = _latest(model_dir)
  for suffix in ('.index', _DATA):
    os.remove(prefix + suffix)
  checkpoints.save_checkpoint(str(model_dir),
                              int(values['global_step']), values)


# kind -> (how to damage model_dir, the message expected: a regex)
_UNREADABLE = r"The checkpoint '.*model\.ckpt-2' is unreadable or corrupted: "
_DAMAGE = {
    'garbage_index': (
        lambda d: _rewrite(_latest(d) + '.index', lambda b: b'\x00' * len(b)),
        _UNREADABLE + r"its index file '.*model\.ckpt-2\.index' is truncated "
        r'or not a checkpoint index'),
    'truncated_index': (
        lambda d: _rewrite(_latest(d) + '.index', lambda b: b[:len(b) // 2]),
        _UNREADABLE + r'its index file .* is truncated'),
    'empty_index': (
        lambda d: _rewrite(_latest(d) + '.index', lambda b: b''),
        _UNREADABLE + r'its index file .* is truncated'),
    'truncated_data': (
        lambda d: _rewrite(_latest(d) + _DATA, lambda b: b[:len(b) // 3]),
        _UNREADABLE + r"its data file '.*model\.ckpt-2\.data-00000-of-00001' "
        r'is truncated or damaged'),
    'garbled_data': (
        lambda d: _rewrite(_latest(d) + _DATA,
                           lambda b: bytes(x ^ 0x5A for x in b)),
        _UNREADABLE + r'its data file .* is truncated or damaged'),
    'missing_data': (
        lambda d: os.remove(_latest(d) + _DATA),
        _UNREADABLE + r"its data file '.*model\.ckpt-2\.data-00000-of-00001' "
        r'is missing'),
    'missing_index': (
        lambda d: os.remove(_latest(d) + '.index'),
        r"The checkpoint state file '.*checkpoint' names the latest "
        r"checkpoint '.*model\.ckpt-2', but its index file .* is missing\. "
        r'Restore its files from a backup, or edit the state file'),
    'garbled_state_file': (
        lambda d: (pathlib.Path(d) / 'checkpoint').write_text('{{{ garbage'),
        r"The checkpoint state file '.*checkpoint' is unreadable, but "
        r"`model_dir` holds checkpoints \['model\.ckpt-1', 'model\.ckpt-2'\]"),
    'missing_state_file_and_newest_data': (
        lambda d: [os.remove(d / 'checkpoint'),
                   os.remove(d / ('model.ckpt-2' + _DATA))],
        r"`model_dir` has no 'checkpoint' state file, and its newest "
        r"checkpoint '.*model\.ckpt-2' is incomplete: its data file "
        r"'.*model\.ckpt-2\.data-00000-of-00001' is missing\. Restore its "
        r'files from a backup, or move them away'),
    'nan_centers': (
        lambda d: _resave(d, clusters=np.full((_K, 2), np.nan, np.float32)),
        r"The checkpoint '.*model\.ckpt-2' holds invalid cluster centers "
        r'\(dtype float32, shape \(3, 2\); they must be finite floats'),
    'centers_of_rank_1': (
        lambda d: _resave(d, clusters=np.zeros(6, np.float32)),
        r'holds invalid cluster centers \(dtype float32, shape \(6,\)'),
    'integer_centers': (
        lambda d: _resave(d, clusters=np.zeros((_K, 2), np.int64)),
        r'holds invalid cluster centers \(dtype int64'),
}
def _cli(command, *args):
  """Runs the command line on the estimator's model_dir; raises its error."""

  def run(estimator, tmp):
    np.save(tmp / 'points.npy', _POINTS)
    extra = {'predict': [tmp / 'points.npy'], 'score': [tmp / 'points.npy'],
             'train': ['--steps=1', tmp / 'points.npy'],
             'export': [f'--export_dir_base={tmp / "exports"}']}
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(
        io.StringIO()):
      status = run_cli(command, f'--model_dir={estimator.model_dir}',
                       *args, *extra.get(command, []))
    message = stderr.getvalue()
    assert status == 1, message
    raise ValueError(message.strip())
  return run


_ENTRY_POINTS = {
    'train': lambda e, tmp: e.train(lambda: _POINTS, steps=1),
    'evaluate': lambda e, tmp: e.evaluate(lambda: _POINTS),
    'predict': lambda e, tmp: list(e.predict(lambda: _POINTS)),
    'cluster_centers': lambda e, tmp: e.cluster_centers(),
    'export_saved_model': lambda e, tmp: e.export_saved_model(
        str(tmp / 'exports')),
    'cli_centers': _cli('centers'),
    'cli_predict': _cli('predict'),
    'cli_score': _cli('score'),
    'cli_export': _cli('export'),
    'cli_train': _cli('train'),
}
# `cluster_centers` (like `get_variable_value` and tf.train.load_variable)
# returns what the checkpoint holds, unvalidated.
_RAW_READS = {('nan_centers', 'cluster_centers'),
              ('centers_of_rank_1', 'cluster_centers'),
              ('integer_centers', 'cluster_centers'),
              ('nan_centers', 'cli_centers'),
              ('centers_of_rank_1', 'cli_centers'),
              ('integer_centers', 'cli_centers')}


@pytest.mark.parametrize('damage,entry_point', [
    (damage, entry_point) for damage in sorted(_DAMAGE)
    for entry_point in sorted(_ENTRY_POINTS)
    if (damage, entry_point) not in _RAW_READS])
def test_a_damaged_checkpoint_gives_a_clear_error(damage, entry_point,
                                                  trained_copy, tmp_path):
  make_damage, message = _DAMAGE[damage]
  make_damage(trained_copy)
  before = oracles.snapshot(trained_copy)
  with pytest.raises(ValueError, match=message) as info:
    _ENTRY_POINTS[entry_point](_estimator(trained_copy), tmp_path)
  assert 'Received: ' in str(info.value) or 'model_dir' in str(info.value)
  assert oracles.snapshot(trained_copy) == before  # Nothing was written...
  assert not (tmp_path / 'exports').exists()  # ... nor exported.


def test_a_deleted_state_file_resumes_from_the_newest_checkpoint(
    trained_copy, tmp_path, reference):
  # Steps 1 and 2 are saved; the 'checkpoint' state file is lost.
  os.remove(trained_copy / 'checkpoint')
  saved = {name: data for name, data in oracles.snapshot(trained_copy).items()
           if name.startswith('model.ckpt-')}
  estimator = _estimator(trained_copy, config=RunConfig(
      save_checkpoints_steps=1, keep_checkpoint_max=0))
  # Every reader reads checkpoint 2, as before.
  assert estimator.latest_checkpoint() == str(trained_copy / 'model.ckpt-2')
  np.testing.assert_array_equal(estimator.cluster_centers(), reference[2])
  assert estimator.evaluate(lambda: _POINTS)['global_step'] == 2
  np.testing.assert_array_equal(
      [p['cluster_index'] for p in estimator.predict(lambda: _POINTS)],
      oracles.distances(_POINTS, reference[2]).argmin(axis=1))
  exported = estimator.export_saved_model(str(tmp_path / 'exports'))
  np.testing.assert_array_equal(
      tf.saved_model.load(exported.decode()).signatures['cluster_centers']()[
          'output'], reference[2])
  with contextlib.redirect_stdout(io.StringIO()) as out:
    assert run_cli('centers', f'--model_dir={trained_copy}') == 0
  np.testing.assert_array_equal(
      np.loadtxt(out.getvalue().splitlines(), delimiter=',').astype(
          np.float32), reference[2])
  # Training goes on from step 2, overwriting nothing.
  estimator.train(lambda: _POINTS, steps=3)
  assert estimator.get_variable_value('global_step') == 5
  np.testing.assert_array_equal(estimator.cluster_centers(), reference[5])
  after = oracles.snapshot(trained_copy)
  assert {name: after[name] for name in saved} == saved
  # The state file is whole again, for TensorFlow's readers too.
  state = tf.train.get_checkpoint_state(str(trained_copy))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      f'model.ckpt-{step}' for step in range(1, 6)]
  assert tf.train.load_variable(str(trained_copy), 'global_step') == 5


def test_a_state_file_that_lags_behind_a_complete_checkpoint(
    trained_copy, reference):
  # A save killed between its renames and its state file's leaves
  # checkpoint 2 complete but unnamed, and written after the state file
  # (of save 1): training goes on from it.
  (trained_copy / 'checkpoint').write_text(
      'model_checkpoint_path: "model.ckpt-1"\n'
      'all_model_checkpoint_paths: "model.ckpt-1"\n')
  _set_age(trained_copy / 'checkpoint', older_than=trained_copy /
           'model.ckpt-2.index')
  before = oracles.snapshot(trained_copy)
  estimator = _estimator(trained_copy)
  np.testing.assert_array_equal(estimator.cluster_centers(), reference[2])
  estimator.train(lambda: _POINTS, steps=1)
  assert estimator.get_variable_value('global_step') == 3
  np.testing.assert_array_equal(estimator.cluster_centers(), reference[3])
  after = oracles.snapshot(trained_copy)
  for step in (1, 2):
    for suffix in ('.index', _DATA):
      name = f'model.ckpt-{step}{suffix}'
      assert after[name] == before[name]


def _set_age(path, older_than=None, newer_than=None):
  """Sets `path`'s modification time a second before or after another's."""
  if older_than is not None:
    stamp = os.stat(older_than).st_mtime_ns - 10**9
  else:
    stamp = os.stat(newer_than).st_mtime_ns + 10**9
  os.utime(path, ns=(stamp, stamp))



def _roll_back_by_hand_to_checkpoint_1(model_dir):
  """Rewrites the state file, after checkpoint 2 was written, to name
  checkpoint 1 only (a user's deliberate roll-back)."""
  (model_dir / 'checkpoint').write_text(
      'model_checkpoint_path: "model.ckpt-1"\n'
      'all_model_checkpoint_paths: "model.ckpt-1"\n')
  _set_age(model_dir / 'checkpoint', newer_than=model_dir /
           'model.ckpt-2.index')

def test_a_state_file_rolled_back_by_hand_is_followed(trained_copy,
                                                      reference):
  # The state file was edited after checkpoint 2 was written, to name
  # checkpoint 1: every reader and the next train() use checkpoint 1, as
  # tf.train.latest_checkpoint does; checkpoint 2 is kept as it is.
  _roll_back_by_hand_to_checkpoint_1(trained_copy)
  before = oracles.snapshot(trained_copy)
  estimator = _estimator(trained_copy, config=RunConfig(
      save_checkpoints_steps=1, keep_checkpoint_max=1))
  assert estimator.latest_checkpoint() == str(trained_copy / 'model.ckpt-1')
  np.testing.assert_array_equal(estimator.cluster_centers(), reference[1])
  assert estimator.evaluate(lambda: _POINTS)['global_step'] == 1
  # Training goes on from step 1; its save of step 2 is refused (the
  # rolled-back checkpoint 2 is never overwritten, nor deleted by
  # keep_checkpoint_max).
  with pytest.raises(checkpoints.CheckpointExistsError,
                     match=r"model\.ckpt-2' already exists"):
    estimator.train(lambda: _POINTS, steps=1)
  after = oracles.snapshot(trained_copy)
  for suffix in ('.index', _DATA):
    name = f'model.ckpt-2{suffix}'
    assert after[name] == before[name]
  assert estimator.latest_checkpoint() == str(trained_copy / 'model.ckpt-1')


def test_a_rolled_back_checkpoint_is_not_listed_or_trimmed_by_later_saves(
    trained_copy):
  # Rolled back to checkpoint 1, a save of step 3 must not list checkpoint 2
  # (of the abandoned run) in the state file, where keep_checkpoint_max
  # would delete it.
  _roll_back_by_hand_to_checkpoint_1(trained_copy)
  values = checkpoints.read_checkpoint(str(trained_copy / 'model.ckpt-1'))
  values['global_step'] = np.int64(3)
  checkpoints.save_checkpoint(str(trained_copy), 3, values,
                              keep_checkpoint_max=1)
  state = tf.train.get_checkpoint_state(str(trained_copy))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'model.ckpt-3']
  assert (trained_copy / 'model.ckpt-2.index').exists()
  assert (trained_copy / f'model.ckpt-2{_DATA}').exists()


def test_a_save_never_overwrites_a_checkpoint_the_state_file_forgot(
    trained_copy):
  # Even when asked to: checkpoint 2 exists, and the save of step 2 after a
  # restore of checkpoint 1 is refused.
  before = oracles.snapshot(trained_copy)
  values = checkpoints.read_checkpoint(str(trained_copy / 'model.ckpt-1'))
  values['global_step'] = np.int64(2)
  with pytest.raises(checkpoints.CheckpointExistsError,
                     match=r"model\.ckpt-2' already exists"):
    checkpoints.save_checkpoint(str(trained_copy), 2, values)
  assert oracles.snapshot(trained_copy) == before


def test_cluster_centers_refuses_damaged_centers_as_predict_does(
    trained_copy):
  # cluster_centers checks the checkpoint as train and predict do;
  # get_variable_value (like tf.train.load_variable) returns it as stored.
  _resave(trained_copy, clusters=np.full((_K, 2), np.nan, np.float32))
  estimator = _estimator(trained_copy)
  with pytest.raises(ValueError, match=(
      r"The checkpoint '.*' holds invalid cluster centers \(dtype float32, "
      r'shape \(3, 2\); they must be finite')):
    estimator.cluster_centers()
  assert np.isnan(estimator.get_variable_value('clusters')).all()
