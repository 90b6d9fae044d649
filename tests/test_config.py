"""Tests for kmeans_estimator.config: the frozen options objects.

`KMeansConfig` holds every option of the `KMeans` core and `EstimatorConfig`
adds the estimator's; each checks every option and every rule between
options once, when it is made. Evidence: assignment is refused, `replace`
checks again, each cross-argument rule raises its message from the config
and from both public entry points (`KMeans`, `KMeansClustering`), every
rule function runs once per estimator, and `graph_key` tells apart exactly
the options that change a compiled graph.
"""

import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf

from kmeans_estimator import config as options
from kmeans_estimator import KMeans
from kmeans_estimator import KMeansClustering
from kmeans_estimator import RunConfig

KMeansConfig = options.KMeansConfig
EstimatorConfig = options.EstimatorConfig


def _one_device():
  return RunConfig(train_distribute=tf.distribute.OneDeviceStrategy('/cpu:0'))


# ----------------------------------------------------------------- frozen
def test_assigning_an_option_raises():
  config = KMeansConfig(num_clusters=3)
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.num_clusters = 4
  est_config = EstimatorConfig(num_clusters=3, weight_column='w')
  with pytest.raises(dataclasses.FrozenInstanceError):
    est_config.weight_column = None
  assert est_config.num_clusters == 3 and est_config.weight_column == 'w'


def test_kmeans_options_are_read_only_mirrors_of_its_config():
  km = KMeans(3, num_features=2, dtype='float64', use_mini_batch=True)
  assert isinstance(km.config, KMeansConfig)
  assert (km.num_clusters, km.dtype, km.use_mini_batch) == (
      3, tf.float64, True)
  assert km.config.dtype == tf.float64  # Stored in its canonical type.
  with pytest.raises(AttributeError):
    km.num_clusters = 4
  with pytest.raises(AttributeError):
    km.config = KMeansConfig(num_clusters=4)


def test_given_centers_are_a_read_only_copy():
  centers = np.arange(6.0).reshape(3, 2)
  config = KMeansConfig(num_clusters=3, initial_clusters=centers)
  centers[0, 0] = 100.0  # The caller's array changes; the config does not.
  assert config.given_centers[0, 0] == 0.0
  with pytest.raises(ValueError, match='read-only'):
    config.given_centers[0, 0] = 1.0
  km = KMeans.from_config(config)
  np.testing.assert_array_equal(km.clusters.numpy(), config.given_centers)


# ---------------------------------------------------------------- replace
def test_replace_makes_a_new_checked_config():
  config = KMeansConfig(num_clusters=3, use_mini_batch=False,
                        num_restarts=2)
  changed = config.replace(distance_metric='cosine')
  assert changed.distance_metric == 'cosine'
  assert config.distance_metric == 'squared_euclidean'
  with pytest.raises(ValueError, match='`num_clusters` must be a positive '
                     'integer. Received: num_clusters=0'):
    config.replace(num_clusters=0)
  # A change that breaks a rule with an option left as it was.
  with pytest.raises(ValueError,
                     match='num_restarts=2 needs use_mini_batch=False'):
    config.replace(use_mini_batch=True)


def test_replace_recomputes_derived_values():
  config = KMeansConfig(num_clusters=2, initial_clusters=np.zeros((2, 5)))
  assert config.known_num_features == 5
  assert config.replace(initial_clusters='random').known_num_features is None
  est_config = EstimatorConfig(num_clusters=2, weight_column='w')
  assert est_config.weighted
  assert not est_config.replace(weight_column=None).weighted


def test_weighted_of_an_estimator_config_is_derived_from_weight_column():
  with pytest.raises(TypeError, match='weighted'):
    EstimatorConfig(num_clusters=2, weighted=True)  # pylint: disable=unexpected-keyword-arg


def test_derived_values():
  config = KMeansConfig(num_clusters=10, kmeans_parallel_oversampling=0.25,
                        mini_batch_steps_per_iteration=1)
  assert config.kmeans_parallel_per_round == 2  # round(2.5), to even.
  assert config.replace(num_clusters=1).kmeans_parallel_per_round == 1
  assert config.mini_batch_initial_count == 1
  assert config.replace(
      mini_batch_steps_per_iteration=3).mini_batch_initial_count == 0
  assert config.known_num_features is None
  assert config.replace(num_features=4).known_num_features == 4


# ---------------------------------------------- cross-argument rules
# (options, error, message): rules of the core, refused by the config, by
# KMeans and by KMeansClustering alike.
_CORE_RULES = [
    ({'empty_cluster': 'farthest_point', 'use_mini_batch': True,
      'mini_batch_steps_per_iteration': 2}, ValueError,
     "empty_cluster='farthest_point' with use_mini_batch=True needs "
     'mini_batch_steps_per_iteration=1'),
    ({'num_restarts': 2, 'use_mini_batch': True}, ValueError,
     'num_restarts=2 needs use_mini_batch=False'),
    ({'num_restarts': 2, 'use_mini_batch': False,
      'empty_cluster': 'farthest_point'}, ValueError,
     "num_restarts=2 does not support empty_cluster='farthest_point'"),
    ({'num_restarts': 2, 'use_mini_batch': False,
      'initial_clusters': np.zeros((3, 2))}, ValueError,
     'num_restarts=2 needs initial centers drawn at random'),
    ({'initial_clusters': 'kmc2', 'kmc2_chain_length': 2**30},
     options.SizeError, '`kmc2_chain_length` x num_clusters'),
    ({'initial_clusters': np.zeros((2, 2))}, ValueError,
     r'`initial_clusters` must have shape \(3, d\)'),
]

# Rules that involve `algorithm`, which KMeans takes only in a config.
_ALGORITHM_RULES = [
    ({'algorithm': 'hamerly', 'use_mini_batch': True}, ValueError,
     "algorithm='hamerly' needs use_mini_batch=False"),
    ({'algorithm': 'hamerly', 'use_mini_batch': False,
      'distance_metric': 'cosine'}, ValueError,
     "algorithm='hamerly' needs use_mini_batch=False and "
     "distance_metric='squared_euclidean'"),
    ({'num_restarts': 2, 'use_mini_batch': False, 'algorithm': 'hamerly'},
     ValueError, "num_restarts=2 needs algorithm='lloyd'"),
]


@pytest.mark.parametrize('kwargs, error, message', _CORE_RULES)
def test_core_rules_raise_from_config_kmeans_and_estimator(
    kwargs, error, message, tmp_path):
  with pytest.raises(error, match=message):
    KMeansConfig(num_clusters=3, **kwargs)
  with pytest.raises(error, match=message):
    KMeans(3, **kwargs)
  with pytest.raises(error, match=message):
    KMeansClustering(3, model_dir=str(tmp_path / 'model'), **kwargs)
  assert not (tmp_path / 'model').exists()


@pytest.mark.parametrize('kwargs, error, message', _ALGORITHM_RULES)
def test_algorithm_rules_raise_from_config_and_estimator(
    kwargs, error, message, tmp_path):
  with pytest.raises(error, match=message):
    KMeansConfig(num_clusters=3, **kwargs)
  with pytest.raises(error, match=message):
    KMeansClustering(3, model_dir=str(tmp_path / 'model'), **kwargs)
  assert not (tmp_path / 'model').exists()


@pytest.mark.parametrize('kwargs, message', [
    ({'weight_column': 'w', 'empty_cluster': 'farthest_point',
      'use_mini_batch': False},
     "empty_cluster='farthest_point' does not support `weight_column`; use "
     "empty_cluster='keep'. Received: weight_column='w'"),
    ({'weight_column': 'w', 'feature_columns': ['x', 'w']},
     "`weight_column`='w' is also in `feature_columns`"),
    ({'weight_column': 'w', 'config': _one_device},
     r'`weight_column` is not supported with RunConfig\(train_distribute'),
    ({'empty_cluster': 'farthest_point', 'config': _one_device},
     "empty_cluster='farthest_point' is not supported with "
     r'RunConfig\(train_distribute=...\)'),
    ({'num_restarts': 3, 'use_mini_batch': False, 'config': _one_device},
     r'num_restarts=3 is not supported with RunConfig\(train_distribute'),
])
def test_estimator_rules_raise_from_config_and_estimator(kwargs, message,
                                                         tmp_path):
  kwargs = dict(kwargs)
  if 'config' in kwargs:
    kwargs['config'] = kwargs['config']()
  with pytest.raises(ValueError, match=message):
    KMeansClustering(3, model_dir=str(tmp_path / 'model'), **kwargs)
  assert not (tmp_path / 'model').exists()
  run_config = kwargs.pop('config', None)
  with pytest.raises(ValueError, match=message):
    EstimatorConfig(num_clusters=3, train_distributed=run_config is not None,
                    **kwargs)


def test_kmeans_refuses_weights_with_farthest_point_when_a_step_gets_them():
  points = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
  km = KMeans(3, initial_clusters=points[:3], use_mini_batch=False,
              empty_cluster='farthest_point')
  message = ("empty_cluster='farthest_point' does not support sample "
             "weights; use empty_cluster='keep' with weights.")
  with pytest.raises(ValueError, match=re.escape(message)):
    km.full_batch_step(points, tf.ones([12]))
  dataset = tf.data.Dataset.from_tensor_slices(
      (points, np.ones(12, np.float32))).batch(4)
  with pytest.raises(ValueError, match=re.escape(message)):
    km.full_batch_step(dataset)


@pytest.mark.parametrize('kwargs, message', [
    ({'empty_cluster': 'farthest_point'},
     "empty_cluster='farthest_point' is not supported inside strategy.run "
     "with 2 replicas; use empty_cluster='keep'."),
    ({'num_restarts': 2},
     'num_restarts=2 is not supported inside strategy.run with 2 replicas; '
     'use num_restarts=1.'),
])
def test_kmeans_refuses_replicas_when_a_step_runs_in_them(kwargs, message):
  # The same rule as the estimator's RunConfig(train_distribute=...) one,
  # met at call time: conftest.py splits the CPU into two devices.
  strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  points = np.random.default_rng(1).normal(size=(8, 2)).astype(np.float32)
  # Centers far from the points: some clusters are left empty.
  initial = 'random' if 'num_restarts' in kwargs else np.array(
      [[0.0, 0.0], [50.0, 50.0], [-50.0, 50.0]], np.float32)
  with strategy.scope():
    core = KMeans(3, initial_clusters=initial, use_mini_batch=False,
                  **kwargs)
    core.initialize(points)

  @tf.function
  def step():
    return strategy.run(core.full_batch_step, args=(tf.constant(points),))

  with pytest.raises(ValueError, match=re.escape(message)):
    step()


def test_two_faults_raise_the_error_checked_first():
  # The estimator checks weight_column before the core's options, and the
  # core the options in its argument order.
  with pytest.raises(ValueError, match='does not support `weight_column`'):
    KMeansClustering(0, weight_column='w', empty_cluster='farthest_point')
  with pytest.raises(ValueError, match='`num_clusters` must be a positive'):
    KMeans(0, distance_metric='l1')


# ------------------------------------------------------------------ once
def _count_rule_calls(monkeypatch):
  """Wraps every check function of config.py with a call counter."""
  calls = {}
  for name in dir(options):
    function = getattr(options, name)
    if name.startswith('check_') and callable(function):

      def counted(*args, _name=name, _function=function, **kwargs):
        calls[_name] = calls.get(_name, 0) + 1
        return _function(*args, **kwargs)

      monkeypatch.setattr(options, name, counted)
  return calls


def test_estimator_checks_each_rule_once_and_fresh_cores_check_none(
    monkeypatch, tmp_path):
  calls = _count_rule_calls(monkeypatch)
  est = KMeansClustering(3, model_dir=str(tmp_path), use_mini_batch=False,
                         weight_column='w', num_restarts=2, seed=1)
  for rule in ('check_weight_column', 'check_sample_weights',
               'check_empty_cluster', 'check_num_restarts',
               'check_index_sizes', 'check_algorithm',
               'check_restarts_algorithm', 'check_relative_tolerance'):
    assert calls.get(rule) == 1, (rule, calls)
  calls.clear()
  config = est._kmeans_config  # pylint: disable=protected-access
  core = KMeans.from_config(config, name='kmeans')
  assert core.config is config
  assert core.weighted and core.num_restarts == 2
  assert calls == {}


def test_from_config_refuses_anything_but_a_config():
  with pytest.raises(TypeError, match='`config` must be a KMeansConfig'):
    KMeans.from_config({'num_clusters': 3})


def test_from_config_builds_what_the_keywords_build():
  kwargs = {'num_clusters': 3, 'num_features': 2, 'use_mini_batch': True,
            'mini_batch_steps_per_iteration': 2, 'num_restarts': 1}
  by_keywords = KMeans(**kwargs)
  by_config = KMeans.from_config(KMeansConfig(**kwargs))
  assert ([v.name for v in by_keywords.variables] ==
          [v.name for v in by_config.variables])
  assert by_keywords.config.graph_key == by_config.config.graph_key


# -------------------------------------------------------------- graph_key
def test_graph_key_ignores_k_d_seed_and_estimator_only_options():
  small = KMeansConfig(num_clusters=2, num_features=3, random_seed=0)
  large = KMeansConfig(num_clusters=10, num_features=7, random_seed=5)
  assert small.graph_key == large.graph_key
  hash(small.graph_key)
  est = EstimatorConfig(num_clusters=4, use_mini_batch=False,
                        relative_tolerance=1e-4, feature_columns=['x'])
  assert est.graph_key == small.graph_key
  # Centers given as an array key by their kind, not their values.
  assert (small.replace(initial_clusters=np.zeros((2, 3))).graph_key ==
          large.replace(initial_clusters=np.ones((10, 7))).graph_key)


@pytest.mark.parametrize('change', [
    {'distance_metric': 'cosine'},
    {'dtype': tf.float64},
    {'algorithm': 'hamerly'},
    {'use_mini_batch': True},
    {'initial_clusters': 'kmeans_plus_plus'},
    {'weighted': True},
    {'num_restarts': 3},
    {'chunk_elements': 1024},
])
def test_graph_key_changes_with_graph_shaping_options(change):
  config = KMeansConfig(num_clusters=2)
  assert config.replace(**change).graph_key != config.graph_key


def test_graph_key_of_a_dtype_is_the_same_however_it_is_named():
  assert (KMeansConfig(num_clusters=2, dtype='float64').graph_key ==
          KMeansConfig(num_clusters=2, dtype=np.float64).graph_key)
