"""SavedModel export of sparse-input signatures.

Evidence: the loaded SavedModel's sparse twins ('sparse_<name>', inputs
'indices', 'values', 'dense_shape') give, for the values of a dense batch,
the dense signatures' outputs and numpy's; a fresh process that imports
only TensorFlow serves them; `saved_model_cli` lists their inputs and runs
them; a model trained on sparse data exports and serves them.
"""

import importlib
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import kmeans_estimator
from kmeans_estimator import KMeansClustering
from kmeans_estimator import errors
from kmeans_estimator.io import export as export_lib

import oracles
from helpers import saved_model_cli

DENSE_SIGNATURES = ('serving_default', 'cluster_index', 'all_distances',
                    'transform', 'cluster_centers')
SPARSE_SIGNATURES = ('sparse_cluster_index', 'sparse_all_distances',
                     'sparse_transform')
D = 5


def sparse_blobs(seed, n, d=D, k=3, density=0.5):
  """Points (n, d) with about `density` of their entries nonzero, from k
  separated groups, one explicitly stored zero and one empty row."""
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 10, size=(k, d))
  points = centers[rng.integers(k, size=n)] + rng.normal(0, 1, size=(n, d))
  points *= rng.random((n, d)) < density
  points[1] = 0.0  # A row without entries: the zero point.
  return points.astype(np.float32)


def coo(points, rng=None, stored_zero=True):
  """The (indices, values, dense_shape) of `points`, entries shuffled by
  `rng` when given; with `stored_zero`, the first zero entry of the
  first row with one is stored explicitly."""
  rows, cols = np.nonzero(points)
  if stored_zero:
    zero_rows, zero_cols = np.nonzero(points == 0)
    first = np.flatnonzero(zero_rows != 1)[0]
    rows = np.append(rows, zero_rows[first])
    cols = np.append(cols, zero_cols[first])
  indices = np.stack([rows, cols], axis=1).astype(np.int64)
  if rng is not None:
    indices = indices[rng.permutation(len(indices))]
  values = points[indices[:, 0], indices[:, 1]]
  return {'indices': indices, 'values': values,
          'dense_shape': np.array(points.shape, np.int64)}


def train(model_dir, data, metric, **kwargs):
  kmeans = KMeansClustering(3, model_dir=str(model_dir), seed=1,
                            distance_metric=metric, use_mini_batch=False,
                            **kwargs)
  kmeans.train(data, steps=5)
  return kmeans


@pytest.fixture(scope='module', params=[oracles.SQUARED_EUCLIDEAN,
                                        oracles.COSINE])
def exported(request, tmp_path_factory):
  """A model trained on dense points, exported with sparse=True, top_k=2."""
  root = tmp_path_factory.mktemp(f'sparse_export_{request.param}')
  kmeans = train(root / 'model', sparse_blobs(0, 90), request.param)
  export_dir = kmeans.export_saved_model(root / 'export', top_k=2,
                                         sparse=True).decode()
  return dict(kmeans=kmeans, metric=request.param, export_dir=export_dir,
              served=tf.saved_model.load(export_dir))


def test_sparse_twins_are_written_only_when_asked(tmp_path, exported):
  assert sorted(exported['served'].signatures) == sorted(
      DENSE_SIGNATURES + SPARSE_SIGNATURES + ('top_k', 'sparse_top_k'))
  kmeans = exported['kmeans']
  plain = tf.saved_model.load(
      kmeans.export_saved_model(tmp_path / 'plain').decode())
  assert sorted(plain.signatures) == sorted(DENSE_SIGNATURES)
  with_sparse = tf.saved_model.load(
      kmeans.export_saved_model(tmp_path / 'sparse', sparse=True).decode())
  assert sorted(with_sparse.signatures) == sorted(DENSE_SIGNATURES +
                                                  SPARSE_SIGNATURES)


def test_sparse_twins_take_indices_values_and_dense_shape(exported):
  for name in SPARSE_SIGNATURES + ('sparse_top_k',):
    args, kwargs = exported['served'].signatures[
        name].structured_input_signature
    assert args == ()
    assert kwargs == {
        'indices': tf.TensorSpec([None, 2], tf.int64, name='indices'),
        'values': tf.TensorSpec([None], tf.float32, name='values'),
        'dense_shape': tf.TensorSpec([2], tf.int64, name='dense_shape')}


def test_sparse_twins_serve_what_dense_twins_and_numpy_give(exported):
  served, metric = exported['served'], exported['metric']
  points = sparse_blobs(1, 23)
  # Entries in any order: the signature puts them in row-major order.
  sparse_input = coo(points, np.random.default_rng(2))
  centers = exported['kmeans'].cluster_centers()
  distances = oracles.distances(points, centers, metric)
  for name in ('cluster_index', 'all_distances', 'transform', 'top_k'):
    got = served.signatures['sparse_' + name](**sparse_input)
    want = served.signatures[name](input=points)
    assert sorted(got) == sorted(want)
    for key in want:
      assert got[key].dtype == want[key].dtype
      assert got[key].shape == want[key].shape
      if want[key].dtype == tf.int64:
        np.testing.assert_array_equal(got[key], want[key])
      else:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5,
                                   atol=1e-5)
  index = served.signatures['sparse_cluster_index'](**sparse_input)['output']
  np.testing.assert_array_equal(index, distances.argmin(axis=1))
  np.testing.assert_allclose(
      served.signatures['sparse_all_distances'](**sparse_input)['output'],
      distances, rtol=1e-4, atol=1e-4)
  transformed = (np.sqrt(distances) if metric == oracles.SQUARED_EUCLIDEAN
                 else distances)
  np.testing.assert_allclose(
      served.signatures['sparse_transform'](**sparse_input)['output'],
      transformed, rtol=1e-4, atol=1e-4)
  top = served.signatures['sparse_top_k'](**sparse_input)
  np.testing.assert_array_equal(top['top_k_cluster_indices'][:, 0], index)
  np.testing.assert_allclose(top['top_k_distances'],
                             np.sort(distances, axis=1)[:, :2],
                             rtol=1e-4, atol=1e-4)


def test_sparse_twin_serves_a_batch_without_entries(exported):
  served = exported['served']
  points = np.zeros((3, D), np.float32)
  got = served.signatures['sparse_all_distances'](
      indices=np.zeros((0, 2), np.int64), values=np.zeros((0,), np.float32),
      dense_shape=np.array([3, D], np.int64))['output']
  np.testing.assert_allclose(
      got, served.signatures['all_distances'](input=points)['output'],
      rtol=1e-6)


def test_model_trained_on_sparse_data_exports_and_serves(tmp_path):
  sparse = importlib.import_module('scipy.sparse')
  points = sparse_blobs(3, 80)
  matrix = sparse.csr_matrix(points)
  kmeans = train(tmp_path / 'model', matrix, oracles.COSINE)
  export_dir = kmeans.export_saved_model(tmp_path / 'export',
                                         sparse=True).decode()
  served = tf.saved_model.load(export_dir)
  new_points = sparse_blobs(4, 31)
  got = served.signatures['sparse_cluster_index'](**coo(new_points))
  np.testing.assert_array_equal(
      got['output'],
      np.fromiter(kmeans.predict_cluster_index(sparse.csr_matrix(new_points)),
                  np.int64))
  np.testing.assert_allclose(
      served.signatures['sparse_transform'](**coo(new_points))['output'],
      np.stack(list(kmeans.transform(sparse.coo_matrix(new_points)))),
      rtol=1e-5, atol=1e-5)


def test_sparse_twins_of_a_float64_model_serve_float32_values(tmp_path):
  points = sparse_blobs(5, 60)
  kmeans = train(tmp_path / 'model', points.astype(np.float64),
                 oracles.SQUARED_EUCLIDEAN, dtype=tf.float64)
  served = tf.saved_model.load(kmeans.export_saved_model(
      tmp_path / 'export', sparse=True).decode())
  got = served.signatures['sparse_all_distances'](**coo(points))['output']
  assert got.dtype == tf.float64
  np.testing.assert_allclose(
      got, served.signatures['all_distances'](input=points)['output'],
      rtol=1e-9, atol=1e-9)


def _bad(points, change):
  sparse_input = coo(points, stored_zero=False)
  change(sparse_input)
  return sparse_input


def _set(key, row, value):
  def change(sparse_input):
    sparse_input[key] = sparse_input[key].copy()
    sparse_input[key][row] = value
  return change


def _repeat_first(sparse_input):
  for key in ('indices', 'values'):
    sparse_input[key] = np.concatenate([sparse_input[key][:1],
                                        sparse_input[key]])


def _drop_a_value(sparse_input):
  sparse_input['values'] = sparse_input['values'][1:]


@pytest.mark.parametrize('change, match', [
    (_set('values', 3, np.nan), 'NaN or Inf'),
    (_set('values', 0, -np.inf), 'NaN or Inf'),
    (_set('dense_shape', 1, D + 1), 'wrong width'),
    (_set('indices', 2, [7, D]), 'outside dense_shape or stored twice'),
    (_set('indices', 2, [7, -1]), 'outside dense_shape or stored twice'),
    (_set('indices', 2, [50, 0]), 'outside dense_shape or stored twice'),
    (_repeat_first, 'outside dense_shape or stored twice'),
    (_drop_a_value, 'one value per row of indices'),
], ids=['nan', 'inf', 'width', 'column', 'negative', 'row', 'repeated',
        'values'])
def test_served_sparse_input_is_checked(exported, change, match):
  points = sparse_blobs(6, 12)
  for name in ('sparse_cluster_index', 'sparse_all_distances',
               'sparse_top_k'):
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
      exported['served'].signatures[name](**_bad(points, change))


@pytest.mark.parametrize('name', ['sparse_cluster_index',
                                  'sparse_all_distances', 'sparse_transform',
                                  'sparse_top_k'])
def test_a_sparse_request_claiming_huge_empty_rows_is_refused(exported, name):
  # 10^11 rows and no values: a request of a few bytes whose results would
  # need terabytes (the process was killed before the check).
  signature = exported['served'].signatures[name]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'more rows \(dense_shape\[0\]\) than a call'):
    signature(indices=tf.zeros([0, 2], tf.int64), values=tf.zeros([0]),
              dense_shape=tf.constant([10**11, D], tf.int64))
  # The most empty rows a call serves, and a row more with a value.
  limit = export_lib.MAX_EMPTY_SERVED_ROWS
  served = signature(indices=tf.constant([[limit, 0]], tf.int64),
                     values=tf.constant([1.0]),
                     dense_shape=tf.constant([limit + 1, D], tf.int64))
  assert all(value.shape[0] == limit + 1 for value in served.values())


def test_raw_receiver_of_a_sparse_spec_serves_every_point_signature(
    tmp_path):
  points = sparse_blobs(7, 60)
  kmeans = train(tmp_path / 'model', points, oracles.SQUARED_EUCLIDEAN)
  receiver = kmeans_estimator.build_raw_serving_input_receiver_fn(
      tf.SparseTensorSpec([None, D], tf.float32))
  served = tf.saved_model.load(kmeans.export_saved_model(
      tmp_path / 'export', receiver).decode())
  assert sorted(served.signatures) == sorted(DENSE_SIGNATURES)
  new_points = sparse_blobs(8, 17)
  want = np.fromiter(kmeans.predict_cluster_index(new_points), np.int64)
  for name in ('serving_default', 'cluster_index'):
    np.testing.assert_array_equal(
        served.signatures[name](**coo(new_points))['output'], want)
  _, kwargs = served.signatures['transform'].structured_input_signature
  assert sorted(kwargs) == ['dense_shape', 'indices', 'values']


def test_raw_receiver_names_the_parts_of_a_sparse_dict_feature(tmp_path):
  points = sparse_blobs(9, 60)
  kmeans = KMeansClustering(3, model_dir=str(tmp_path / 'model'), seed=1,
                            use_mini_batch=False, weight_column='w')
  kmeans.train({'x': points, 'w': np.ones(60, np.float32)}, steps=3)
  receiver = kmeans_estimator.build_raw_serving_input_receiver_fn(
      {'x': tf.SparseTensorSpec([None, D], tf.float32),
       'w': tf.TensorSpec([None], tf.float32)})
  served = tf.saved_model.load(kmeans.export_saved_model(
      tmp_path / 'export', receiver).decode())
  _, kwargs = served.signatures['serving_default'].structured_input_signature
  assert sorted(kwargs) == ['w', 'x_dense_shape', 'x_indices', 'x_values']
  new_points = sparse_blobs(10, 9)
  parts = coo(new_points)
  got = served.signatures['serving_default'](
      x_indices=parts['indices'], x_values=parts['values'],
      x_dense_shape=parts['dense_shape'], w=np.ones(9, np.float32))
  np.testing.assert_array_equal(
      got['output'],
      np.fromiter(kmeans.predict_cluster_index(
          {'x': new_points, 'w': np.ones(9, np.float32)}), np.int64))


def _sparse_example(row):
  columns = np.flatnonzero(row)
  return tf.train.Example(features=tf.train.Features(feature={
      'column': tf.train.Feature(
          int64_list=tf.train.Int64List(value=columns)),
      'value': tf.train.Feature(
          float_list=tf.train.FloatList(value=row[columns]))}
  )).SerializeToString()


def test_parsing_receiver_of_a_sparse_feature_serves_sparse_examples(
    tmp_path):
  points = sparse_blobs(15, 60)
  kmeans = train(tmp_path / 'model', points, oracles.SQUARED_EUCLIDEAN)
  receiver = kmeans_estimator.build_parsing_serving_input_receiver_fn(
      {'x': tf.io.SparseFeature(index_key='column', value_key='value',
                                dtype=tf.float32, size=D)})
  served = tf.saved_model.load(kmeans.export_saved_model(
      tmp_path / 'export', receiver).decode())
  new_points = sparse_blobs(16, 11)
  got = served.signatures['all_distances'](
      examples=tf.constant([_sparse_example(row) for row in new_points]))
  np.testing.assert_allclose(
      got['output'],
      np.stack([p['all_distances'] for p in kmeans.predict(new_points)]),
      rtol=1e-5, atol=1e-5)


def test_receiver_tensors_refuse_a_sparse_spec_naming_the_fix():
  with pytest.raises(TypeError, match='as its three parts'):
    kmeans_estimator.ServingInputReceiver(
        None, {'x': tf.SparseTensorSpec([None, D], tf.float32)})


@pytest.mark.parametrize('features, error, match', [
    (tf.SparseTensorSpec([None, 2, 3], tf.float32), ValueError,
     'must be a batch of points of rank 2'),
    ({'x': tf.SparseTensorSpec([None, D], tf.float32),
      'x_values': tf.TensorSpec([None, 1], tf.float32)}, ValueError,
     "same input name 'x_values'"),
    (tf.RaggedTensorSpec([None, None], tf.float32), TypeError,
     'must be dense or sparse'),
], ids=['rank', 'clash', 'ragged'])
def test_bad_sparse_receiver_features_fail_clearly(features, error, match):
  if isinstance(features, tf.RaggedTensorSpec):
    features = tf.ragged.constant([[1.0], [2.0, 3.0]])
  with pytest.raises(error, match=match):
    kmeans_estimator.build_raw_serving_input_receiver_fn(features)


def test_sparse_feature_beside_another_is_refused_before_writing(tmp_path):
  kmeans = train(tmp_path / 'model', {'x': sparse_blobs(11, 40)},
                 oracles.SQUARED_EUCLIDEAN)
  receiver = kmeans_estimator.build_raw_serving_input_receiver_fn(
      {'x': tf.SparseTensorSpec([None, D - 1], tf.float32),
       'y': tf.TensorSpec([None, 1], tf.float32)})
  with pytest.raises(errors.SparseInputError,
                     match='must be the only point feature'):
    kmeans.export_saved_model(tmp_path / 'export', receiver)
  assert not (tmp_path / 'export').exists()


def test_sparse_receiver_of_non_numeric_values_is_refused(tmp_path):
  kmeans = train(tmp_path / 'model', sparse_blobs(12, 40),
                 oracles.SQUARED_EUCLIDEAN)
  receiver = kmeans_estimator.build_raw_serving_input_receiver_fn(
      tf.SparseTensorSpec([None, None], tf.string))
  with pytest.raises(errors.InvalidArgumentTypeError, match='numeric'):
    kmeans.export_saved_model(tmp_path / 'export', receiver)
  assert not (tmp_path / 'export').exists()


def test_export_sparse_must_be_a_bool(tmp_path):
  kmeans = train(tmp_path / 'model', sparse_blobs(13, 40),
                 oracles.SQUARED_EUCLIDEAN)
  with pytest.raises(TypeError, match='sparse'):
    kmeans.export_saved_model(tmp_path / 'export', sparse='yes')
  assert not (tmp_path / 'export').exists()


# ------------------------------------------------- TensorFlow's own tools
# A process that never imports kmeans_estimator serves the sparse twins.
_SERVE_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    inputs = dict(np.load(sys.argv[2]))
    results = {}
    for name in sorted(loaded.signatures):
      if name.startswith('sparse_'):
        out = loaded.signatures[name](**inputs)
        results[name] = {key: value.numpy().tolist()
                         for key, value in out.items()}
    # A negative dense_shape fails the call (TensorFlow's shape code would
    # abort the process if it got that far).
    try:
      loaded.signatures['sparse_all_distances'](
          indices=tf.zeros([0, 2], tf.int64), values=tf.zeros([0]),
          dense_shape=tf.constant([-3, int(loaded.num_features.numpy())],
                                  tf.int64))
      results['negative_dense_shape'] = 'served'
    except tf.errors.InvalidArgumentError as error:
      results['negative_dense_shape'] = error.message
    results['imported'] = sorted(m for m in sys.modules
                                 if m.startswith('kmeans_estimator'))
    print(json.dumps(results))
''')


@pytest.mark.slow
def test_tensorflow_alone_and_saved_model_cli_serve_the_sparse_twins(
    tmp_path, exported):
  export_dir = exported['export_dir']
  points = sparse_blobs(14, 6)
  sparse_input = coo(points, np.random.default_rng(3))
  np.savez(tmp_path / 'inputs.npz', **sparse_input)
  result = subprocess.run(
      [sys.executable, '-c', _SERVE_SCRIPT, export_dir,
       str(tmp_path / 'inputs.npz')],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  served = json.loads(result.stdout.strip().splitlines()[-1])
  assert served.pop('imported') == []
  assert 'dense_shape (n, d) of sizes >= 0' in served.pop(
      'negative_dense_shape')
  assert sorted(served) == sorted(SPARSE_SIGNATURES + ('sparse_top_k',))
  signatures = exported['served'].signatures
  for name, outputs in served.items():
    want = signatures[name[len('sparse_'):]](input=points)
    for key, value in outputs.items():
      np.testing.assert_allclose(value, want[key], rtol=1e-5, atol=1e-5)

  shown = saved_model_cli('show', '--dir', export_dir, '--tag_set', 'serve',
                           '--signature_def', 'sparse_cluster_index')
  assert shown.returncode == 0, shown.stderr[-2000:]
  for key, dtype, shape in (('indices', 'DT_INT64', r'\(-1, 2\)'),
                            ('values', 'DT_FLOAT', r'\(-1\)'),
                            ('dense_shape', 'DT_INT64', r'\(2\)')):
    assert re.search(rf"inputs\['{key}'\] tensor_info:\s+dtype: {dtype}\s+"
                     rf'shape: {shape}', shown.stdout), shown.stdout
  assert re.search(r"outputs\['output'\] tensor_info:\s+dtype: DT_INT64\s+"
                   r'shape: \(-1\)', shown.stdout), shown.stdout

  ran = saved_model_cli(
      'run', '--dir', export_dir, '--tag_set', 'serve',
      '--signature_def', 'sparse_cluster_index', '--input_exprs',
      f"indices={sparse_input['indices'].tolist()};"
      f"values={sparse_input['values'].tolist()};"
      f'dense_shape={list(points.shape)}')
  assert ran.returncode == 0, ran.stderr[-2000:]
  printed = re.search(r'Result for output key output:\s*\[([^\]]*)\]',
                      ran.stdout)
  assert printed, ran.stdout
  np.testing.assert_array_equal(
      np.array(printed.group(1).split(), np.int64),
      signatures['cluster_index'](input=points)['output'])
