"""Tests of the `checkpoint` state file that `kmeans_estimator.io.checkpoints`
writes (`io.checkpoint_state`): relative paths, escaping, the entries it
lists, and an unparsable one being replaced."""

import os
import shutil

import numpy as np
import tensorflow as tf

from kmeans_estimator.io import checkpoints

import helpers

_tensors = helpers.checkpoint_tensors
_DATA = '.data-00000-of-00001'


def _state_proto(model_dir):
  return tf.train.get_checkpoint_state(str(model_dir))


def test_files_on_disk_and_relative_state_file(tmp_path):
  model_dir = tmp_path / 'new' / 'model'  # Created on demand.
  checkpoints.save_checkpoint(str(model_dir), 4, _tensors())
  assert sorted(os.listdir(model_dir)) == [
      'checkpoint', 'model.ckpt-4' + _DATA, 'model.ckpt-4.index'
  ]
  text = (model_dir / 'checkpoint').read_text()
  assert 'model_checkpoint_path: "model.ckpt-4"' in text
  assert 'all_model_checkpoint_paths: "model.ckpt-4"' in text
  assert str(tmp_path) not in text  # Relative, so the dir can be moved.
  moved = tmp_path / 'moved'
  shutil.move(str(model_dir), str(moved))
  assert checkpoints.latest_checkpoint(str(moved)) == str(
      moved / 'model.ckpt-4')
  assert checkpoints.read_checkpoint(str(moved))['global_step'] == 0


def test_latest_checkpoint_after_several_saves(tmp_path):
  model_dir = str(tmp_path)
  assert checkpoints.latest_checkpoint(model_dir) is None
  assert checkpoints.latest_checkpoint(str(tmp_path / 'missing')) is None
  for step in (1, 2, 3):
    checkpoints.save_checkpoint(model_dir, step, _tensors(seed=step))
    assert checkpoints.latest_checkpoint(model_dir) == os.path.join(
        model_dir, f'model.ckpt-{step}')
  state = _state_proto(model_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'model.ckpt-1', 'model.ckpt-2', 'model.ckpt-3'
  ]
  assert len(state.all_model_checkpoint_timestamps) == 3
  assert checkpoints.read_checkpoint(model_dir)['global_step'] == 3
  older = checkpoints.read_checkpoint(os.path.join(model_dir, 'model.ckpt-1'))
  np.testing.assert_array_equal(older['clusters'], _tensors(1)['clusters'])


def test_state_file_path_escaping(tmp_path):
  model_dir = tmp_path / 'dir with "quotes", spaces and ünïcode'
  checkpoints.save_checkpoint(str(model_dir), 1, _tensors())
  # An absolute entry outside model_dir is kept verbatim (and never deleted).
  elsewhere = tmp_path / 'elsewhere'
  other = checkpoints.save_checkpoint(str(elsewhere), 9, _tensors())
  text = (model_dir / 'checkpoint').read_text()
  text = text.replace('all_model_checkpoint_paths: "model.ckpt-1"',
                      f'all_model_checkpoint_paths: "{other}"\n'
                      'all_model_checkpoint_paths: "model.ckpt-1"')
  text = '\n'.join(l for l in text.splitlines() if 'timestamps' not in l)
  (model_dir / 'checkpoint').write_text(text)
  checkpoints.save_checkpoint(str(model_dir), 2, _tensors(), 1)
  assert checkpoints.latest_checkpoint(str(model_dir)) == str(
      model_dir / 'model.ckpt-2')
  assert checkpoints.read_checkpoint(other)['global_step'] == 0
  assert tf.train.load_variable(str(model_dir), 'initialized')


def test_unparsable_state_file_is_replaced(tmp_path):
  model_dir = str(tmp_path)
  (tmp_path / 'checkpoint').write_text('this is { not a proto')
  assert checkpoints.latest_checkpoint(model_dir) is None
  checkpoints.save_checkpoint(model_dir, 5, _tensors())
  assert tf.train.latest_checkpoint(model_dir) == os.path.join(
      model_dir, 'model.ckpt-5')
