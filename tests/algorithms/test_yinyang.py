"""Yinyang k-means gives exactly Lloyd's steps while skipping groups.

Oracle: numpy float64 Lloyd (the nearest center of each point under the
centers before each step, ties to the lower index; weighted means), and
the library's own Lloyd step on the same data; invariants: the groups'
bounds skip most distances once the clustering settles, a resumed run
equals an uninterrupted one bit for bit, the checkpoint holds the same
variables as Lloyd's.
"""

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator import algorithms
from kmeans_estimator.algorithms import yinyang

import oracles
from helpers import fast_first


def blobs(seed, n=600, d=5, k=6, width=8.0):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 100, size=(k, d))
  return centers[rng.integers(k, size=n)] + rng.normal(0, width, size=(n, d))


def numpy_step(points, centers, weights=None):
  """(assignments, new centers) of one exact weighted Lloyd step."""
  index = oracles.distances(points, centers).argmin(axis=1)
  w = np.ones(len(points)) if weights is None else weights
  new = centers.copy()
  for j in range(len(centers)):
    mass = w[index == j].sum()
    if mass > 0:
      new[j] = (w[index == j, None] * points[index == j]).sum(0) / mass
  return index, new


def run(algorithm, points, initial, steps, weights=None,
        chunk_elements=1 << 18, dtype=tf.float64):
  """[(assignments, centers before, centers after, stats)] per step."""
  core = KMeans(len(initial), initial_clusters=initial, dtype=dtype,
                chunk_elements=chunk_elements)
  start, step = algorithms.get(algorithm).make_step(core)
  step = tf.function(step)
  w = None if weights is None else tf.constant(weights, dtype)
  state = start(points, w)
  history = []
  for _ in range(steps):
    before = core.clusters.numpy()
    stats, state = step(tf.constant(points, dtype), state, w)
    history.append((state.statistics.assignments.numpy(), before,
                    core.clusters.numpy(), stats))
  return history


def check_equals_numpy_lloyd(points, initial, steps, weights=None,
                             chunk_elements=1 << 18):
  """Every step: the assignments are the numpy argmin under the centers
  before the step, the new centers the numpy update from those centers,
  and the centers track numpy Lloyd run alone."""
  history = run('yinyang', points, initial, steps, weights, chunk_elements)
  want = np.asarray(initial, np.float64)
  for assignments, before, after, stats in history:
    index, new = numpy_step(points, before, weights)
    np.testing.assert_array_equal(assignments, index)
    np.testing.assert_allclose(after, new, rtol=1e-12, atol=1e-10)
    _, want = numpy_step(points, want, weights)
    np.testing.assert_allclose(after, want, rtol=1e-9, atol=1e-8)
    assert int(stats['num_points']) == round(
        len(points) if weights is None else weights.sum())
  return history


@pytest.mark.parametrize('seed', fast_first(1, range(4)))
@pytest.mark.parametrize('k', [1, 2, 7, 25, 60])
def test_yinyang_steps_equal_numpy_lloyd(seed, k):
  points = blobs(seed, k=max(k, 3))
  # The first k points: a poor start (several centers in one blob) keeps
  # the bounds busy for a while.
  check_equals_numpy_lloyd(points, points[:k], 8)


@pytest.mark.parametrize('chunk_elements', [1, 7, 40])
def test_yinyang_in_small_chunks_equals_numpy_lloyd(chunk_elements):
  points = blobs(5, k=30)
  check_equals_numpy_lloyd(points, points[:30], 6, chunk_elements=chunk_elements)


def test_yinyang_breaks_ties_to_the_lower_index_as_lloyd_does():
  # Integer grid points with duplicates; centers on the grid: many points
  # are exactly as far from two or four centers (distances are exact in
  # float64), and the nearest is the lowest index among them.
  grid = np.stack(np.meshgrid(np.arange(9.0), np.arange(9.0)), -1).reshape(
      -1, 2)
  points = np.concatenate([grid, grid[::3], grid[::7]])
  for order in ([(2, 2), (6, 2), (2, 6), (6, 6)],
                [(6, 6), (2, 6), (6, 2), (2, 2), (4, 4)]):
    initial = np.asarray(order, np.float64)
    history = check_equals_numpy_lloyd(points, initial, 5)
    ties = np.sum(np.ptp(
        np.sort(oracles.distances(points, initial), axis=1)[:, :2],
        axis=1) == 0)
    assert ties > 0 and history[0][0].tolist() == oracles.distances(
        points, initial).argmin(1).tolist()


def test_yinyang_duplicate_points_and_centers():
  # Two initial centers coincide: the second never gets a point and keeps
  # its place (a tie always goes to the first).
  points = np.repeat(blobs(2, n=100, k=4), 3, axis=0)
  initial = points[[0, 0, 150, 200, 250]]
  history = check_equals_numpy_lloyd(points, initial, 6)
  assert int(history[0][3]['empty_clusters']) >= 1


def test_yinyang_with_weights_equals_weighted_numpy_lloyd():
  rng = np.random.default_rng(4)
  points = blobs(4, k=12)
  weights = rng.uniform(0, 3, size=len(points))
  weights[::17] = 0.0
  check_equals_numpy_lloyd(points, points[:12], 7, weights=weights)


def test_yinyang_integer_weights_equal_repeated_rows():
  rng = np.random.default_rng(6)
  points = blobs(6, n=200, k=8)
  weights = rng.integers(0, 4, size=len(points)).astype(np.float64)
  weighted = run('yinyang', points, points[:8], 5, weights)
  repeated = run('yinyang', np.repeat(points, weights.astype(int), axis=0),
                 points[:8], 5)
  np.testing.assert_allclose(weighted[-1][2], repeated[-1][2], rtol=1e-12)


def test_cluster_that_goes_empty_keeps_its_center():
  points = blobs(7, k=5)
  # Center 3 sits far from every point: its cluster is empty from the
  # start; center 4 starts inside a blob and center 0 next to it.
  initial = np.concatenate([points[:3], [[1e4] * 5], points[3:4]])
  history = check_equals_numpy_lloyd(points, initial, 6)
  for _, _, after, stats in history:
    np.testing.assert_array_equal(after[3], initial[3])
    assert int(stats['empty_clusters']) >= 1


@pytest.mark.parametrize('seed', fast_first(1, range(3)))
def test_yinyang_equals_the_library_lloyd_step_in_float32(seed):
  points = blobs(seed, n=2000, d=8, k=40, width=5.0).astype(np.float32)
  initial = points[:40]
  lloyd = run('lloyd', points, initial, 10, dtype=tf.float32)
  fast = run('yinyang', points, initial, 10, dtype=tf.float32)
  for (a, _, c, s), (b, _, e, t) in zip(lloyd, fast):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, e)  # Exact carried sums: bit for bit.
    assert float(s['loss']) == pytest.approx(float(t['loss']), rel=1e-6)


def test_groups_skip_most_distances_once_settled():
  points = blobs(8, n=3000, d=4, k=50, width=1.0)
  rng = np.random.default_rng(8)
  initial = points[rng.choice(len(points), 50, replace=False)]
  history = run('yinyang', points, initial, 12)
  computed = [int(stats['distances_computed']) for *_, stats in history]
  assert computed[0] == len(points) * 50
  assert computed[-1] < 0.1 * len(points) * 50


def test_groups_are_formed_by_kmeans_of_the_centers():
  # Three tight families of 10 centers each, in shuffled index order: the
  # 3 groups are the families, not blocks of consecutive indices.
  rng = np.random.default_rng(1)
  family = np.repeat(np.arange(3), 10)
  rng.shuffle(family)
  centers = (np.array([[0., 0.], [100., 0.], [0., 100.]])[family] +
             rng.normal(0, 1, size=(30, 2)))
  groups = yinyang.group_centers(tf.constant(centers)).numpy()
  assert yinyang.num_groups(30) == 3
  for f in range(3):
    assert len(set(groups[family == f])) == 1
  assert len(set(groups)) == 3


def test_lower_bounds_are_per_group_not_per_center():
  points = blobs(9, n=500, k=40)
  core = KMeans(40, initial_clusters=points[:40], dtype=tf.float64)
  state = core.carried_state('yinyang', points)
  assert tuple(state.lower.shape) == (500, 4)
  assert tuple(state.upper.shape) == (500,)


# ------------------------------------------------------------- estimator
def _estimator(tmp_path, name, initial, algorithm):
  return KMeansClustering(len(initial), model_dir=str(tmp_path / name),
                          initial_clusters=initial, use_mini_batch=False,
                          algorithm=algorithm)


def test_estimator_yinyang_equals_lloyd_over_ten_steps(tmp_path):
  points = blobs(10, n=1500, k=20).astype(np.float32)
  initial = points[:20]
  results = {}
  for algorithm in ('lloyd', 'yinyang'):
    kmeans = _estimator(tmp_path, algorithm, initial, algorithm)
    kmeans.train(lambda: points, steps=10)
    results[algorithm] = (kmeans.cluster_centers(),
                          list(kmeans.predict_cluster_index(points)))
  np.testing.assert_array_equal(results['yinyang'][0], results['lloyd'][0])
  assert results['yinyang'][1] == results['lloyd'][1]


def test_estimator_yinyang_resumed_equals_uninterrupted(tmp_path):
  points = blobs(11, n=1200, k=30).astype(np.float32)
  initial = points[:30]
  straight = _estimator(tmp_path, 'straight', initial, 'yinyang')
  straight.train(lambda: points, steps=7)
  resumed = _estimator(tmp_path, 'resumed', initial, 'yinyang')
  resumed.train(lambda: points, steps=3)
  # A fresh estimator on the same model_dir: the state (groups included)
  # is made again from the restored centers.
  resumed = _estimator(tmp_path, 'resumed', initial, 'yinyang')
  resumed.train(lambda: points, steps=4)
  np.testing.assert_array_equal(resumed.cluster_centers(),
                                straight.cluster_centers())
  assert resumed.get_variable_value('global_step') == 7


def test_estimator_yinyang_checkpoint_names_are_lloyds(tmp_path):
  points = blobs(12, n=300, k=5).astype(np.float32)
  names = {}
  for algorithm in ('lloyd', 'yinyang'):
    kmeans = _estimator(tmp_path, algorithm, points[:5], algorithm)
    kmeans.train(lambda: points, steps=2)
    names[algorithm] = {
        name: tuple(shape) for name, shape in
        tf.train.list_variables(str(tmp_path / algorithm))}
  assert names['yinyang'] == names['lloyd']
  assert 'clusters' in names['yinyang']


def test_estimator_yinyang_on_a_dataset_falls_back_to_lloyd(tmp_path):
  points = blobs(13, k=6).astype(np.float32)
  kmeans = _estimator(tmp_path, 'ds', points[:6], 'yinyang')
  kmeans.train(lambda: tf.data.Dataset.from_tensor_slices(points).batch(100),
               steps=3)
  want, _ = oracles.lloyd(points, points[:6], 3)
  np.testing.assert_allclose(kmeans.cluster_centers(), want, rtol=1e-5,
                             atol=1e-4)


@pytest.mark.parametrize('kwargs, match', [
    (dict(algorithm='yinyang', use_mini_batch=True),
     "algorithm='yinyang' needs use_mini_batch=False"),
    (dict(algorithm='yinyang', use_mini_batch=False,
          distance_metric='cosine'),
     "algorithm='yinyang' needs .* Received: use_mini_batch=False, "
     "distance_metric='cosine'"),
    (dict(algorithm='yinyang', use_mini_batch=False, num_restarts=2),
     "num_restarts=2 needs algorithm='lloyd'"),
])
def test_bad_yinyang_options(tmp_path, kwargs, match):
  with pytest.raises(ValueError, match=match):
    KMeansClustering(3, model_dir=str(tmp_path), **kwargs)
  assert list(tmp_path.iterdir()) == []


def test_an_empty_group_never_hides_a_point_from_the_filters():
  # Groups 0 and 1 hold the 30 centers and group 2 none: its bound is +inf
  # and must stay so (not NaN) through the offsets and the margin.
  points = blobs(14, n=500, k=6)
  centers = tf.constant(points[:30])
  x = tf.constant(points)
  options = algorithms.Options(num_clusters=30, dtype=tf.float64)
  state = yinyang.init_state(x, centers, None, options)
  lower = np.zeros((500, 3))
  lower[:, 2] = np.inf
  state = state._replace(groups=tf.constant(np.arange(30) // 15, tf.int32),
                         lower=tf.constant(lower),
                         offsets=tf.zeros([3], tf.float64))
  step = tf.function(yinyang.step)
  for _ in range(6):
    before = centers.numpy()
    centers, state, _ = step(x, centers, state, None, options)
    index, new = numpy_step(points, before)
    np.testing.assert_array_equal(state.statistics.assignments.numpy(), index)
    np.testing.assert_allclose(centers.numpy(), new, rtol=1e-12, atol=1e-10)
    assert np.all(np.isinf(state.lower.numpy()[:, 2]))


# ---------------------------------------------------------------- layout
@pytest.mark.parametrize('k', [1, 7, 25, 60, 123])
def test_groups_have_equal_sizes(k):
  rng = np.random.default_rng(k)
  centers = rng.normal(0, 10, size=(k, 3))
  groups = yinyang.group_centers(tf.constant(centers)).numpy()
  t = yinyang.num_groups(k)
  sizes = np.bincount(groups, minlength=t)
  assert len(sizes) == t and sizes.sum() == k
  assert sizes.max() - sizes.min() <= 1
  np.testing.assert_array_equal(sizes, yinyang.group_sizes(k).numpy())


def test_layout_maps_every_slot_back_to_its_center():
  # Unequal groups (sizes 6, 0, 3, 4 in shuffled index order): every center
  # fills one slot of its group's row, in increasing index; the padding
  # slots name no center (index k) and score +inf.
  rng = np.random.default_rng(3)
  groups = np.array([0] * 6 + [2] * 3 + [3] * 4, np.int32)
  rng.shuffle(groups)
  centers = rng.normal(size=(13, 4))
  slots, slot_centers, slot_norms, sizes = (
      v.numpy() for v in yinyang._layout(tf.constant(centers),
                                         tf.constant(groups), 4))
  np.testing.assert_array_equal(sizes, [6, 0, 3, 4])
  assert slots.shape == (4, 6)
  real = slots < 13
  np.testing.assert_array_equal(np.sort(slots[real]), np.arange(13))
  for g in range(4):
    row = slots[g][real[g]]
    np.testing.assert_array_equal(row, np.flatnonzero(groups == g))
  np.testing.assert_array_equal(slot_centers[real], centers[slots[real]])
  np.testing.assert_allclose(slot_norms[real],
                             (centers[slots[real]] ** 2).sum(1))
  assert np.all(np.isinf(slot_norms[~real]))
  np.testing.assert_array_equal(slot_centers[~real], 0.0)


def test_padding_slots_never_win():
  # k = 25: groups of 13 and 12, one padding slot, a center at the origin
  # in the layout. The points sit at the origin, far from every center.
  rng = np.random.default_rng(15)
  points = rng.normal(0, 0.5, size=(400, 3))
  initial = rng.uniform(50, 100, size=(25, 3)) * rng.choice([-1, 1], (25, 3))
  history = check_equals_numpy_lloyd(points, initial, 4)
  for assignments, *_ in history:
    assert assignments.min() >= 0 and assignments.max() < 25


def test_ties_across_groups_go_to_the_lower_index():
  # 20 centers on a grid (2 groups), in shuffled index order; integer grid
  # points are often exactly as far from centers of both groups.
  rng = np.random.default_rng(16)
  grid = np.stack(np.meshgrid(np.arange(20.0), np.arange(16.0)), -1).reshape(
      -1, 2)
  points = np.concatenate([grid, grid[::5]])
  initial = np.stack(np.meshgrid(2.0 + 4 * np.arange(5),
                                 2.0 + 4 * np.arange(4)), -1).reshape(-1, 2)
  initial = initial[rng.permutation(20)]
  distances = oracles.distances(points, initial)
  groups = yinyang.group_centers(tf.constant(initial)).numpy()
  first, second = np.argsort(distances, axis=1, kind='stable')[:, :2].T
  rows = np.arange(len(points))
  tied = distances[rows, first] == distances[rows, second]
  # Some tie's lower index is in the later group.
  assert np.sum(tied & (groups[first] > groups[second])) > 0
  history = check_equals_numpy_lloyd(points, initial, 4)
  np.testing.assert_array_equal(history[0][0], distances.argmin(1))
