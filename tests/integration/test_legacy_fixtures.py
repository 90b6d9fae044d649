"""A model_dir written by the legacy TensorFlow KMeans estimator keeps working.

The fixtures in `tests/fixtures/legacy_estimator_model_dirs/` were written by
`tf.compat.v1.estimator.experimental.KMeans` (TensorFlow 2.15.1); its README
says how. `expected.json` holds what the legacy class itself reported. Each
test copies a fixture into `tmp_path` first, so the fixture is never written.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering

import oracles
from helpers import LossRecorder

_LEGACY_DIR = oracles.LEGACY_DIR
_EXPECTED = json.loads((_LEGACY_DIR / 'expected.json').read_text())
_POINTS = np.load(_LEGACY_DIR / 'points.npy')

# (fixture name, distance_metric, use_mini_batch): how each was trained.
_CASES = [
    ('euclidean_fullbatch', 'squared_euclidean', False),
    ('cosine_minibatch', 'cosine', True),
]
_IDS = [name for name, _, _ in _CASES]
_LEGACY_STEP = 10


_copy_legacy = oracles.copy_legacy


def _estimator(model_dir, metric, mini_batch, num_clusters=5):
  return KMeansClustering(
      num_clusters=num_clusters, model_dir=str(model_dir),
      distance_metric=metric, use_mini_batch=mini_batch,
      initial_clusters='kmeans_plus_plus', seed=3)


def _points():
  return _POINTS


_snapshot = oracles.snapshot


_numpy_lloyd = oracles.lloyd


@pytest.mark.parametrize('name,metric,mini_batch', _CASES, ids=_IDS)
def test_legacy_model_dir_reads_as_the_legacy_estimator_reported(
    name, metric, mini_batch, tmp_path):
  expected = _EXPECTED[name]
  model_dir = _copy_legacy(name, tmp_path)
  km = _estimator(model_dir, metric, mini_batch)

  centers = km.cluster_centers()
  assert centers.dtype == np.float32
  np.testing.assert_array_equal(
      centers, np.asarray(expected['cluster_centers'], np.float32))
  assert set(expected['variable_names']) <= set(km.get_variable_names())
  assert km.get_variable_value('global_step') == expected['global_step'] == (
      _LEGACY_STEP)

  assert [int(i) for i in km.predict_cluster_index(_points)] == (
      expected['cluster_index'])
  np.testing.assert_allclose(km.score(_points), expected['score'], rtol=1e-4)


# ------------------------------------------------------- continued training
@pytest.mark.parametrize('name,metric,mini_batch', _CASES, ids=_IDS)
def test_training_continues_from_the_legacy_step(name, metric, mini_batch,
                                                 tmp_path):
  model_dir = _copy_legacy(name, tmp_path)
  old_checkpoint = str(model_dir / 'model.ckpt-10')
  old_values = {n: tf.train.load_variable(old_checkpoint, n)
                for n, _ in tf.train.list_variables(old_checkpoint)}
  km = _estimator(model_dir, metric, mini_batch)
  hook = LossRecorder()

  km.train(_points, steps=3, hooks=[hook])

  assert km.get_variable_value('global_step') == 13
  assert tf.train.load_variable(str(model_dir), 'global_step') == 13
  latest = tf.train.latest_checkpoint(str(model_dir))
  assert os.path.basename(latest) == 'model.ckpt-13'
  # The legacy checkpoint is still there and still loads, unchanged.
  for var_name, value in old_values.items():
    np.testing.assert_array_equal(
        tf.train.load_variable(old_checkpoint, var_name), value)
  assert km.evaluate(_points, checkpoint_path=old_checkpoint)[
      'global_step'] == _LEGACY_STEP
  assert len(hook.losses) == 3

  centers = tf.train.load_variable(str(model_dir), 'clusters')
  if not mini_batch:
    oracle, oracle_losses = _numpy_lloyd(_POINTS, old_values['clusters'], 3)
    np.testing.assert_allclose(centers, oracle, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(hook.losses, oracle_losses, rtol=1e-4)
    # Lloyd never raises the objective (float32 slack only).
    assert all(b <= a * (1 + 1e-6) for a, b in
               zip(hook.losses, hook.losses[1:]))
  else:
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1.0,
                               rtol=1e-5)
    counts = tf.train.load_variable(str(model_dir), 'Variable')
    assert counts.dtype == np.int64
    # Every step sees the 300 points once: +300 per step, +900 in all.
    assert counts.sum() - old_values['Variable'].sum() == 3 * len(_POINTS)
    assert np.all(counts >= old_values['Variable'])


def test_mini_batch_counts_grow_by_the_batch_size_each_step(tmp_path):
  model_dir = _copy_legacy('cosine_minibatch', tmp_path)
  km = _estimator(model_dir, 'cosine', True)
  totals = [int(km.get_variable_value('Variable').sum())]
  for _ in range(3):
    km.train(_points, steps=1)
    totals.append(int(km.get_variable_value('Variable').sum()))
  assert np.diff(totals).tolist() == [len(_POINTS)] * 3
  assert km.get_variable_value('global_step') == 13


@pytest.mark.parametrize('name,metric,mini_batch', _CASES, ids=_IDS)
def test_max_steps_already_reached_trains_nothing(name, metric, mini_batch,
                                                  tmp_path):
  model_dir = _copy_legacy(name, tmp_path)
  km = _estimator(model_dir, metric, mini_batch)
  before = km.cluster_centers()
  files = _snapshot(model_dir)

  km.train(_points, max_steps=_LEGACY_STEP)

  assert _snapshot(model_dir) == files

  assert km.get_variable_value('global_step') == _LEGACY_STEP
  assert os.path.basename(km.latest_checkpoint()) == 'model.ckpt-10'
  np.testing.assert_array_equal(km.cluster_centers(), before)


@pytest.mark.parametrize('name,metric,mini_batch', _CASES, ids=_IDS)
def test_other_num_clusters_is_refused_and_leaves_the_dir(
    name, metric, mini_batch, tmp_path):
  model_dir = _copy_legacy(name, tmp_path)
  before = _snapshot(model_dir)
  km = _estimator(model_dir, metric, mini_batch, num_clusters=4)

  with pytest.raises(ValueError, match=r'num_clusters=5.*num_clusters=4'):
    km.train(_points, steps=1)
  with pytest.raises(ValueError, match=r'num_clusters=5.*num_clusters=4'):
    list(km.predict_cluster_index(_points))
  # Every reader refuses it alike, cluster_centers too.
  for read in (km.cluster_centers, lambda: km.score(_points),
               lambda: list(km.transform(_points)),
               lambda: km.evaluate(_points)):
    with pytest.raises(ValueError, match=(
        r"model_dir='.*' holds a model with num_clusters=5 but this "
        r'estimator has num_clusters=4; use the same num_clusters')):
      read()
  # get_variable_value reads the checkpoint as it is.
  assert km.get_variable_value('clusters').shape[0] == 5

  assert _snapshot(model_dir) == before
