"""Tests for `kmeans_estimator.io.checkpoints`: name-based, atomic checkpoints."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator.io import checkpoints
from kmeans_estimator.io import filesystem

import helpers
import oracles

_LEGACY_DIR = oracles.LEGACY_DIR
_LEGACY_NAMES = ('euclidean_fullbatch', 'cosine_minibatch')
_DATA = '.data-00000-of-00001'


_tensors = helpers.checkpoint_tensors


def _temp_files(model_dir):
  return [
      n for n in os.listdir(model_dir)
      if '_temp_' in n or '.tmp' in n or 'tempstate' in n
  ]


def _state_proto(model_dir):
  return tf.train.get_checkpoint_state(str(model_dir))


_copy_legacy = oracles.copy_legacy


# ---------------------------------------------------------------------------
# Round trips and TensorFlow interoperability.
# ---------------------------------------------------------------------------


def test_round_trip_of_dtypes_and_shapes(tmp_path):
  values = {
      'f32': np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
      'f64': np.array([np.pi, -np.e, 1e300]),
      'i64': np.array([2**62, -5, 0], dtype=np.int64),
      'i32': np.array([[1], [2]], dtype=np.int32),
      'mask': np.array([True, False, True]),
      'scalar_i64': np.int64(42),
      'scalar_bool': np.bool_(False),
      'scalar_f32': np.float32(0.25),
      'python_int': 7,
      'empty': np.zeros((0, 2), dtype=np.float32),
      'text': np.array([b'a', b'bc']),
  }
  prefix = checkpoints.save_checkpoint(str(tmp_path), 3, values)
  restored = checkpoints.read_checkpoint(prefix)
  assert sorted(restored) == sorted(values)
  for name, value in values.items():
    expected = np.asarray(value)
    got = restored[name]
    assert isinstance(got, np.ndarray), name
    if name == 'text':  # Strings come back as an object array of bytes.
      assert got.tolist() == expected.tolist()
      continue
    assert got.dtype == expected.dtype, name
    assert got.shape == expected.shape, name
    np.testing.assert_array_equal(got, expected, err_msg=name)
  assert restored['python_int'].dtype == np.int64


def test_accepts_tf_tensors_and_variables(tmp_path):
  variable = tf.Variable([[1.5, 2.5]], dtype=tf.float64)
  tensor = tf.constant([3, 4], dtype=tf.int64)
  checkpoints.save_checkpoint(str(tmp_path), 1, {'v': variable, 't': tensor})
  restored = checkpoints.read_checkpoint(str(tmp_path))
  np.testing.assert_array_equal(restored['v'], [[1.5, 2.5]])
  assert restored['v'].dtype == np.float64
  np.testing.assert_array_equal(restored['t'], [3, 4])
  assert restored['t'].dtype == np.int64


def test_plain_names_visible_to_tf_train(tmp_path):
  model_dir = str(tmp_path)
  tensors = _tensors(seed=10)
  prefix = checkpoints.save_checkpoint(model_dir, 10, tensors)

  assert prefix == os.path.join(model_dir, 'model.ckpt-10')
  assert tf.train.latest_checkpoint(model_dir) == prefix
  listed = tf.train.list_variables(model_dir)
  assert listed == [('clusters', [5, 2]), ('global_step', []),
                    ('initialized', [])]
  assert not any('.ATTRIBUTES' in n or 'CHECKPOINTABLE' in n
                 for n, _ in listed)
  np.testing.assert_array_equal(
      tf.train.load_variable(model_dir, 'clusters'), tensors['clusters'])
  assert tf.train.load_variable(model_dir, 'global_step') == 10
  reader = tf.train.load_checkpoint(model_dir)
  assert reader.get_variable_to_dtype_map() == {
      'clusters': tf.float32, 'global_step': tf.int64, 'initialized': tf.bool
  }
  assert checkpoints.list_checkpoint_variables(model_dir) == listed
  assert checkpoints.list_checkpoint_variables(prefix) == listed


def test_keep_checkpoint_max_deletes_old_files(tmp_path):
  model_dir = str(tmp_path)
  for step in range(1, 8):
    checkpoints.save_checkpoint(
        model_dir, step, _tensors(seed=step), keep_checkpoint_max=3)
  assert sorted(os.listdir(model_dir)) == sorted(
      ['checkpoint'] +
      [f'model.ckpt-{s}{ext}' for s in (5, 6, 7) for ext in ('.index', _DATA)])
  state = _state_proto(model_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'model.ckpt-5', 'model.ckpt-6', 'model.ckpt-7'
  ]
  assert len(state.all_model_checkpoint_timestamps) == 3
  for step in (5, 6, 7):
    got = checkpoints.read_checkpoint(
        os.path.join(model_dir, f'model.ckpt-{step}'))
    assert got['global_step'] == step


def test_keep_checkpoint_max_does_not_delete_similar_names(tmp_path):
  model_dir = str(tmp_path)
  (tmp_path / 'model.ckpt-1.index.bak').write_text('user file')
  checkpoints.save_checkpoint(model_dir, 1, _tensors(), keep_checkpoint_max=1)
  checkpoints.save_checkpoint(model_dir, 10, _tensors(), keep_checkpoint_max=1)
  checkpoints.save_checkpoint(model_dir, 11, _tensors(), keep_checkpoint_max=1)
  assert sorted(os.listdir(model_dir)) == [
      'checkpoint', 'model.ckpt-1.index.bak', 'model.ckpt-11' + _DATA,
      'model.ckpt-11.index'
  ]


@pytest.mark.parametrize('keep', [None, 0])
def test_keep_checkpoint_max_none_or_zero_keeps_all(tmp_path, keep):
  model_dir = str(tmp_path)
  for step in range(1, 8):
    checkpoints.save_checkpoint(
        model_dir, step, _tensors(), keep_checkpoint_max=keep)
  assert len(_state_proto(model_dir).all_model_checkpoint_paths) == 7
  assert len([n for n in os.listdir(model_dir) if n.endswith('.index')]) == 7


def test_saving_a_step_that_exists_is_refused_and_writes_nothing(tmp_path):
  model_dir = str(tmp_path)
  checkpoints.save_checkpoint(model_dir, 1, _tensors(seed=1))
  checkpoints.save_checkpoint(model_dir, 2, _tensors(seed=2))
  before = oracles.snapshot(model_dir)
  for step in (2, 1):  # The latest, and an older one.
    with pytest.raises(
        checkpoints.CheckpointExistsError,
        match=rf"The checkpoint '.*model\.ckpt-{step}' already exists "
        rf"\(\['model\.ckpt-{step}\.data-00000-of-00001', "
        rf"'model\.ckpt-{step}\.index'\]\), and checkpoints are never "
        r"overwritten; nothing was written\. The latest checkpoint is "
        r"'.*model\.ckpt-2'.*Received: model_dir="):
      checkpoints.save_checkpoint(model_dir, step, _tensors(seed=3))
  assert oracles.snapshot(model_dir) == before
  assert issubclass(checkpoints.CheckpointExistsError,
                    checkpoints.CheckpointWriteError)


def test_a_data_file_without_its_index_is_replaced(tmp_path):
  # What a save killed between its data and index renames leaves.
  model_dir = str(tmp_path)
  checkpoints.save_checkpoint(model_dir, 1, _tensors(seed=1))
  (tmp_path / ('model.ckpt-2' + _DATA)).write_bytes(b'left by a killed save')
  checkpoints.save_checkpoint(model_dir, 2, _tensors(seed=2))
  np.testing.assert_array_equal(
      checkpoints.read_checkpoint(model_dir)['clusters'],
      _tensors(2)['clusters'])


# ---------------------------------------------------------------------------
# Atomicity.
# ---------------------------------------------------------------------------


class _SimulatedCrash(Exception):
  pass


def _fail_on_call(monkeypatch, module, attr, n, exc=None):
  """Makes the n-th call (1-based) of module.attr raise."""
  original = getattr(module, attr)
  calls = []

  def wrapper(*args, **kwargs):
    calls.append(args)
    if len(calls) == n:
      raise exc if exc is not None else _SimulatedCrash(f'{attr} #{n}')
    return original(*args, **kwargs)

  monkeypatch.setattr(module, attr, wrapper)
  return calls


def _disable_cleanup(monkeypatch):
  """Simulates a killed process: no `finally` clean-up runs."""
  monkeypatch.setattr(filesystem, 'remove_files_with_prefix',
                      lambda *a: None)
  monkeypatch.setattr(filesystem, 'remove_quietly', lambda *a: None)


# Renames of a fresh save: data, index, state file.
@pytest.mark.parametrize('failing_rename', [1, 2, 3])
@pytest.mark.parametrize('cleanup', [True, False])
def test_crash_during_rename_keeps_previous_checkpoint(
    tmp_path, monkeypatch, failing_rename, cleanup):
  model_dir = str(tmp_path)
  first = checkpoints.save_checkpoint(model_dir, 1, _tensors(seed=1))
  if not cleanup:
    _disable_cleanup(monkeypatch)
  _fail_on_call(monkeypatch, tf.io.gfile, 'rename', failing_rename)
  with pytest.raises(_SimulatedCrash):
    checkpoints.save_checkpoint(model_dir, 2, _tensors(seed=2))
  monkeypatch.undo()

  assert tf.train.latest_checkpoint(model_dir) == first
  # A process killed after both renames (no clean-up) leaves checkpoint 2
  # complete though the state file does not name it: it is the latest. A
  # save that fails removes the files it renamed into place.
  latest = 2 if failing_rename == 3 and not cleanup else 1
  assert checkpoints.latest_checkpoint(model_dir) == os.path.join(
      model_dir, f'model.ckpt-{latest}')
  restored = checkpoints.read_checkpoint(model_dir)
  np.testing.assert_array_equal(restored['clusters'],
                                _tensors(latest)['clusters'])
  if cleanup:
    assert not _temp_files(model_dir)
    assert sorted(n for n in os.listdir(model_dir) if 'ckpt-2' in n) == []
  # The next save recovers, and the state file lists every checkpoint.
  checkpoints.save_checkpoint(model_dir, latest + 1,
                              _tensors(seed=latest + 1))
  assert checkpoints.read_checkpoint(model_dir)['global_step'] == latest + 1
  assert len(_state_proto(model_dir).all_model_checkpoint_paths) == (
      latest + 1)


def test_crash_during_save_v2_leaves_nothing(tmp_path, monkeypatch):
  model_dir = str(tmp_path)
  first = checkpoints.save_checkpoint(model_dir, 1, _tensors(seed=1))
  before = sorted(os.listdir(model_dir))
  _fail_on_call(monkeypatch, tf.raw_ops, 'SaveV2', 1)
  with pytest.raises(_SimulatedCrash):
    checkpoints.save_checkpoint(model_dir, 2, _tensors(seed=2))
  assert sorted(os.listdir(model_dir)) == before
  assert tf.train.latest_checkpoint(model_dir) == first


@pytest.mark.parametrize('cleanup', [True, False])
def test_crash_while_writing_state_file(tmp_path, monkeypatch, cleanup):
  model_dir = str(tmp_path)
  first = checkpoints.save_checkpoint(model_dir, 1, _tensors(seed=1))
  if not cleanup:
    _disable_cleanup(monkeypatch)
  original_gfile = tf.io.gfile.GFile

  class _HalfWritingGFile(original_gfile):

    def write(self, content):
      super().write(content[:len(content) // 2])
      raise _SimulatedCrash('disk went away')

  monkeypatch.setattr(tf.io.gfile, 'GFile', _HalfWritingGFile)
  with pytest.raises(_SimulatedCrash):
    checkpoints.save_checkpoint(model_dir, 2, _tensors(seed=2))
  monkeypatch.undo()
  assert tf.train.latest_checkpoint(model_dir) == first
  # Killed (no clean-up): checkpoint 2 is complete, so it is the latest.
  assert checkpoints.read_checkpoint(model_dir)['global_step'] == (
      1 if cleanup else 2)
  if cleanup:
    assert not _temp_files(model_dir)


# Renames when saving a step that the state file lists but whose files are
# gone: state (drop the entry), data, index, state.
@pytest.mark.parametrize('failing_rename', [1, 2, 3, 4])
def test_crash_while_resaving_a_listed_step_whose_files_are_gone(
    tmp_path, monkeypatch, failing_rename):
  model_dir = str(tmp_path)
  checkpoints.save_checkpoint(model_dir, 1, _tensors(seed=1))
  second = checkpoints.save_checkpoint(model_dir, 2, _tensors(seed=2))
  for suffix in ('.index', _DATA):
    os.remove(second + suffix)
  _disable_cleanup(monkeypatch)
  _fail_on_call(monkeypatch, tf.io.gfile, 'rename', failing_rename)
  with pytest.raises(_SimulatedCrash):
    checkpoints.save_checkpoint(model_dir, 2, _tensors(seed=3))
  monkeypatch.undo()

  # The state file never names a checkpoint without its files: it names
  # checkpoint 1 once the entry of 2 is dropped (after rename 1).
  tf_latest = tf.train.latest_checkpoint(model_dir)
  assert (tf_latest is None) == (failing_rename == 1)
  if tf_latest is not None:
    assert tf_latest.endswith('model.ckpt-1')
  latest = checkpoints.latest_checkpoint(model_dir)
  if latest is not None:
    restored = checkpoints.read_checkpoint(latest)  # Complete, consistent.
    seed = 3 if latest.endswith('model.ckpt-2') else 1
    np.testing.assert_array_equal(restored['clusters'],
                                  _tensors(seed=seed)['clusters'])


def test_write_errors_become_checkpoint_write_error(tmp_path, monkeypatch):
  model_dir = str(tmp_path)
  first = checkpoints.save_checkpoint(model_dir, 1, _tensors())
  _fail_on_call(monkeypatch, tf.io.gfile, 'rename', 2,
                exc=tf.errors.UnavailableError(None, None, 'storage is down'))
  with pytest.raises(checkpoints.CheckpointWriteError,
                     match=r"storage is down.*Received: model_dir='") as info:
    checkpoints.save_checkpoint(model_dir, 2, _tensors())
  assert isinstance(info.value, OSError)
  assert isinstance(info.value.__cause__, tf.errors.UnavailableError)
  monkeypatch.undo()
  assert tf.train.latest_checkpoint(model_dir) == first
  assert not _temp_files(model_dir)


# ---------------------------------------------------------------------------
# Unwritable model_dir.
# ---------------------------------------------------------------------------


def test_model_dir_under_a_regular_file(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a directory')
  model_dir = str(blocker / 'model')
  with pytest.raises(OSError, match=r'`model_dir`.*Received: model_dir=') as e:
    checkpoints.save_checkpoint(model_dir, 1, _tensors())
  assert isinstance(e.value, checkpoints.CheckpointWriteError)
  assert model_dir in str(e.value)
  with pytest.raises(checkpoints.CheckpointWriteError,
                     match='not a directory'):
    checkpoints.save_checkpoint(str(blocker), 1, _tensors())
  assert blocker.read_text() == 'not a directory'


def test_unwritable_model_dir_keeps_previous_checkpoint(tmp_path):
  model_dir = tmp_path / 'model'
  first = checkpoints.save_checkpoint(str(model_dir), 1, _tensors(seed=1))
  model_dir.chmod(0o500)
  try:
    try:
      (model_dir / 'probe').write_text('x')
      (model_dir / 'probe').unlink()
      chmod_works = False  # Running as root: permissions are not enforced.
    except PermissionError:
      chmod_works = True
    if not chmod_works:
      # Make the write fail for real anyway: a directory where the new
      # checkpoint's index file must go.
      model_dir.chmod(0o700)
      (model_dir / 'model.ckpt-2.index').mkdir()
    with pytest.raises(checkpoints.CheckpointWriteError) as e:
      checkpoints.save_checkpoint(str(model_dir), 2, _tensors(seed=2))
  finally:
    model_dir.chmod(0o700)
  message = str(e.value)
  assert f"Received: model_dir='{model_dir}'" in message
  assert 'writ' in message
  assert tf.train.latest_checkpoint(str(model_dir)) == first
  np.testing.assert_array_equal(
      checkpoints.read_checkpoint(str(model_dir))['clusters'],
      _tensors(1)['clusters'])
  assert not _temp_files(model_dir)


# ---------------------------------------------------------------------------
# Argument validation.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('kwargs, match', [
    (dict(global_step=-1), 'global_step'),
    (dict(global_step=True), 'global_step'),
    (dict(global_step=1.5), 'global_step'),
    (dict(keep_checkpoint_max=-2), 'keep_checkpoint_max'),
    (dict(keep_checkpoint_max=2.0), 'keep_checkpoint_max'),
    (dict(tensors={}), 'tensors'),
    (dict(tensors={'': np.zeros(2)}), 'non-empty string'),
    (dict(tensors={3: np.zeros(2)}), 'non-empty string'),
    (dict(model_dir=''), 'model_dir'),
])
def test_invalid_arguments(tmp_path, kwargs, match):
  args = dict(model_dir=str(tmp_path), global_step=1, tensors=_tensors())
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    checkpoints.save_checkpoint(**args)
  assert not os.listdir(tmp_path)


def test_numpy_and_tensor_global_steps(tmp_path):
  checkpoints.save_checkpoint(str(tmp_path), np.int64(7), _tensors())
  checkpoints.save_checkpoint(str(tmp_path), tf.constant(8, tf.int64),
                              _tensors())
  assert checkpoints.latest_checkpoint(str(tmp_path)).endswith('model.ckpt-8')


def test_unsaveable_value_raises_type_error(tmp_path):
  with pytest.raises(TypeError, match=r"tensors\['bad'\]"):
    checkpoints.save_checkpoint(str(tmp_path), 1, {'bad': object()})


# ---------------------------------------------------------------------------
# Checkpoints of the legacy TF1 estimator.
# ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def expected():
  with open(_LEGACY_DIR / 'expected.json') as f:
    return json.load(f)


@pytest.mark.parametrize('name', _LEGACY_NAMES)
def test_reads_legacy_estimator_checkpoints(name, expected):
  model_dir = str(_LEGACY_DIR / name)
  want = expected[name]
  restored = checkpoints.read_checkpoint(model_dir)
  assert sorted(restored) == sorted(want['variable_names'])
  np.testing.assert_array_equal(
      restored['clusters'], np.array(want['cluster_centers'], np.float32))
  assert restored['clusters'].dtype == np.float32
  assert restored['global_step'] == want['global_step']
  assert restored['global_step'].dtype == np.int64
  assert restored['initialized'].dtype == np.bool_ and restored['initialized']
  variables = dict(checkpoints.list_checkpoint_variables(model_dir))
  assert variables['clusters'] == [want['num_clusters'], 2]
  if want['use_mini_batch']:
    assert variables['Variable'] == [want['num_clusters']]
    assert restored['Variable'].dtype == np.int64
  assert checkpoints.latest_checkpoint(model_dir) == os.path.join(
      model_dir, 'model.ckpt-10')


@pytest.mark.parametrize('name', _LEGACY_NAMES)
def test_saving_into_legacy_model_dir_keeps_old_checkpoint(
    tmp_path, name, expected):
  model_dir = _copy_legacy(name, tmp_path)
  old = checkpoints.read_checkpoint(str(model_dir))
  new = dict(old, clusters=old['clusters'] + 1, global_step=np.int64(11))
  prefix = checkpoints.save_checkpoint(str(model_dir), 11, new)

  assert tf.train.latest_checkpoint(str(model_dir)) == prefix
  state = _state_proto(model_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'model.ckpt-10', 'model.ckpt-11'
  ]
  legacy = checkpoints.read_checkpoint(str(model_dir / 'model.ckpt-10'))
  np.testing.assert_array_equal(
      legacy['clusters'],
      np.array(expected[name]['cluster_centers'], np.float32))
  got = checkpoints.read_checkpoint(str(model_dir))
  assert sorted(got) == sorted(expected[name]['variable_names'])
  np.testing.assert_array_equal(got['clusters'], old['clusters'] + 1)
  assert got['global_step'] == 11
  # Legacy entries have no timestamps, so none are written (keeps the proto
  # consistent: one timestamp per path or none at all).
  assert not state.all_model_checkpoint_timestamps
  assert tf.train.load_variable(str(model_dir), 'global_step') == 11


def test_legacy_checkpoints_count_towards_keep_checkpoint_max(tmp_path):
  model_dir = _copy_legacy('euclidean_fullbatch', tmp_path)
  tensors = checkpoints.read_checkpoint(str(model_dir))
  for step in (11, 12):
    checkpoints.save_checkpoint(str(model_dir), step, tensors,
                                keep_checkpoint_max=2)
  assert not (model_dir / 'model.ckpt-10.index').exists()
  assert not (model_dir / ('model.ckpt-10' + _DATA)).exists()
  assert [
      os.path.basename(p)
      for p in _state_proto(model_dir).all_model_checkpoint_paths
  ] == ['model.ckpt-11', 'model.ckpt-12']


def test_legacy_fixture_points():
  points = np.load(_LEGACY_DIR / 'points.npy')
  assert points.shape == (300, 2) and points.dtype == np.float32
