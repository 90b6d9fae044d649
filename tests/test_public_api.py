"""The public names are pinned: adding or removing one is a deliberate change."""

import kmeans_estimator


def test_all_lists_exactly_the_public_names():
  assert sorted(kmeans_estimator.__all__) == [
      'EstimatorSpec', 'KMeans', 'KMeansClustering', 'ModeKeys', 'RunConfig',
      'ServingInputReceiver', 'SessionRunArgs', 'SessionRunContext',
      'SessionRunHook', 'SessionRunValues', 'StopAtStepHook', 'TrainingSummary',
      'build_parsing_serving_input_receiver_fn',
      'build_raw_serving_input_receiver_fn']
  for name in kmeans_estimator.__all__:
    assert getattr(kmeans_estimator, name) is not None


def test_mode_keys_have_the_estimator_values():
  assert kmeans_estimator.ModeKeys.TRAIN == 'train'
  assert kmeans_estimator.ModeKeys.EVAL == 'eval'
  assert kmeans_estimator.ModeKeys.PREDICT == 'infer'


def test_core_mirrors_the_constants():
  km = kmeans_estimator.KMeans
  est = kmeans_estimator.KMeansClustering
  for name in ('SQUARED_EUCLIDEAN_DISTANCE', 'COSINE_DISTANCE', 'RANDOM_INIT',
               'KMEANS_PLUS_PLUS_INIT', 'KMC2_INIT'):
    assert getattr(km, name) == getattr(est, name)


def test_the_package_has_no_tf1_or_estimator_dependencies():
  import pathlib
  root = pathlib.Path(kmeans_estimator.__file__).parent
  for path in root.rglob('*.py'):
    text = path.read_text()
    for banned in ('tensorflow_estimator', 'compat.v1', 'Session('):
      assert banned not in text, f'{path} uses {banned}'
