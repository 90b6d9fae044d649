"""Tests of the initialisation of restarts (`initialization.choose_per_restart`).

Evidence: the reference of one `choose` call per restart, unrolled in the
same graph (what every restart draws, bit for bit), and the op count of the
traced initialisation (its graph does not grow with num_restarts).
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import initialization
from kmeans_estimator import model as kmeans

from helpers import fast_first

INITS = ('random', 'kmeans_plus_plus', 'kmc2', 'kmeans_parallel')
METRICS = ('squared_euclidean', 'cosine')
PATH = (1, 0)


def _points(seed, n=60, d=3):
  return np.random.default_rng(seed).normal(size=(n, d))


def _weights(seed, n=60):
  weights = np.random.default_rng(seed).uniform(0.5, 3., size=n)
  weights[::7] = 0.
  return weights


def _unrolled(choose, base, num_restarts):
  """The reference: one `choose` per restart, each with its own seed."""
  return tf.stack([choose(initialization.seed(base, PATH, r))
                   for r in range(num_restarts)])


def _batch_chooser(method, metric, points, weights, wanted, dtype):
  km = kmeans.KMeans(4, initial_clusters=method, distance_metric=metric,
                     use_mini_batch=False, num_restarts=3, dtype=dtype,
                     random_seed=11)
  options = initialization.Options.of(km.config, 4, points.shape[1])
  return km, lambda: initialization.batch_chooser(
      km.prepare(points), None if weights is None else
      tf.constant(weights, dtype), wanted, options, km.prepare)


# Every initialiser, metric and weighting; a few of them in the inner loop.
_FAST = [('kmeans_parallel', 'squared_euclidean', True),
         ('kmeans_plus_plus', 'cosine', False),
         ('kmc2', 'cosine', False), ('random', 'squared_euclidean', True)]
_CASES = _FAST + [
    (method, metric, weighted) for method in INITS for metric in METRICS
    for weighted in (False, True)
    if not (method == 'kmc2' and weighted) and
    (method, metric, weighted) not in _FAST]


@pytest.mark.parametrize('method, metric, weighted',
                         fast_first(len(_FAST), _CASES))
def test_restarts_in_a_loop_draw_what_one_choose_per_restart_draws(
    method, metric, weighted):
  points = _points(0)
  weights = _weights(1) if weighted else None
  num_restarts = 4
  for dtype in (tf.float32, tf.float64):
    km, chooser = _batch_chooser(method, metric, points, weights,
                                 tf.constant(4), dtype)
    base = km.seed_argument()

    @tf.function(autograph=False)
    def looped():
      return initialization.choose_per_restart(
          chooser(), base, PATH, num_restarts, dtype)[1]

    @tf.function(autograph=False)
    def unrolled():
      return _unrolled(chooser(), base, num_restarts)

    got = looped().numpy()
    np.testing.assert_array_equal(got, unrolled().numpy())
    np.testing.assert_array_equal(got, looped_eagerly(chooser, base,
                                                      num_restarts, dtype))
    assert len({c.tobytes() for c in got}) == num_restarts


def looped_eagerly(chooser, base, num_restarts, dtype):
  return initialization.choose_per_restart(
      chooser(), base, PATH, num_restarts, dtype)[1].numpy()


def test_random_restarts_of_a_small_batch_in_a_loop_draw_what_unrolled_draw():
  points = _points(2, n=3)
  km, chooser = _batch_chooser('random', 'squared_euclidean', points, None,
                               tf.constant(4), tf.float32)
  base = km.seed_argument()
  looped = tf.function(lambda: initialization.choose_per_restart(
      chooser(), base, PATH, 5, tf.float32)[1])()
  unrolled = tf.function(lambda: _unrolled(chooser(), base, 5))()
  assert looped.shape == (5, 3, 3)
  np.testing.assert_array_equal(looped.numpy(), unrolled.numpy())


@pytest.mark.parametrize('weighted', fast_first(1, [True, False]))
def test_streamed_kmeans_parallel_restarts_in_a_loop_draw_what_unrolled_draw(
    weighted):
  points = _points(3)
  data = (points if not weighted else (points, _weights(4)))
  dataset = tf.data.Dataset.from_tensor_slices(data).batch(25)
  km = kmeans.KMeans(4, initial_clusters='kmeans_parallel',
                     use_mini_batch=False, num_restarts=3, dtype=tf.float64,
                     random_seed=11, num_features=3)
  options = initialization.Options.of(km.config, 4, 3)
  base = km.seed_argument()

  def chooser():
    return initialization.dataset_chooser(dataset, options, km.prepare)

  looped = tf.function(lambda: initialization.choose_per_restart(
      chooser(), base, PATH, 3, tf.float64)[1])()
  unrolled = tf.function(lambda: _unrolled(chooser(), base, 3))()
  np.testing.assert_array_equal(looped.numpy(), unrolled.numpy())


def _num_ops(concrete):
  """The ops of a concrete function's graph and of every function it calls
  (loop bodies and conditions)."""
  graph_def = concrete.graph.as_graph_def()
  return len(graph_def.node) + sum(len(f.node_def)
                                   for f in graph_def.library.function)


def _traced_initialize_ops(method, num_restarts, weighted):
  km = kmeans.KMeans(4, initial_clusters=method, use_mini_batch=False,
                     num_restarts=num_restarts, num_features=3,
                     random_seed=1)
  points = tf.TensorSpec([None, 3], tf.float32)
  if weighted:
    initialize = tf.function(km.initialize).get_concrete_function(
        points, tf.TensorSpec([None], tf.float32))
  else:
    initialize = tf.function(km.initialize).get_concrete_function(points)
  return _num_ops(initialize)


@pytest.mark.parametrize('method', fast_first(2, INITS))
def test_traced_initialisation_does_not_grow_with_num_restarts(method):
  weighted = method != 'kmc2'
  assert (_traced_initialize_ops(method, 2, weighted) ==
          _traced_initialize_ops(method, 8, weighted))


def test_traced_dataset_initialisation_does_not_grow_with_num_restarts():
  dataset = tf.data.Dataset.from_tensor_slices(_points(5)).batch(25)

  def num_ops(num_restarts):
    km = kmeans.KMeans(4, initial_clusters='kmeans_parallel',
                       use_mini_batch=False, num_restarts=num_restarts,
                       num_features=3, random_seed=1)
    return _num_ops(tf.function(
        lambda: km.initialize_from_dataset(dataset)).get_concrete_function())

  assert num_ops(2) == num_ops(8)


def test_seed_of_a_restart_tensor_is_the_seed_of_the_python_int():
  base = tf.constant([5, 9], tf.int64)
  for r in range(4):
    np.testing.assert_array_equal(
        initialization.seed(base, PATH, tf.constant(r)).numpy(),
        initialization.seed(base, PATH, r).numpy())
  assert not np.array_equal(initialization.seed(base, PATH, 1).numpy(),
                            initialization.seed(base, PATH, 0).numpy())

