"""Calls in a row reuse compiled steps and the restored state.

The legacy documentation loop (ten rounds of train, cluster_centers, score
on the same data) must not retrace a tf.function or reload a checkpoint the
core already holds: that is what makes a round cost milliseconds rather
than a graph rebuild. Timing itself is measured in benchmarks/, not here.
"""

import importlib
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import kmeans_estimator
from kmeans_estimator import KMeansClustering
from kmeans_estimator import model as kmeans_lib
from kmeans_estimator.estimator import compiled

import oracles


@pytest.fixture(autouse=True)
def fresh_compiled_functions():
  """Every test counts traces from an empty process-wide cache."""
  compiled.clear()
  yield
  compiled.clear()


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


class _Messages(logging.Handler):

  def __init__(self):
    super().__init__()
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


@pytest.mark.parametrize('mini_batch', [False, True])
def test_a_choose_k_loop_traces_each_function_once(tmp_path, mini_batch):
  points = np.random.default_rng(3).normal(size=(200, 2)).astype(np.float32)
  functions = {}
  logged = _Messages()
  tf.get_logger().addHandler(logged)
  try:
    _choose_k(tmp_path, points, mini_batch, functions)
  finally:
    tf.get_logger().removeHandler(logged)
  assert all(len(ids) == 1 for ids in functions.values()), functions
  # Full batch with steps=3 and no hook: the steps run several per call
  # (the function of several carried steps, not the one of one step).
  steps = {'train'} if mini_batch else {'lloyd_steps', 'lloyd_state'}
  assert set(functions) >= steps | {'initialize', 'eval'}
  assert not [m for m in logged.messages if 'retracing' in m], logged.messages


def _choose_k(tmp_path, points, mini_batch, functions):
  """Trains, predicts and evaluates with k = 2..10; records in `functions`
  name -> ids of the shared functions used."""
  for k in range(2, 11):
    kmeans = KMeansClustering(k, model_dir=str(tmp_path / str(k)), seed=k,
                              initial_clusters='kmeans_plus_plus',
                              use_mini_batch=mini_batch)
    kmeans.train(points, steps=3)
    assert len(list(kmeans.predict_cluster_index(points))) == 200
    kmeans.evaluate(points)
    kmeans.score(points)
    # One function per name for every estimator: the process-wide cache.
    for name, function in kmeans._compiled.items():  # pylint: disable=protected-access
      functions.setdefault(name, set()).add(id(function._function))  # pylint: disable=protected-access
    counts = _trace_counts(kmeans)
    assert all(count == 1 for count in counts.values()), (k, counts)


def test_predict_on_a_new_estimator_over_a_trained_model_dir_traces_nothing(
    tmp_path):
  points = np.random.default_rng(4).normal(size=(50, 3)).astype(np.float32)
  trained = KMeansClustering(4, model_dir=str(tmp_path), seed=0,
                             use_mini_batch=False)
  trained.train(points, steps=2)
  first = list(trained.predict(points, predict_keys=['cluster_index',
                                                     'all_distances']))
  before = _trace_counts(trained)
  reader = KMeansClustering(4, model_dir=str(tmp_path), seed=0,
                            use_mini_batch=False)
  again = list(reader.predict(points, predict_keys=['cluster_index',
                                                    'all_distances']))
  assert _trace_counts(reader) == {
      name: count for name, count in before.items() if name in
      _trace_counts(reader)}
  for want, got in zip(first, again):
    np.testing.assert_array_equal(got['cluster_index'], want['cluster_index'])
    np.testing.assert_array_equal(got['all_distances'], want['all_distances'])


# Each option set trained alone in a new process (argv: the points, the
# option sets, a directory for the model_dirs, where to save the centers).
_FRESH_PROCESS = """
import sys
import numpy as np
from kmeans_estimator import KMeansClustering
points = np.load(sys.argv[1])
centers = []
for i, options in enumerate(eval(sys.argv[2])):
  kmeans = KMeansClustering(model_dir=f'{sys.argv[3]}/{i}', **options)
  kmeans.train(points, steps=4)
  centers.append(kmeans.cluster_centers())
np.savez(sys.argv[4], *centers)
"""

_OPTION_SETS = [
    dict(initial_clusters='kmeans_plus_plus', use_mini_batch=False),
    dict(initial_clusters='random', use_mini_batch=True),
    dict(initial_clusters='kmc2', use_mini_batch=False, algorithm='hamerly'),
    dict(initial_clusters='random', use_mini_batch=False, num_restarts=2),
    dict(initial_clusters='kmeans_plus_plus', use_mini_batch=False,
         distance_metric='cosine', dtype=tf.float64),
]


@pytest.mark.slow
def test_shared_traces_give_the_centers_of_a_fresh_process_bit_for_bit(
    tmp_path):
  points = np.random.default_rng(5).normal(size=(120, 3)).astype(np.float32)
  np.save(tmp_path / 'points.npy', points)
  option_sets = [dict(options, num_clusters=4, seed=7)
                 for options in _OPTION_SETS]
  here = []
  for i, options in enumerate(option_sets):
    # Estimators of other k trace the shared functions first.
    for k in (2, 6):
      KMeansClustering(**dict(options, num_clusters=k, seed=1),
                       model_dir=str(tmp_path / f'{i}_{k}')).train(
                           points, steps=4)
    kmeans = KMeansClustering(model_dir=str(tmp_path / f'here_{i}'),
                              **options)
    kmeans.train(points, steps=4)
    here.append(kmeans.cluster_centers())
  root = os.path.dirname(os.path.dirname(kmeans_estimator.__file__))
  shown = repr(option_sets)  # tf.float64 shows as itself.
  subprocess.run(
      [sys.executable, '-c', 'import tensorflow as tf\n' + _FRESH_PROCESS,
       str(tmp_path / 'points.npy'), shown, str(tmp_path / 'fresh'),
       str(tmp_path / 'fresh.npz')],
      check=True, env=dict(os.environ, PYTHONPATH=root,
                           TF_CPP_MIN_LOG_LEVEL='3'))
  fresh = np.load(tmp_path / 'fresh.npz')
  for i, centers in enumerate(here):
    np.testing.assert_array_equal(centers, fresh[f'arr_{i}'],
                                  err_msg=str(option_sets[i]))


@pytest.mark.parametrize('algorithm', ['lloyd', 'hamerly'])
def test_one_cluster_shares_the_traces_of_larger_k(tmp_path, algorithm):
  # k is dynamic in the shared traces: k = 1 (no second-nearest center for
  # Hamerly's bounds) runs the graph traced for k = 3.
  points = np.random.default_rng(6).normal(size=(40, 2)).astype(np.float32)
  for k in (3, 1):
    kmeans = KMeansClustering(k, model_dir=str(tmp_path / str(k)), seed=0,
                              use_mini_batch=False, algorithm=algorithm)
    kmeans.train(points, steps=3)
  assert all(count == 1 for count in _trace_counts(kmeans).values())
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             points.mean(axis=0, keepdims=True), rtol=1e-5)


def test_models_that_differ_only_in_how_they_start_share_the_step_traces(
    tmp_path):
  """A choose-k loop whose k-means++ retries grow with k (as scikit-learn's
  do) traces the initialiser per retries value, but the steps, evaluation
  and prediction once: their graphs do not depend on the initialiser."""
  compiled.clear()
  points = np.random.default_rng(3).normal(size=(200, 2)).astype('float32')
  for k, retries in ((2, 1), (3, 2), (9, 3)):
    estimator = KMeansClustering(
        k, model_dir=str(tmp_path / str(k)), use_mini_batch=False,
        initial_clusters=KMeansClustering.KMEANS_PLUS_PLUS_INIT,
        kmeans_plus_plus_num_retries=retries, seed=k)
    estimator.train(points, steps=3)
    list(estimator.predict_cluster_index(points))
  traces = {}
  for (name, _), function in compiled._CACHE.items():  # pylint: disable=protected-access
    traces.setdefault(name, []).append(
        function.experimental_get_tracing_count())
  assert len(traces['initialize']) == 3
  for name, counts in traces.items():
    if name != 'initialize':
      assert counts == [1], (name, counts)


@pytest.fixture
def fresh_retracing_counts(monkeypatch):
  """TensorFlow's per-process counts behind its "triggered tf.function
  retracing" warning start empty (it warns at most twice per function, so
  earlier tests could otherwise silence it)."""
  from tensorflow.python.eager.polymorphic_function import polymorphic_function  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(
      polymorphic_function, '_frequent_tracing_detector_manager',
      polymorphic_function._FrequentTracingDetectorManager())  # pylint: disable=protected-access


@pytest.mark.parametrize('mini_batch,initial_clusters,kind', [
    (False, 'random', 'input_fn'),
    (True, 'kmeans_plus_plus', 'input_fn'),
    (False, 'kmeans_parallel', 'array'),
])
def test_repeated_training_under_a_strategy_traces_each_function_once(
    tmp_path, fresh_retracing_counts, mini_batch, initial_clusters, kind):  # pylint: disable=unused-argument,redefined-outer-name
  points = np.random.default_rng(5).normal(size=(120, 2)).astype(np.float32)
  strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
  kmeans = KMeansClustering(
      3, model_dir=str(tmp_path), seed=0, use_mini_batch=mini_batch,
      initial_clusters=initial_clusters,
      config=kmeans_estimator.RunConfig(train_distribute=strategy,
                                        eval_distribute=strategy))
  data = ((lambda: tf.data.Dataset.from_tensor_slices(points).batch(40))
          if kind == 'input_fn' else points)
  logged = _Messages()
  tf.get_logger().addHandler(logged)
  try:
    rounds = []
    for _ in range(4):
      kmeans.train(data, steps=2)
      kmeans.evaluate(data, steps=1 if kind == 'input_fn' else None)
      rounds.append(_trace_counts(kmeans))
  finally:
    tf.get_logger().removeHandler(logged)
  assert kmeans.get_variable_value('global_step') == 8
  assert any(name[0] == 'distributed' for name in rounds[0]
             if isinstance(name, tuple)), rounds[0]
  assert all(count == 1 for count in rounds[0].values()), rounds[0]
  assert all(counts == rounds[0] for counts in rounds), rounds
  assert not [m for m in logged.messages if 'retracing' in m], logged.messages


@pytest.mark.parametrize('mini_batch', [False, True])
def test_sparse_points_of_any_size_reuse_the_steps_traced_for_the_second(
    tmp_path, mini_batch):
  # CSR points relax as Tensors do: after a first trace of exact shapes,
  # one trace takes every n and nnz of the same width.
  scipy_sparse = importlib.import_module('scipy.sparse')
  rng = np.random.default_rng(6)
  kmeans = KMeansClustering(3, model_dir=str(tmp_path), seed=0,
                            initial_clusters='random',
                            use_mini_batch=mini_batch)
  counts = []
  for n in (60, 70, 80, 90):
    x = scipy_sparse.random(n, 12, density=0.3, format='csr',
                            dtype=np.float32, random_state=rng)
    kmeans.train(x, steps=1)
    kmeans.score(x)
    counts.append(_trace_counts(kmeans))
  assert counts[1] == counts[2] == counts[3], counts
  assert all(count <= 2 for count in counts[3].values()), counts
