"""Calls in a row reuse compiled steps and the restored state.

The legacy documentation loop (ten rounds of train, cluster_centers, score
on the same data) must not retrace a tf.function or reload a checkpoint the
core already holds: that is what makes a round cost milliseconds rather
than a graph rebuild. Timing itself is measured in benchmarks/, not here.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeansClustering
from kmeans_estimator import model as kmeans_lib

import oracles


def _trace_counts(estimator):
  return {name: function.experimental_get_tracing_count()
          for name, function in estimator._compiled.items()}  # pylint: disable=protected-access


@pytest.mark.parametrize('mini_batch', [False, True])
def test_legacy_loop_traces_each_step_once_and_restores_once(
    tmp_path, monkeypatch, mini_batch):
  points = np.random.default_rng(0).uniform(0, 1000, (100, 2)).astype(
      np.float32)
  restores = []
  original = kmeans_lib.KMeans.restore

  def counting_restore(self, values):
    restores.append(int(values['global_step']))
    return original(self, values)

  monkeypatch.setattr(kmeans_lib.KMeans, 'restore', counting_restore)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path),
                            initial_clusters=points[:5],
                            use_mini_batch=mini_batch)
  input_fn = lambda: tf.convert_to_tensor(points)
  kmeans.train(input_fn)
  kmeans.cluster_centers()
  kmeans.score(input_fn)
  first_round = _trace_counts(kmeans)
  # Full batch on an array: the step carrying its state, and the call that
  # starts the state (once per train()).
  steps = {'train'} if mini_batch else {'lloyd', 'lloyd_state'}
  assert set(first_round) >= steps | {'eval'}
  assert all(count == 1 for count in first_round.values()), first_round
  for _ in range(9):
    kmeans.train(input_fn)
    centers = kmeans.cluster_centers()
    kmeans.score(input_fn)
  assert _trace_counts(kmeans) == first_round
  # Each train() saved the state the core holds: nothing was read back.
  assert restores == []
  assert kmeans.get_variable_value('global_step') == 10
  if not mini_batch:  # Ten rounds are ten exact Lloyd steps.
    want, _ = oracles.lloyd(points, points[:5], 10)
    np.testing.assert_allclose(centers, want, rtol=1e-5)


def test_a_new_checkpoint_from_elsewhere_is_read(tmp_path):
  points = np.random.default_rng(1).normal(size=(60, 3)).astype(np.float32)
  first = KMeansClustering(3, model_dir=str(tmp_path), seed=0,
                           use_mini_batch=False)
  first.train(lambda: points, steps=1)
  assert first.evaluate(lambda: points)['global_step'] == 1
  # Another estimator (another process, say) trains on.
  KMeansClustering(3, model_dir=str(tmp_path), seed=0,
                   use_mini_batch=False).train(lambda: points, steps=2)
  figures = first.evaluate(lambda: points)
  assert figures['global_step'] == 3
  np.testing.assert_allclose(
      figures['inertia'], oracles.inertia(points, first.cluster_centers()),
      rtol=1e-5)


def test_failed_training_does_not_leave_unsaved_state_in_use(tmp_path):
  points = np.random.default_rng(2).normal(size=(60, 3)).astype(np.float32)
  kmeans = KMeansClustering(3, model_dir=str(tmp_path), seed=0,
                            use_mini_batch=True)
  kmeans.train(lambda: points, steps=1)
  saved = kmeans.cluster_centers()

  class Boom(Exception):
    pass

  def exploding_input():
    yield points
    raise Boom()

  # One mini-batch step moves the centers in memory, then the input fails.
  with pytest.raises(Exception):
    kmeans.train(lambda: tf.data.Dataset.from_generator(
        exploding_input, output_signature=tf.TensorSpec([None, 3])),
                 steps=5)
  assert kmeans.get_variable_value('global_step') == 1
  # Whatever the core did in memory, predictions use the saved checkpoint.
  got = list(kmeans.predict_cluster_index(lambda: points))
  np.testing.assert_array_equal(
      got, oracles.distances(points, saved).argmin(axis=1))
