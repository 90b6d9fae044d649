"""KMeansClustering end to end, against numpy and scikit-learn oracles."""

import glob
import inspect
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from sklearn.cluster import KMeans as SklearnKMeans
from tensorflow.core.util import event_pb2

import kmeans_estimator
from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig

import oracles
from helpers import fast_first

TRUE_CENTERS = np.array([[50., 50.], [50., 450.], [450., 50.], [450., 450.],
                         [250., 250.]], np.float32)


def blobs(seed=0, n=500, width=20.0, centers=TRUE_CENTERS):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, len(centers), n)
  points = centers[labels] + rng.normal(0, width, (n, centers.shape[1]))
  return points.astype(np.float32), labels


sq_dist = oracles.distances
inertia = oracles.inertia


def lloyd(points, centers, iterations):
  return oracles.lloyd(points, centers, iterations)[0]


def batched(points, batch_size):
  return lambda: tf.data.Dataset.from_tensor_slices(points).batch(batch_size)


def test_constants_match_the_legacy_class():
  assert KMeansClustering.SQUARED_EUCLIDEAN_DISTANCE == 'squared_euclidean'
  assert KMeansClustering.COSINE_DISTANCE == 'cosine'
  assert KMeansClustering.RANDOM_INIT == 'random'
  assert KMeansClustering.KMEANS_PLUS_PLUS_INIT == 'kmeans_plus_plus'
  assert KMeansClustering.KMC2_INIT == 'kmc2'
  assert KMeansClustering.SCORE == 'score'
  assert KMeansClustering.CLUSTER_INDEX == 'cluster_index'
  assert KMeansClustering.ALL_DISTANCES == 'all_distances'
  assert KMeansClustering.CLUSTER_CENTERS_VAR_NAME == 'clusters'


def test_constructor_takes_the_legacy_arguments_in_order():
  parameters = inspect.signature(KMeansClustering).parameters
  legacy = ['num_clusters', 'model_dir', 'initial_clusters',
            'distance_metric', 'seed', 'use_mini_batch',
            'mini_batch_steps_per_iteration', 'kmeans_plus_plus_num_retries',
            'relative_tolerance', 'config', 'feature_columns']
  assert list(parameters)[:len(legacy)] == legacy
  assert parameters['initial_clusters'].default == 'random'
  assert parameters['distance_metric'].default == 'squared_euclidean'
  assert parameters['use_mini_batch'].default is True
  assert parameters['kmeans_plus_plus_num_retries'].default == 2
  assert parameters['kmc2_chain_length'].default == 200


@pytest.mark.parametrize('use_mini_batch', [False, True])
def test_fit_on_separated_blobs_is_within_5_percent_of_the_true_score(
    tmp_path, use_mini_batch):
  points, _ = blobs(seed=1, n=1000)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), seed=0,
                            initial_clusters='kmeans_plus_plus',
                            use_mini_batch=use_mini_batch)
  if use_mini_batch:
    rng = np.random.default_rng(0)
    order = np.concatenate([rng.permutation(len(points)) for _ in range(5)])
    kmeans.train(batched(points[order], 100))
  else:
    kmeans.train(lambda: points, steps=10)
  true_score = inertia(points, TRUE_CENTERS)
  score = kmeans.score(lambda: points)
  assert abs(score - true_score) / true_score < 0.05
  assert score == pytest.approx(inertia(points, kmeans.cluster_centers()),
                                rel=1e-4)


def test_full_batch_equals_scikit_learn_lloyd_from_the_same_centers(tmp_path):
  points, _ = blobs(seed=2, n=600)
  start = points[:5].copy()
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters=start)
  kmeans.train(lambda: points, steps=7)
  oracle = SklearnKMeans(5, init=start, n_init=1, max_iter=7, tol=0,
                         algorithm='lloyd').fit(points.astype(np.float64))
  np.testing.assert_allclose(kmeans.cluster_centers(), lloyd(points, start, 7),
                             rtol=1e-4, atol=1e-3)
  assert kmeans.evaluate(lambda: points)['inertia'] == pytest.approx(
      oracle.inertia_, rel=1e-4)


def test_relative_tolerance_stops_early_within_1_percent(tmp_path):
  points, _ = blobs(seed=3, n=1000, width=60.0)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters='random', seed=4,
                            relative_tolerance=1e-3)
  kmeans.train(lambda: points, steps=100)
  steps = kmeans.get_variable_value('global_step')
  assert 1 < steps < 100
  start = tf.train.load_variable(str(tmp_path), 'clusters')
  converged = inertia(points, lloyd(points, start, 100))
  assert kmeans.score(lambda: points) <= converged * 1.01


def test_predict_score_transform_evaluate_are_exact_against_numpy(tmp_path):
  points, _ = blobs(seed=5, n=300)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters=points[:5])
  kmeans.train(lambda: points, steps=1)
  centers = kmeans.cluster_centers()
  distances = sq_dist(points, centers)
  predictions = list(kmeans.predict(batched(points, 64)))
  assert len(predictions) == len(points)
  np.testing.assert_array_equal(
      [p['cluster_index'] for p in predictions], distances.argmin(axis=1))
  np.testing.assert_allclose(
      np.stack([p['all_distances'] for p in predictions]), distances,
      rtol=1e-4, atol=0.5)
  np.testing.assert_array_equal(
      list(kmeans.predict_cluster_index(lambda: points)),
      distances.argmin(axis=1))
  np.testing.assert_allclose(np.stack(list(kmeans.transform(lambda: points))),
                             np.sqrt(distances), rtol=1e-4, atol=0.05)
  # score: the sum over the first batch only, as the legacy class.
  assert kmeans.score(batched(points, 100)) == pytest.approx(
      distances[:100].min(axis=1).sum(), rel=1e-4)
  result = kmeans.evaluate(batched(points, 100))
  batch_sums = [distances[i:i + 100].min(axis=1).sum()
                for i in range(0, 300, 100)]
  assert result['score'] == pytest.approx(np.mean(batch_sums), rel=1e-4)
  assert result['loss'] == result['score']
  assert result['inertia'] == pytest.approx(sum(batch_sums), rel=1e-4)
  assert result['num_points'] == 300
  assert result['mean_squared_distance'] == pytest.approx(
      sum(batch_sums) / 300, rel=1e-4)
  assert result['global_step'] == 1
  batches = list(kmeans.predict(batched(points, 64),
                                predict_keys='cluster_index',
                                yield_single_examples=False))
  assert [len(b['cluster_index']) for b in batches] == [64, 64, 64, 64, 44]
  assert set(batches[0]) == {'cluster_index'}


@pytest.mark.parametrize('init', ['random', 'kmeans_plus_plus', 'kmc2',
                                  'kmeans_parallel'])
def test_every_named_init_method_trains_to_a_good_fit(tmp_path, init):
  points, _ = blobs(seed=6, n=500)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters=init, seed=11)
  kmeans.train(lambda: points, steps=1)
  first = kmeans.cluster_centers()
  assert np.all(np.isfinite(first))
  again = KMeansClustering(5, model_dir=str(tmp_path / 'again'),
                           use_mini_batch=False, initial_clusters=init,
                           seed=11).train(lambda: points, steps=1)
  np.testing.assert_array_equal(again.cluster_centers(), first)
  if init in ('kmeans_plus_plus', 'kmeans_parallel'):
    kmeans.train(lambda: points, steps=10)
    true_score = inertia(points, TRUE_CENTERS)
    assert kmeans.score(lambda: points) < 1.05 * true_score


def test_callable_init_is_called_on_successive_batches(tmp_path):
  points, _ = blobs(seed=7, n=40)
  calls = []

  def two_points(inputs, k):
    calls.append(k)
    return inputs[:2]

  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters=two_points)
  kmeans.train(batched(points, 4), steps=1)
  assert calls  # traced once per compiled function, called per batch
  # Centers came from the first two points of batches 0, 1 and 2.
  start = np.concatenate([points[0:2], points[4:6], points[8:9]])
  np.testing.assert_allclose(kmeans.cluster_centers(), lloyd(points, start, 1),
                             rtol=1e-5)


def test_random_init_takes_centers_from_successive_small_batches(tmp_path):
  points, _ = blobs(seed=8, n=30)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters='random', seed=0)
  kmeans.train(batched(points, 2), steps=1)
  assert np.all(np.isfinite(kmeans.cluster_centers()))


def test_cosine_fit_and_predict(tmp_path):
  rng = np.random.default_rng(9)
  angles = np.array([0.1, 0.8, 1.4])
  labels = rng.integers(0, 3, 600)
  theta = angles[labels] + rng.normal(0, 0.03, 600)
  radius = rng.uniform(1, 100, 600)
  points = np.stack([radius * np.cos(theta), radius * np.sin(theta)],
                    1).astype(np.float32)
  kmeans = KMeansClustering(3, model_dir=str(tmp_path), use_mini_batch=False,
                            distance_metric='cosine',
                            initial_clusters='kmeans_plus_plus', seed=1)
  kmeans.train(lambda: points, steps=10)
  centers = kmeans.cluster_centers()
  np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1, rtol=1e-5)
  found = np.sort(np.arctan2(centers[:, 1], centers[:, 0]))
  np.testing.assert_allclose(found, angles, atol=0.01)
  unit = points / np.linalg.norm(points, axis=1, keepdims=True)
  cosine = 1 - unit @ centers.T
  predictions = list(kmeans.predict(lambda: points))
  np.testing.assert_array_equal([p['cluster_index'] for p in predictions],
                                cosine.argmin(axis=1))
  np.testing.assert_allclose(np.stack(list(kmeans.transform(lambda: points))),
                             cosine, atol=1e-5)
  assert kmeans.score(lambda: points) == pytest.approx(
      cosine.min(axis=1).sum(), rel=1e-3, abs=1e-4)


@pytest.mark.parametrize('use_mini_batch', [False, True])
def test_cosine_keeps_centers_unit_length_with_zero_vectors(tmp_path,
                                                            use_mini_batch):
  points, _ = blobs(seed=10, n=200)
  points[::10] = 0
  kmeans = KMeansClustering(4, model_dir=str(tmp_path), distance_metric='cosine',
                            use_mini_batch=use_mini_batch, seed=0)
  kmeans.train(lambda: points, steps=3)
  centers = kmeans.cluster_centers()
  np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1, rtol=1e-5)
  zero_rows = [p for i, p in enumerate(kmeans.predict(lambda: points))
               if i % 10 == 0]
  for prediction in zero_rows:
    np.testing.assert_allclose(prediction['all_distances'], 1.0)
    assert prediction['cluster_index'] == 0


def test_multi_batch_full_batch_equals_one_tensor(tmp_path):
  points, _ = blobs(seed=11, n=503)
  start = points[[0, 100, 200, 300, 400]]
  one = KMeansClustering(5, model_dir=str(tmp_path / 'one'),
                         use_mini_batch=False, initial_clusters=start)
  one.train(lambda: points, steps=6)
  many = KMeansClustering(5, model_dir=str(tmp_path / 'many'),
                          use_mini_batch=False, initial_clusters=start)
  many.train(batched(points, 37), steps=6)
  np.testing.assert_allclose(many.cluster_centers(), one.cluster_centers(),
                             rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(one.cluster_centers(), lloyd(points, start, 6),
                             rtol=1e-4, atol=1e-3)
  assert many.get_variable_value('global_step') == 6


def test_endless_dataset_keeps_the_legacy_meaning(tmp_path):
  points, _ = blobs(seed=12, n=300)
  start = points[:5]
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters=start)
  kmeans.train(lambda: tf.data.Dataset.from_tensors(points).repeat(), steps=4)
  np.testing.assert_allclose(kmeans.cluster_centers(), lloyd(points, start, 4),
                             rtol=1e-4, atol=1e-3)


def test_finite_input_without_steps_is_read_once(tmp_path):
  points, _ = blobs(seed=13, n=300)
  full = KMeansClustering(5, model_dir=str(tmp_path / 'full'),
                          use_mini_batch=False, initial_clusters=points[:5])
  full.train(batched(points, 50))
  assert full.get_variable_value('global_step') == 1
  mini = KMeansClustering(5, model_dir=str(tmp_path / 'mini'),
                          initial_clusters=points[:5])
  mini.train(batched(points, 50))
  assert mini.get_variable_value('global_step') == 6


def test_mini_batch_update_rule_matches_numpy(tmp_path):
  points, _ = blobs(seed=14, n=200)
  start = points[:5].astype(np.float64)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=True,
                            initial_clusters=start)
  kmeans.train(batched(points, 50))
  # Counts start at 1 (the legacy rule for one step per iteration).
  centers, counts = start.copy(), np.ones(5)
  for i in range(0, 200, 50):
    batch = points[i:i + 50]
    index = sq_dist(batch, centers).argmin(axis=1)
    for j in range(5):
      m = np.sum(index == j)
      if m:
        centers[j] += (batch[index == j].sum(0) - m * centers[j]) / (
            counts[j] + m)
        counts[j] += m
  np.testing.assert_allclose(kmeans.cluster_centers(), centers, rtol=1e-4)
  np.testing.assert_array_equal(kmeans.get_variable_value('Variable'), counts)


def test_resume_from_model_dir_equals_straight_through(tmp_path):
  points, _ = blobs(seed=15, n=400)
  straight = KMeansClustering(5, model_dir=str(tmp_path / 'straight'),
                              use_mini_batch=False,
                              initial_clusters='kmeans_plus_plus', seed=3)
  straight.train(lambda: points, steps=6)
  first = KMeansClustering(5, model_dir=str(tmp_path / 'resumed'),
                           use_mini_batch=False,
                           initial_clusters='kmeans_plus_plus', seed=3)
  first.train(lambda: points, steps=2)
  second = KMeansClustering(5, model_dir=str(tmp_path / 'resumed'),
                            use_mini_batch=False,
                            initial_clusters='kmeans_plus_plus', seed=99)
  second.train(lambda: points, max_steps=6)
  np.testing.assert_array_equal(second.cluster_centers(),
                                straight.cluster_centers())
  assert second.get_variable_value('global_step') == 6
  second.train(lambda: points, max_steps=6)  # already there: no-op
  assert second.get_variable_value('global_step') == 6


def test_mini_batch_resume_restores_counts(tmp_path):
  points, _ = blobs(seed=16, n=200)
  straight = KMeansClustering(5, model_dir=str(tmp_path / 'straight'),
                              initial_clusters=points[:5])
  straight.train(batched(points, 40), steps=5)
  straight.train(batched(points, 40), steps=5)
  resumed = KMeansClustering(5, model_dir=str(tmp_path / 'resumed'),
                             initial_clusters=points[:5])
  resumed.train(batched(points, 40), steps=5)
  resumed = KMeansClustering(5, model_dir=str(tmp_path / 'resumed'),
                             initial_clusters=points[:5])
  resumed.train(batched(points, 40), steps=5)
  np.testing.assert_array_equal(resumed.cluster_centers(),
                                straight.cluster_centers())
  np.testing.assert_array_equal(resumed.get_variable_value('Variable'),
                                straight.get_variable_value('Variable'))


def test_checkpoints_use_the_legacy_names(tmp_path):
  points, _ = blobs(seed=17, n=100)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), seed=0,
                            mini_batch_steps_per_iteration=3)
  kmeans.train(batched(points, 20))
  names = dict(tf.train.list_variables(str(tmp_path)))
  assert names == {'clusters': [5, 2], 'initialized': [], 'global_step': [],
                   'Variable': [5], 'clusters_updated': [5, 2],
                   'update_in_steps': [], 'distance_metric': []}
  np.testing.assert_array_equal(
      tf.train.load_variable(str(tmp_path),
                             KMeansClustering.CLUSTER_CENTERS_VAR_NAME),
      kmeans.cluster_centers())
  assert kmeans.latest_checkpoint() == tf.train.latest_checkpoint(
      str(tmp_path))
  assert sorted(kmeans.get_variable_names()) == sorted(names)


def test_run_config_schedules_and_limits_checkpoints(tmp_path):
  points, _ = blobs(seed=18, n=100)
  config = RunConfig(save_checkpoints_steps=2, keep_checkpoint_max=2)
  assert config.save_checkpoints_secs is None
  kmeans = KMeansClustering(5, config=config.replace(model_dir=str(tmp_path)),
                            use_mini_batch=False, seed=0)
  assert kmeans.model_dir == str(tmp_path)
  kmeans.train(lambda: points, steps=7)
  indexes = sorted(os.path.basename(p)
                   for p in glob.glob(str(tmp_path / '*.index')))
  assert indexes == ['model.ckpt-6.index', 'model.ckpt-7.index']


def test_event_file_names_end_in_a_random_part_no_one_can_plant_a_link_at(
    tmp_path):
  # TensorFlow opens event files following symlinks, under a name made of
  # the time, host and pid; a random suffix makes it unguessable.
  points, _ = blobs(seed=19, n=50)
  for _ in range(2):
    KMeansClustering(3, model_dir=str(tmp_path), use_mini_batch=False,
                     seed=0, config=RunConfig(save_summary_steps=1)).train(
                         lambda: points, steps=1)
  names = [os.path.basename(p)
           for p in glob.glob(str(tmp_path / 'events.out.tfevents*'))]
  suffixes = {re.fullmatch(r'events\.out\.tfevents\..*\.([0-9a-f]{32})\.v2',
                           name)[1] for name in names}
  assert len(names) == len(suffixes) == 2


def test_loss_is_a_tensorboard_scalar_in_model_dir(tmp_path):
  points, _ = blobs(seed=19, n=100)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            seed=0, config=RunConfig(save_summary_steps=1))
  kmeans.train(lambda: points, steps=3)
  losses = {}
  for path in glob.glob(str(tmp_path / 'events.out.tfevents*')):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == 'loss':
          losses[event.step] = tf.make_ndarray(value.tensor)
          assert value.metadata.plugin_data.plugin_name == 'scalars'
  assert sorted(losses) == [1, 2, 3]
  assert losses[3] <= losses[2] <= losses[1]


def test_logs_loss_and_steps_per_second(tmp_path, caplog):
  points, _ = blobs(seed=20, n=100)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            seed=0, config=RunConfig(log_step_count_steps=2))
  # (The absl logger's own level too: tf.saved_model.save, run by other
  # tests, lowers it to WARNING.)
  with caplog.at_level('INFO'), caplog.at_level('INFO', logger='absl'):
    kmeans.train(lambda: points, steps=4)
  text = caplog.text
  assert 'loss = ' in text and 'step = 4' in text and 'steps/sec' in text


def test_model_dir_none_uses_a_fresh_temporary_directory():
  points, _ = blobs(seed=21, n=50)
  kmeans = KMeansClustering(3, seed=0, use_mini_batch=False)
  assert os.path.isdir(kmeans.model_dir) and not os.listdir(kmeans.model_dir)
  kmeans.train(lambda: points, steps=1)
  assert tf.train.latest_checkpoint(kmeans.model_dir)
  assert KMeansClustering(3, seed=0).model_dir != kmeans.model_dir


class _RecordingHook(kmeans_estimator.SessionRunHook):

  def __init__(self, stop_after):
    self.stop_after = stop_after
    self.calls = []
    self.losses = []

  def begin(self):
    self.calls.append('begin')

  def before_run(self, run_context):
    return kmeans_estimator.SessionRunArgs({'loss': 'loss',
                                            'step': 'global_step'})

  def after_run(self, run_context, run_values):
    self.losses.append(run_values.results['loss'])
    if run_values.results['step'] >= self.stop_after:
      run_context.request_stop()

  def end(self, session):
    self.calls.append('end')


def test_hooks_see_each_step_and_can_stop_training(tmp_path):
  points, _ = blobs(seed=22, n=100)
  hook = _RecordingHook(stop_after=3)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            seed=0)
  kmeans.train(lambda: points, hooks=[hook], steps=50)
  assert kmeans.get_variable_value('global_step') == 3
  assert hook.calls == ['begin', 'end'] and len(hook.losses) == 3
  kmeans.train(lambda: points,
               hooks=[kmeans_estimator.StopAtStepHook(num_steps=2)],
               steps=50)
  assert kmeans.get_variable_value('global_step') == 5
  kmeans.train(lambda: tf.data.Dataset.from_tensors(points).repeat(),
               hooks=[kmeans_estimator.StopAtStepHook(last_step=7)])
  assert kmeans.get_variable_value('global_step') == 7


def test_input_forms_dict_tuple_params_and_dtypes(tmp_path):
  points, _ = blobs(seed=23, n=120)
  start = points[:5]
  reference = KMeansClustering(5, model_dir=str(tmp_path / 'ref'),
                               use_mini_batch=False, initial_clusters=start)
  reference.train(lambda: points, steps=2)
  # A dict is concatenated in sorted key order: 'a' then 'b'.
  as_dict = KMeansClustering(5, model_dir=str(tmp_path / 'dict'),
                             use_mini_batch=False, initial_clusters=start)
  as_dict.train(lambda: ({'b': points[:, 1], 'a': points[:, :1]}, None),
                steps=2)
  np.testing.assert_allclose(as_dict.cluster_centers(),
                             reference.cluster_centers(), rtol=1e-6)
  # feature_columns selects and orders.
  selected = KMeansClustering(5, model_dir=str(tmp_path / 'columns'),
                              use_mini_batch=False, initial_clusters=start,
                              feature_columns=['x', 'y'])
  selected.train(lambda: tf.data.Dataset.from_tensor_slices(
      {'y': points[:, 1], 'x': points[:, 0], 'ignored': points[:, 0] * 0}
  ).batch(1000), steps=2)
  np.testing.assert_allclose(selected.cluster_centers(),
                             reference.cluster_centers(), rtol=1e-5)
  seen = {}

  def input_fn(params, config, mode):
    seen.update(params=params, config=config, mode=mode)
    return points.astype(np.float64)

  as_float64 = KMeansClustering(5, model_dir=str(tmp_path / 'f64'),
                                use_mini_batch=False, initial_clusters=start)
  as_float64.train(input_fn, steps=2)
  assert seen['mode'] == kmeans_estimator.ModeKeys.TRAIN
  assert seen['config'].model_dir == str(tmp_path / 'f64')
  assert as_float64.cluster_centers().dtype == np.float32
  np.testing.assert_allclose(as_float64.cluster_centers(),
                             reference.cluster_centers(), rtol=1e-6)
  integers = np.round(points).astype(np.int32)
  np.testing.assert_array_equal(
      list(reference.predict_cluster_index(lambda: integers)),
      sq_dist(integers, reference.cluster_centers()).argmin(axis=1))


def test_float64_when_asked(tmp_path):
  points = blobs(seed=24, n=100)[0].astype(np.float64)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters=points[:5], dtype=tf.float64)
  kmeans.train(lambda: points, steps=3)
  assert kmeans.cluster_centers().dtype == np.float64
  np.testing.assert_allclose(kmeans.cluster_centers(),
                             lloyd(points, points[:5], 3), rtol=1e-10)


def test_compiled_steps_are_not_retraced_per_call(tmp_path):
  points, _ = blobs(seed=25, n=100)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            seed=0)
  kmeans.train(lambda: points, steps=2)
  compiled = dict(kmeans._compiled)  # pylint: disable=protected-access
  # Steps over an array carry a state, made once per train() call; without
  # hooks they run several per call.
  assert {'lloyd_steps', 'lloyd_state'} <= set(compiled)
  traces = {name: fn.experimental_get_tracing_count()
            for name, fn in compiled.items()}
  for _ in range(3):
    kmeans.train(lambda: points, steps=2)
  assert kmeans._compiled == compiled  # pylint: disable=protected-access
  assert {name: fn.experimental_get_tracing_count()
          for name, fn in compiled.items()} == traces


def test_run_eagerly_gives_the_same_result(tmp_path):
  points, _ = blobs(seed=26, n=100)
  results = []
  for eager in (False, True):
    kmeans = KMeansClustering(5, model_dir=str(tmp_path / str(eager)),
                              use_mini_batch=False, seed=5,
                              initial_clusters='kmeans_plus_plus',
                              run_eagerly=eager)
    kmeans.train(lambda: points, steps=3)
    results.append(kmeans.cluster_centers())
  np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_model_fn_returns_an_estimator_spec(tmp_path):
  points, _ = blobs(seed=27, n=60)
  kmeans = KMeansClustering(5, model_dir=str(tmp_path), use_mini_batch=False,
                            initial_clusters=points[:5])
  kmeans.train(lambda: points, steps=1)
  ModeKeys = kmeans_estimator.ModeKeys
  spec = kmeans.model_fn(tf.constant(points), None, ModeKeys.PREDICT)
  assert isinstance(spec, kmeans_estimator.EstimatorSpec)
  assert spec.mode == ModeKeys.PREDICT
  assert set(spec.predictions) == {'all_distances', 'cluster_index'}
  spec = kmeans.model_fn(tf.constant(points), None, ModeKeys.EVAL)
  assert float(spec.loss) == pytest.approx(
      inertia(points, kmeans.cluster_centers()), rel=1e-4)
  assert 'score' in spec.eval_metric_ops


def test_run_config_is_immutable_and_replace_validates():
  import dataclasses
  config = RunConfig(keep_checkpoint_max=3)
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.keep_checkpoint_max = 4  # type: ignore[misc]
  changed = config.replace(log_step_count_steps=7, tf_random_seed=1)
  assert (changed.log_step_count_steps, changed.tf_random_seed,
          changed.keep_checkpoint_max) == (7, 1, 3)
  assert config.log_step_count_steps == 100
  assert config.replace(save_checkpoints_secs=30).save_checkpoints_steps is None
  with pytest.raises(ValueError, match='log_step_count_steps'):
    config.replace(log_step_count_steps=0)


def test_seed_falls_back_to_the_run_config_seed(tmp_path):
  points, _ = blobs(seed=28, n=100)
  results = []
  for name in ('a', 'b'):
    kmeans = KMeansClustering(
        5, use_mini_batch=False, initial_clusters='kmeans_plus_plus',
        config=RunConfig(model_dir=str(tmp_path / name), tf_random_seed=42))
    kmeans.train(lambda: points, steps=1)
    results.append(kmeans.cluster_centers())
  np.testing.assert_array_equal(results[0], results[1])


class _Listener:

  def __init__(self, stop_at=None):
    self.events = []
    self.stop_at = stop_at

  def begin(self):
    self.events.append('begin')

  def before_save(self, session, global_step_value):
    self.events.append(('before_save', global_step_value))

  def after_save(self, session, global_step_value):
    self.events.append(('after_save', global_step_value))
    return global_step_value == self.stop_at

  def end(self, session, global_step_value):
    self.events.append(('end', global_step_value))


def test_saving_listeners_see_every_checkpoint_and_can_stop(tmp_path):
  points, _ = blobs(seed=29, n=100)
  kmeans = KMeansClustering(
      5, use_mini_batch=False, seed=0,
      config=RunConfig(model_dir=str(tmp_path), save_checkpoints_steps=2))
  listener = _Listener(stop_at=4)
  kmeans.train(lambda: points, steps=10, saving_listeners=[listener])
  assert kmeans.get_variable_value('global_step') == 4
  assert listener.events == [
      'begin', ('before_save', 2), ('after_save', 2), ('before_save', 4),
      ('after_save', 4), ('end', 4)]


def test_a_failed_first_train_does_not_fix_the_data_width(tmp_path):
  points, _ = blobs(seed=30, n=90)
  bad = np.concatenate([points, points[:, :1]], axis=1)
  bad[70] = np.nan
  kmeans = KMeansClustering(3, model_dir=str(tmp_path), use_mini_batch=False,
                            seed=0)
  with pytest.raises(ValueError, match='NaN or Inf'):
    kmeans.train(batched(bad, 30), steps=1)
  assert not tmp_path.joinpath('checkpoint').exists()
  # Nothing was trained, so 2-D data is as welcome as 3-D was.
  kmeans.train(lambda: points, steps=2)
  assert kmeans.cluster_centers().shape == (3, 2)


# ------------------------------------------------------- dtype x mode x input
def _oracle_step(points, centers, counts=None):
  """One Lloyd step (counts None) or one mini-batch step from `counts`, in
  float64 numpy; an empty cluster keeps its center."""
  x, c = points.astype(np.float64), centers.astype(np.float64)
  labels = sq_dist(x, c).argmin(1)
  m = np.bincount(labels, minlength=len(c)).astype(np.float64)
  s = np.zeros_like(c)
  np.add.at(s, labels, x)
  if counts is None:
    return np.where(m[:, None] > 0, s / np.maximum(m, 1)[:, None], c)
  return c + (s - m[:, None] * c) / (counts + m)[:, None]


@pytest.mark.parametrize('dtype, input_kind', fast_first(3, [
    (tf.float32, 'array'), (tf.float32, 'tensor'), (tf.float32, 'dataset'),
    (tf.float32, 'float16_array'), (tf.float64, 'array'),
    (tf.float64, 'dataset')]))
@pytest.mark.parametrize('mode', ['lloyd', 'hamerly', 'mini_batch'])
def test_one_step_matches_the_float64_oracle_for_every_dtype_mode_and_input(
    tmp_path, dtype, mode, input_kind):
  # Magnitudes of 100s: the carried fixed-point sums of the in-memory Lloyd
  # path scale them by a large power of two.
  points, _ = blobs(seed=21, n=120)
  init = points[:4].copy()
  if input_kind == 'float16_array':
    points = points.astype(np.float16)
  data = {'array': points, 'float16_array': points,
          'tensor': tf.constant(points),
          'dataset': tf.data.Dataset.from_tensor_slices(points).batch(50)}[
              input_kind]
  mini_batch = mode == 'mini_batch'
  kmeans = KMeansClustering(4, model_dir=str(tmp_path), initial_clusters=init,
                            use_mini_batch=mini_batch, dtype=dtype,
                            algorithm='hamerly' if mode == 'hamerly' else
                            'lloyd')
  kmeans.train(data, steps=1)
  # The model's dtype rounds the points once (float16 points are exact in
  # both); one mini-batch step over a dataset takes its first batch.
  x = points.astype(dtype.as_numpy_dtype).astype(np.float64)
  if mini_batch:
    batch = x[:50] if input_kind == 'dataset' else x
    want = _oracle_step(batch, init, counts=np.ones(4))
  else:
    want = _oracle_step(x, init)
  got = kmeans.cluster_centers()
  assert got.dtype == dtype.as_numpy_dtype
  rtol = 1e-6 if dtype == tf.float32 else 1e-12
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 100)


@pytest.mark.parametrize('dtype', [tf.float16, tf.bfloat16, 'float16'])
def test_half_precision_dtype_is_refused_before_anything_is_written(
    tmp_path, dtype):
  with pytest.raises(TypeError, match=(
      r'`dtype` must be a floating point dtype of 32 or 64 bits: '
      r'tf.float32 or tf.float64. Half precision cannot hold')):
    KMeansClustering(3, model_dir=str(tmp_path / 'm'), dtype=dtype)
  assert not (tmp_path / 'm').exists()


def test_logs_saving_a_checkpoint_before_saved_in_tf_estimator_s_words(
    tmp_path, caplog):
  points, _ = blobs(seed=22, n=60)
  kmeans = KMeansClustering(3, model_dir=str(tmp_path), use_mini_batch=False,
                            seed=0, config=RunConfig(save_checkpoints_steps=2))
  with caplog.at_level('INFO'), caplog.at_level('INFO', logger='absl'):
    kmeans.train(points, steps=3)
  lines = [record.getMessage() for record in caplog.records
           if 'checkpoint' in record.getMessage().lower()]
  base = os.path.join(str(tmp_path), 'model.ckpt')
  assert lines == [
      f'Saving checkpoints for 2 into {base}.',
      f'Saved checkpoint for step 2 to {base}-2.',
      f'Saving checkpoints for 3 into {base}.',
      f'Saved checkpoint for step 3 to {base}-3.'], lines
