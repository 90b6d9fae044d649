"""KMeansLayer: outputs against numpy oracles, models, tf.data, saving,
export, the constructors from centers and model_dirs, and bad arguments."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmeans_estimator
from kmeans_estimator import errors
from kmeans_estimator.keras import KMeansLayer
import oracles


def _points(n=60, d=3, seed=0):
  return oracles.blobs(n, 4, d, seed=seed)


def _centers(d=3, seed=1):
  return np.random.default_rng(seed).normal(0, 5, (4, d)).astype(np.float32)


def _model(layer, d=3):
  inputs = keras.Input(shape=(d,))
  return keras.Model(inputs, layer(inputs))


# ------------------------------------------------------------ outputs
@pytest.mark.parametrize('metric', oracles.METRICS)
def test_cluster_index_is_the_nearest_center(metric):
  points, centers = _points(), _centers()
  layer = KMeansLayer.from_centers(centers, distance_metric=metric)
  index = layer(points)
  assert index.dtype == tf.int64 and index.shape == (60,)
  np.testing.assert_array_equal(
      index, oracles.distances(points, centers, metric).argmin(1))


@pytest.mark.parametrize('metric', oracles.METRICS)
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_distances_are_the_metric_to_every_center(metric, dtype):
  points, centers = _points(), _centers()
  layer = KMeansLayer.from_centers(centers, distance_metric=metric,
                                   output_mode='distances', dtype=dtype)
  distances = layer(points)
  assert distances.dtype == dtype and distances.shape == (60, 4)
  np.testing.assert_allclose(distances,
                             oracles.distances(points, centers, metric),
                             rtol=1e-4, atol=1e-4)


def test_one_hot_marks_the_nearest_center():
  points, centers = _points(), _centers()
  one_hot = KMeansLayer.from_centers(centers, output_mode='one_hot')(points)
  np.testing.assert_array_equal(
      one_hot, np.eye(4)[oracles.distances(points, centers).argmin(1)])


def test_soft_is_the_softmax_of_minus_distances_over_temperature():
  points, centers = _points(), _centers()
  soft = KMeansLayer.from_centers(centers, output_mode='soft',
                                  temperature=7.0)(points)
  scores = -oracles.distances(points, centers) / 7.0
  expected = np.exp(scores - scores.max(1, keepdims=True))
  expected /= expected.sum(1, keepdims=True)
  np.testing.assert_allclose(soft, expected, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.sum(soft, axis=1), 1.0, rtol=1e-6)


def test_top_k_gives_the_nearest_centers_nearest_first():
  points, centers = _points(), _centers()
  top = KMeansLayer.from_centers(centers, output_mode='top_k',
                                 top_k=3)(points)
  assert top.dtype == tf.int64 and top.shape == (60, 3)
  np.testing.assert_array_equal(
      top, np.argsort(oracles.distances(points, centers), axis=1,
                      kind='stable')[:, :3])


def test_ties_go_to_the_lower_center_index():
  layer = KMeansLayer.from_centers(np.array([[1., 0.], [-1., 0.]]))
  np.testing.assert_array_equal(layer(np.zeros((2, 2))), [0, 0])


@pytest.mark.parametrize('mode,tail', [('cluster_index', ()),
                                       ('distances', (4,)), ('top_k', (2,))])
def test_leading_dimensions_are_kept(mode, tail):
  points, centers = _points(24), _centers()
  layer = KMeansLayer.from_centers(
      centers, output_mode=mode, top_k=2 if mode == 'top_k' else None)
  grid = layer(points.reshape(2, 3, 4, 3))
  assert tuple(grid.shape) == (2, 3, 4) + tail
  np.testing.assert_array_equal(np.reshape(grid, (24,) + tail),
                                layer(points))
  assert layer.compute_output_shape((2, 3, 4, 3)) == (2, 3, 4) + tail


def test_integer_inputs_are_cast_to_the_centers_dtype():
  layer = KMeansLayer.from_centers(np.array([[0., 0.], [10., 10.]]))
  np.testing.assert_array_equal(layer(np.array([[1, 1], [9, 8]])), [0, 1])


def test_calling_before_adapt_raises_not_adapted():
  with pytest.raises(errors.NotAdaptedError, match='adapt'):
    KMeansLayer(3)(_points())


# ----------------------------------------------------- models, tf.data
@pytest.mark.parametrize('mode', ['cluster_index', 'one_hot', 'top_k'])
def test_functional_model_built_before_adapt_gives_the_layers_outputs(mode):
  points = _points()
  layer = KMeansLayer(4, output_mode=mode,
                      top_k=2 if mode == 'top_k' else None)
  model = _model(layer)
  layer.adapt(points)
  np.testing.assert_array_equal(model.predict(points, verbose=0),
                                layer(points))
  assert model.output.dtype == ('int64' if mode != 'one_hot' else 'float32')


def test_layer_maps_a_tf_data_pipeline():
  points = _points()
  layer = KMeansLayer(4)
  layer.adapt(points)
  mapped = tf.data.Dataset.from_tensor_slices(points).batch(16).map(layer)
  np.testing.assert_array_equal(np.concatenate(list(mapped)), layer(points))


def test_centers_are_non_trainable_unless_trainable():
  frozen = KMeansLayer.from_centers(_centers())
  assert not frozen.trainable_weights and len(frozen.non_trainable_weights) == 1
  assert frozen.weights[0].path.endswith('clusters')
  trainable = KMeansLayer.from_centers(_centers(), trainable=True)
  assert len(trainable.trainable_weights) == 1


def test_trainable_layer_learns_lloyds_centers_in_fit():
  rng = np.random.default_rng(5)
  means = np.array([[0., 0.], [8., 0.], [0., 8.]])
  points = np.concatenate([rng.normal(m, 0.5, (40, 2)) for m in means])
  points = points[rng.permutation(len(points))].astype(np.float32)
  initial = points[:3]
  expected, _ = oracles.lloyd(points, initial, 50)
  layer = KMeansLayer.from_centers(initial, trainable=True)
  model = _model(layer, d=2)
  model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
  model.fit(points, epochs=40, batch_size=len(points), verbose=0)
  np.testing.assert_allclose(np.sort(layer.cluster_centers, axis=0),
                             np.sort(expected, axis=0), atol=1e-3)


def test_trainable_layer_adds_the_mean_kmeans_loss():
  points, centers = _points(), _centers()
  layer = KMeansLayer.from_centers(centers, trainable=True, loss_weight=2.0)
  layer(points)
  (loss,) = layer.losses
  np.testing.assert_allclose(
      float(loss), 2.0 * oracles.inertia(points, centers) / len(points),
      rtol=1e-5)
  assert not KMeansLayer.from_centers(centers).losses


def test_commitment_term_moves_the_inputs_not_the_centers():
  points = tf.Variable([[1., 0.], [3., 0.]])
  layer = KMeansLayer.from_centers(np.zeros((1, 2)), trainable=True,
                                   commitment_cost=0.5, loss_weight=1.0)
  with tf.GradientTape() as tape:
    layer(points)
    loss = layer.losses[0]
  point_gradient, center_gradient = tape.gradient(
      loss, [points, layer.clusters.value])
  # d/dx of 0.5 * mean |x - c|^2 and d/dc of mean |x - c|^2.
  np.testing.assert_allclose(point_gradient, [[0.5, 0.], [1.5, 0.]])
  np.testing.assert_allclose(tf.convert_to_tensor(center_gradient),
                             [[-4., 0.]])


# -------------------------------------------------------- save, export
@pytest.mark.parametrize('mode', ['cluster_index', 'distances', 'one_hot',
                                  'soft', 'top_k'])
def test_keras_file_round_trip_gives_identical_outputs(mode, tmp_path):
  points = _points()
  layer = KMeansLayer(4, output_mode=mode, distance_metric='cosine',
                      top_k=3 if mode == 'top_k' else None, seed=3)
  model = _model(layer)
  layer.adapt(points)
  path = str(tmp_path / 'm.keras')
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_array_equal(loaded.predict(points, verbose=0),
                                model.predict(points, verbose=0))
  loaded_layer = loaded.layers[-1]
  assert isinstance(loaded_layer, KMeansLayer)
  assert loaded_layer.distance_metric == 'cosine'
  np.testing.assert_array_equal(loaded_layer.cluster_centers,
                                layer.cluster_centers)


def test_keras_file_round_trip_of_a_layer_from_centers(tmp_path):
  points, centers = _points(), _centers()
  model = _model(KMeansLayer.from_centers(centers, output_mode='one_hot'))
  model.save(str(tmp_path / 'm.keras'))
  loaded = keras.models.load_model(str(tmp_path / 'm.keras'))
  np.testing.assert_array_equal(loaded.predict(points, verbose=0),
                                model.predict(points, verbose=0))


@pytest.mark.parametrize('mode', ['cluster_index', 'soft', 'top_k'])
def test_export_serves_the_same_outputs_with_tf_saved_model_load(mode,
                                                                 tmp_path):
  points = _points()
  layer = KMeansLayer(4, output_mode=mode,
                      top_k=2 if mode == 'top_k' else None)
  model = _model(layer)
  layer.adapt(points)
  model.export(str(tmp_path / 'export'), verbose=False)
  served = tf.saved_model.load(str(tmp_path / 'export'))
  np.testing.assert_array_equal(served.serve(tf.constant(points)),
                                model.predict(points, verbose=0))


def test_get_config_round_trip_gives_the_same_options():
  layer = KMeansLayer(5, output_mode='soft', temperature=2.5,
                      initial_clusters='kmc2', algorithm='hamerly',
                      max_steps=7, relative_tolerance=None, seed=11,
                      commitment_cost=0.25, name='km')
  again = KMeansLayer.from_config(layer.get_config())
  assert again.get_config() == layer.get_config()
  json.dumps(layer.get_config())


def test_callable_initial_clusters_cannot_be_saved():
  layer = KMeansLayer(2, initial_clusters=lambda points, k: points[:k])
  with pytest.raises(errors.InvalidArgumentError,
                     match='from_centers') as caught:
    layer.get_config()
  assert caught.value.argument == 'initial_clusters'


# --------------------------------------------------------- constructors
def test_from_centers_holds_the_centers_and_adapt_refines_them():
  points = _points()
  start = points[:4]
  layer = KMeansLayer.from_centers(start)
  np.testing.assert_array_equal(layer.cluster_centers, start)
  layer.adapt(points)
  expected, _ = oracles.lloyd(points, start, 100)
  np.testing.assert_allclose(layer.cluster_centers, expected, rtol=1e-4,
                             atol=1e-4)


def test_from_centers_refuses_num_clusters():
  with pytest.raises(errors.InvalidArgumentError) as caught:
    KMeansLayer.from_centers(_centers(), num_clusters=4)
  assert caught.value.argument == 'num_clusters'


def test_from_centers_refuses_non_finite_centers():
  with pytest.raises(errors.InitialClustersError):
    KMeansLayer.from_centers(np.array([[0., np.nan]]))


def test_from_model_dir_holds_this_librarys_centers(tmp_path):
  points = _points()
  estimator = kmeans_estimator.KMeansClustering(
      num_clusters=4, model_dir=str(tmp_path), use_mini_batch=False,
      distance_metric='cosine', seed=2)
  estimator.train(points, steps=4)
  layer = KMeansLayer.from_model_dir(str(tmp_path))
  assert layer.distance_metric == 'cosine'
  np.testing.assert_array_equal(layer.cluster_centers,
                                estimator.cluster_centers())
  np.testing.assert_array_equal(
      layer(points), list(estimator.predict_cluster_index(points)))


def test_from_model_dir_refuses_another_metric_than_recorded(tmp_path):
  estimator = kmeans_estimator.KMeansClustering(
      num_clusters=2, model_dir=str(tmp_path), use_mini_batch=False)
  estimator.train(_points(), steps=1)
  with pytest.raises(errors.InvalidArgumentError,
                     match="'squared_euclidean'") as caught:
    KMeansLayer.from_model_dir(str(tmp_path), distance_metric='cosine')
  assert caught.value.argument == 'distance_metric'


@pytest.mark.parametrize('name,metric', [
    ('euclidean_fullbatch', 'squared_euclidean'),
    ('cosine_minibatch', 'cosine')])
def test_from_model_dir_reads_the_legacy_estimators_centers(name, metric,
                                                            tmp_path):
  expected = json.loads(
      (oracles.LEGACY_DIR / 'expected.json').read_text())[name]
  points = np.load(oracles.LEGACY_DIR / 'points.npy')
  model_dir = oracles.copy_legacy(name, tmp_path)
  layer = KMeansLayer.from_model_dir(str(model_dir), distance_metric=metric)
  np.testing.assert_array_equal(layer.cluster_centers,
                                np.float32(expected['cluster_centers']))
  np.testing.assert_array_equal(layer(points), expected['cluster_index'])


def test_from_model_dir_without_a_checkpoint_raises(tmp_path):
  with pytest.raises(ValueError):
    KMeansLayer.from_model_dir(str(tmp_path))


# -------------------------------------------------------- bad arguments
@pytest.mark.parametrize('kwargs,argument,error', [
    ({'num_clusters': 0}, 'num_clusters', errors.InvalidArgumentError),
    ({'num_clusters': 2.5}, 'num_clusters', errors.InvalidArgumentTypeError),
    ({'output_mode': 'index'}, 'output_mode', errors.InvalidArgumentError),
    ({'output_mode': 'top_k'}, 'top_k', errors.InvalidArgumentError),
    ({'output_mode': 'top_k', 'top_k': 4}, 'top_k',
     errors.InvalidArgumentError),
    ({'top_k': 2}, 'top_k', errors.InvalidArgumentError),
    ({'temperature': 0}, 'temperature', errors.InvalidArgumentError),
    ({'distance_metric': 'l1'}, 'distance_metric',
     errors.InvalidArgumentError),
    ({'initial_clusters': 'first'}, 'initial_clusters',
     errors.InvalidArgumentError),
    ({'algorithm': 'elkan'}, 'algorithm', errors.InvalidArgumentError),
    ({'algorithm': 'hamerly', 'distance_metric': 'cosine'}, 'algorithm',
     errors.InvalidArgumentError),
    ({'max_steps': 0}, 'max_steps', errors.InvalidArgumentError),
    ({'relative_tolerance': -1}, 'relative_tolerance',
     errors.InvalidArgumentError),
    ({'seed': 'a'}, 'seed', errors.InvalidArgumentTypeError),
    ({'commitment_cost': -0.1}, 'commitment_cost',
     errors.InvalidArgumentError),
    ({'loss_weight': float('nan')}, 'loss_weight',
     errors.InvalidArgumentError),
    ({'trainable': 'yes'}, 'trainable', errors.InvalidArgumentTypeError),
    ({'dtype': 'float16'}, 'dtype', errors.InvalidArgumentTypeError),
])
def test_bad_arguments_raise_typed_errors_naming_the_argument(
    kwargs, argument, error):
  kwargs = {'num_clusters': 3, **kwargs}
  with pytest.raises(error, match=argument) as caught:
    KMeansLayer(**kwargs)
  assert caught.value.argument == argument


def test_inputs_of_another_width_than_the_centers_raise():
  layer = KMeansLayer.from_centers(_centers(d=3))
  with pytest.raises(errors.InvalidInputError, match=r'\(\.\.\., 3\)'):
    _model(layer, d=2)
  with pytest.raises(errors.InvalidInputError) as caught:
    layer(np.zeros((5, 2)))
  assert caught.value.kind == 'width'
  unbuilt = KMeansLayer(4, initial_clusters=_centers(d=3))
  with pytest.raises(errors.InvalidInputError) as caught:
    unbuilt(np.zeros((5, 2)))
  assert caught.value.argument == 'inputs'


def test_another_keras_backend_raises_the_backend_error(monkeypatch):
  monkeypatch.setattr(keras.backend, 'backend', lambda: 'torch')
  with pytest.raises(errors.KerasBackendError,
                     match='KERAS_BACKEND=tensorflow') as caught:
    KMeansLayer(3)
  assert caught.value.backend == 'torch'


@pytest.mark.slow
def test_importing_kmeans_estimator_does_not_import_the_keras_subpackage():
  code = ('import sys, kmeans_estimator; '
          "print('kmeans_estimator.keras' in sys.modules)")
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, check=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert result.stdout.strip() == 'False'


def test_mixed_precision_policy_computes_in_float32():
  points, centers = _points(), _centers()
  mixed = KMeansLayer.from_centers(centers, output_mode='distances',
                                   dtype='mixed_float16')
  exact = KMeansLayer.from_centers(centers, output_mode='distances')
  assert mixed.clusters.dtype == 'float32'
  distances = mixed(points)
  assert distances.dtype == tf.float32
  np.testing.assert_array_equal(distances, exact(points))
  assert _model(mixed).output.dtype == 'float32'


@pytest.mark.slow
def test_export_serves_in_a_process_that_imports_only_tensorflow(tmp_path):
  points = _points()
  layer = KMeansLayer(4, output_mode='distances')
  model = _model(layer)
  layer.adapt(points)
  model.export(str(tmp_path / 'export'), verbose=False)
  np.save(tmp_path / 'points.npy', points)
  code = (
      'import sys, numpy as np, tensorflow as tf\n'
      f'served = tf.saved_model.load({str(tmp_path / "export")!r})\n'
      f'points = np.load({str(tmp_path / "points.npy")!r})\n'
      f'np.save({str(tmp_path / "served.npy")!r}, '
      'served.serve(tf.constant(points)).numpy())\n'
      "assert not any(m.startswith('kmeans_estimator') "
      'for m in sys.modules), sorted(sys.modules)\n')
  subprocess.run([sys.executable, '-c', code], check=True, timeout=120,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  np.testing.assert_array_equal(np.load(tmp_path / 'served.npy'),
                                model.predict(points, verbose=0))
