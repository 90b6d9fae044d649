"""Properties over random shapes, seeds and data (hypothesis).

- The cluster index is numpy's argmin, ties to the lowest index: exactly on
  small-integer data (where float32 is exact and ties are common), through
  both inference paths of the core (`nearest`, in chunks, and `infer`) and
  through `KMeansClustering.predict_cluster_index`; under cosine, to float32
  rounding.
- The full-batch loss never increases from one step to the next.
- A permutation of the data gives the same full-batch result from the same
  initial centers (core on a tensor; estimator on a dataset of batches).
- Mini-batch and full-batch training never produce NaN or Inf centers or
  losses, whatever the (finite) data: zeros, duplicates, 1e-30, 1e6, few
  points, batches of any size, either metric.
- Resuming from a checkpoint equals training straight through, bit for bit,
  for every initialisation, full batch and mini-batch (also with
  `mini_batch_steps_per_iteration` > 1).
Examples are kept few (and deadlines off) so the module runs in about a
minute on two cores; each data set comes from `np.random.default_rng(seed)`
or from hypothesis' own arrays.
"""

import itertools
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kmeans_estimator import KMeansClustering
from kmeans_estimator.io import checkpoints
from kmeans_estimator import model as kmeans_lib

import oracles

_SETTINGS = dict(deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow,
                                        HealthCheck.data_too_large])
_METRICS = st.sampled_from(oracles.METRICS)


def _core(k, centers=None, metric=oracles.SQUARED_EUCLIDEAN,
          mini_batch=False, seed=0, **kwargs):
  return kmeans_lib.KMeans(
      num_clusters=k,
      initial_clusters='random' if centers is None else centers,
      distance_metric=metric, use_mini_batch=mini_batch, random_seed=seed,
      **kwargs)


def _grid(draw, rows, d):
  """Small integers as float32: distances are exact, so ties are real."""
  return draw(hnp.arrays(np.int8, (rows, d),
                         elements=st.integers(-3, 3))).astype(np.float32)


# ------------------------------------------------------ argmin, ties low
@settings(max_examples=60, **_SETTINGS)
@given(st.data())
def test_cluster_index_is_the_numpy_argmin_ties_to_the_lowest(data):
  n, d, k = (data.draw(st.integers(1, 30)), data.draw(st.integers(1, 4)),
             data.draw(st.integers(1, 6)))
  points, centers = _grid(data.draw, n, d), _grid(data.draw, k, d)
  chunk = data.draw(st.sampled_from([1, k, 2 * k + 1, 1 << 20]))
  expected = oracles.distances(points, centers).argmin(axis=1)  # First min.
  core = _core(k, centers, chunk_elements=chunk)
  assert bool(core.initialize(points))
  np.testing.assert_array_equal(core.nearest(points)[0], expected)
  np.testing.assert_array_equal(core.infer(points)[1], expected)


@settings(max_examples=40, **_SETTINGS)
@given(st.integers(0, 2**31 - 1), st.integers(1, 40), st.integers(1, 5),
       st.integers(1, 6))
def test_cosine_cluster_index_is_the_nearest_center(seed, n, d, k):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(n, d)).astype(np.float32)
  points[rng.random(n) < 0.2] = 0  # Some zero vectors.
  centers = rng.normal(size=(k, d)).astype(np.float32)
  duplicate = int(rng.integers(k))
  centers[duplicate] = centers[0]  # An exact tie with center 0.
  core = _core(k, centers, oracles.COSINE)
  assert bool(core.initialize(points))
  distances = oracles.distances(points, core.clusters.numpy(), oracles.COSINE)
  for index in (core.nearest(points)[0].numpy(), core.infer(points)[1]):
    chosen = distances[np.arange(n), index]
    best = distances.min(axis=1)
    assert np.all(chosen <= best + 1e-5)
    if duplicate:  # An exact tie goes to the lowest index: 0, not it.
      assert not np.any(index == duplicate)
    clear = np.sort(distances, axis=1)[:, 1:2].ravel() - best > 1e-4 if (
        k > 1) else np.ones(n, bool)
    np.testing.assert_array_equal(index[clear], distances.argmin(1)[clear])
  # Zero vectors: distance 1 to every center, so cluster 0.
  zero = ~points.any(axis=1)
  np.testing.assert_array_equal(core.nearest(points)[0].numpy()[zero], 0)


@settings(max_examples=15, **_SETTINGS)
@given(st.data())
@pytest.mark.slow
def test_predict_cluster_index_is_the_numpy_argmin(data):
  n, d, k = (data.draw(st.integers(1, 25)), data.draw(st.integers(1, 3)),
             data.draw(st.integers(1, 5)))
  points, centers = _grid(data.draw, n, d), _grid(data.draw, k, d)
  with tempfile.TemporaryDirectory() as model_dir:
    checkpoints.save_checkpoint(model_dir, 1, {
        'clusters': centers, 'global_step': np.int64(1),
        'initialized': np.bool_(True),
        'distance_metric': np.bytes_(b'squared_euclidean')})
    estimator = KMeansClustering(num_clusters=k, model_dir=model_dir)
    index = list(estimator.predict_cluster_index(lambda: points))
  np.testing.assert_array_equal(
      index, oracles.distances(points, centers).argmin(axis=1))


# --------------------------------------------------- loss never increases
@settings(max_examples=40, **_SETTINGS)
@given(st.integers(0, 2**31 - 1), st.integers(2, 60), st.integers(1, 5),
       st.integers(1, 8), _METRICS, st.booleans())
@pytest.mark.slow
def test_full_batch_loss_never_increases(seed, n, d, k, metric, duplicates):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(n, d)) * rng.choice([1e-3, 1.0, 1e3])
  if duplicates:
    points = points[rng.integers(0, max(n // 3, 1), n)]
  points = points.astype(np.float32)
  k = min(k, n)
  core = _core(k, metric=metric, seed=seed)
  assert bool(core.initialize(points))
  losses = [float(core.step(points)['loss']) for _ in range(10)]
  for before, after in itertools.pairwise(losses):
    assert after <= before + 1e-5 * abs(before) + 1e-6, losses


# ----------------------------------------------- permutation invariance
@settings(max_examples=30, **_SETTINGS)
@given(st.integers(0, 2**31 - 1), st.integers(2, 80), st.integers(1, 4),
       st.integers(1, 6), _METRICS, st.integers(1, 6))
def test_a_permutation_gives_the_same_full_batch_result(seed, n, d, k, metric,
                                                        steps):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(n, d)).astype(np.float32)
  k = min(k, n)
  centers = points[rng.choice(n, k, replace=False)]
  shuffled = points[rng.permutation(n)]
  results = []
  for data in (points, shuffled):
    core = _core(k, centers, metric)
    assert bool(core.initialize(data))
    for _ in range(steps):
      core.step(data)
    results.append(core)
  np.testing.assert_allclose(results[0].clusters.numpy(),
                             results[1].clusters.numpy(), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(results[0].nearest(points)[0],
                                results[1].nearest(points)[0])


@settings(max_examples=6, **_SETTINGS)
@given(st.integers(0, 2**31 - 1), st.integers(4, 60), st.integers(1, 16))
@pytest.mark.slow
def test_a_permuted_stream_of_batches_trains_the_same_estimator(seed, n,
                                                                batch):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(n, 2)).astype(np.float32)
  centers = points[:3].copy()
  results = []
  for data in (points, points[rng.permutation(n)]):
    with tempfile.TemporaryDirectory() as model_dir:
      estimator = KMeansClustering(
          3, model_dir=model_dir, initial_clusters=centers,
          use_mini_batch=False)
      estimator.train(lambda d=data: tf.data.Dataset.from_tensor_slices(
          d).batch(batch), steps=3)
      results.append(estimator.cluster_centers())
  np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------- never NaN
_VALUES = st.one_of(
    st.sampled_from([0.0, 1e-30, -1e-30, 1.0, -1.0, 1e6, -1e6, 3.5]),
    st.floats(-1e6, 1e6, width=32))


@settings(max_examples=60, **_SETTINGS)
@given(st.data(), _METRICS, st.booleans())
@pytest.mark.slow
def test_training_never_produces_nan(data, metric, mini_batch):
  n, d = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 4))
  points = data.draw(hnp.arrays(np.float32, (n, d), elements=_VALUES))
  k = data.draw(st.integers(1, n))
  batch = data.draw(st.integers(1, n))
  batches = [points[i:i + batch] for i in range(0, n, batch)]
  core = _core(k, metric=metric, mini_batch=mini_batch,
               mini_batch_steps_per_iteration=data.draw(st.integers(1, 3)))
  for part in batches:  # 'random' takes centers from successive batches.
    if bool(core.initialize(part)):
      break
  assert bool(core.initialized)  # k <= n points in all.
  for _ in range(4):
    for part in (batches if mini_batch else [points]):
      loss = float(core.step(part)['loss'])
      assert np.isfinite(loss)
      assert np.isfinite(core.clusters.numpy()).all(), core.clusters.numpy()
  if metric == oracles.COSINE:  # Unit centers, or zero (zero data).
    norms = np.linalg.norm(core.clusters.numpy(), axis=1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0)), norms


# ------------------------------------------------ resume = straight through
@settings(max_examples=12, **_SETTINGS)
@given(st.integers(0, 2**31 - 1),
       st.sampled_from(['random', 'kmeans_plus_plus', 'kmc2']),
       st.booleans(), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3))
@pytest.mark.slow
def test_resume_from_a_checkpoint_equals_straight_through(
    seed, init, mini_batch, steps_per_iteration, first, second):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(int(rng.integers(8, 40)), 2)).astype(np.float32)
  kwargs = dict(num_clusters=int(rng.integers(1, 5)), seed=seed,
                initial_clusters=init, use_mini_batch=mini_batch,
                mini_batch_steps_per_iteration=steps_per_iteration)
  with tempfile.TemporaryDirectory() as root:
    resumed_dir, straight_dir = f'{root}/resumed', f'{root}/straight'
    KMeansClustering(model_dir=resumed_dir, **kwargs).train(
        lambda: points, steps=first)
    KMeansClustering(model_dir=resumed_dir, **kwargs).train(
        lambda: points, steps=second)
    KMeansClustering(model_dir=straight_dir, **kwargs).train(
        lambda: points, steps=first + second)
    resumed = checkpoints.read_checkpoint(resumed_dir)
    straight = checkpoints.read_checkpoint(straight_dir)
  assert sorted(resumed) == sorted(straight)
  for name in resumed:
    np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
  assert resumed['global_step'] == first + second
