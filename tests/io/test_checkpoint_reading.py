"""Tests of reading checkpoints (`io.checkpoint_reading`, through
`kmeans_estimator.io.checkpoints`): corrupted or missing checkpoints are a
ValueError naming the checkpoint and the damaged file."""

import os
import pathlib

import numpy as np
import pytest

from kmeans_estimator.io import checkpoints

import helpers

_tensors = helpers.checkpoint_tensors
_DATA = '.data-00000-of-00001'


def _corrupt(prefix, kind):
  index, data = prefix + '.index', prefix + _DATA
  if kind == 'garbage_index':
    pathlib.Path(index).write_bytes(b'garbage' * 20)
  elif kind == 'truncated_index':
    content = pathlib.Path(index).read_bytes()
    pathlib.Path(index).write_bytes(content[:len(content) // 2])
  elif kind == 'empty_index':
    pathlib.Path(index).write_bytes(b'')
  elif kind == 'truncated_data':
    content = pathlib.Path(data).read_bytes()
    pathlib.Path(data).write_bytes(content[:len(content) // 3])
  elif kind == 'garbage_data':
    size = len(pathlib.Path(data).read_bytes())
    pathlib.Path(data).write_bytes(b'\xab' * size)
  elif kind == 'missing_data':
    os.remove(data)
  else:
    raise AssertionError(kind)


@pytest.mark.parametrize('kind', [
    'garbage_index', 'truncated_index', 'empty_index', 'truncated_data',
    'garbage_data', 'missing_data'
])
def test_corrupted_checkpoint_raises_value_error(tmp_path, kind):
  model_dir = str(tmp_path)
  prefix = checkpoints.save_checkpoint(
      model_dir, 1, {'clusters': np.arange(40, dtype=np.float32)})
  _corrupt(prefix, kind)
  for path in (model_dir, prefix):
    with pytest.raises(ValueError, match='unreadable or corrupted') as e:
      checkpoints.read_checkpoint(path)
    assert prefix in str(e.value)
    assert f"Received: path='{path}'" in str(e.value)
  if 'index' in kind:
    with pytest.raises(ValueError, match='unreadable or corrupted'):
      checkpoints.list_checkpoint_variables(model_dir)


def test_missing_checkpoints_raise_value_error(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  for fn in (checkpoints.read_checkpoint,
             checkpoints.list_checkpoint_variables):
    with pytest.raises(ValueError,
                       match=rf"no checkpoint.*Received: model_dir='{empty}'"):
      fn(str(empty))
    with pytest.raises(ValueError, match='unreadable or corrupted'):
      fn(str(tmp_path / 'model.ckpt-3'))
  # The state file names a checkpoint whose index file was deleted.
  prefix = checkpoints.save_checkpoint(str(empty), 3, _tensors())
  os.remove(prefix + '.index')
  assert checkpoints.latest_checkpoint(str(empty)) is None
  with pytest.raises(ValueError, match='no checkpoint'):
    checkpoints.read_checkpoint(str(empty))
