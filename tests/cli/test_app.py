"""The `kmeans-estimator` commands, run in-process through `main` and as
`python -m kmeans_estimator`.

Evidence: the command line's results equal the Python API's for the same
seed, options and batches (the estimator is the oracle; numpy checks the
inertia and cluster sizes it prints); the same points as .npy, .csv (with and
without a header, picked by --columns) and TFRecord (--feature) train the
same centers; a streamed full-batch run equals in-memory full-batch training
and numpy Lloyd; bad files exit 1 with a message naming the file and leave an
existing model_dir byte for byte as it was. Most cases call `cli.main`
in-process; a few run `python -m kmeans_estimator` in a subprocess (each
costs a TensorFlow import).
"""

import json
import pathlib
import re

import numpy as np
import oracles
import pytest
import tensorflow as tf

from cli_cases import (
  BATCH,
  K,
  POINTS,
  PROGRESS_LINE,
  STEPS,
  TRAIN_FLAGS,
  batches,
  centers_of,
  run_process,
  summary_value,
)
from helpers import run_cli, write_csv, write_tfrecord
from kmeans_estimator import KMeansClustering


# ----------------------------------------------------------------- train
def test_train_equals_the_python_api_and_prints_a_true_summary(trained,
                                                               tmp_path):
  model_dir, out = trained
  api = KMeansClustering(K, model_dir=str(tmp_path / 'api'), seed=0,
                         use_mini_batch=False,
                         initial_clusters='kmeans_plus_plus')
  api.train(batches(POINTS), steps=STEPS)
  centers = centers_of(model_dir)
  np.testing.assert_allclose(centers, api.cluster_centers(), rtol=1e-6,
                             atol=1e-6)
  # The summary against numpy.
  distances = oracles.distances(POINTS, centers)
  assert summary_value(out, r'iterations \(global step\)') == str(STEPS)
  assert float(summary_value(out, 'final inertia')) == pytest.approx(
      oracles.inertia(POINTS, centers), rel=1e-5)
  assert float(summary_value(out, 'mean squared distance')) == pytest.approx(
      distances.min(1).mean(), rel=1e-5)
  sizes = np.bincount(distances.argmin(1), minlength=K).tolist()
  assert f'cluster sizes:            {sizes}' in out
  assert summary_value(out, 'checkpoint') == tf.train.latest_checkpoint(
      str(model_dir))
  # One progress line per step, with loss, relative change and points/s.
  progress = re.findall(PROGRESS_LINE, out, re.MULTILINE)
  assert [int(step) for step, *_ in progress] == list(range(1, STEPS + 1))
  assert progress[0][2] == '-' and float(progress[1][2]) >= 0


def test_train_from_csv_with_header_and_columns_equals_train_from_npy(
    trained, tmp_path):
  path = write_csv(tmp_path / 'points.csv', POINTS, ['x', 'y', 'z', 'label'],
                   extra_column=True)
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 *TRAIN_FLAGS, '--columns=x,y,z', path) == 0
  np.testing.assert_array_equal(centers_of(tmp_path / 'model'),
                                centers_of(trained[0]))


def test_train_from_tfrecord_features_equals_train_from_npy(trained,
                                                            tmp_path):
  path = write_tfrecord(tmp_path / 'points.tfrecord', POINTS)
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 *TRAIN_FLAGS, '--feature=xy:2,z', path) == 0
  np.testing.assert_array_equal(centers_of(tmp_path / 'model'),
                                centers_of(trained[0]))


def test_streamed_npy_full_batch_equals_in_memory_training_and_numpy(
    tmp_path):
  initial = POINTS[[0, 1, 2]]
  np.save(tmp_path / 'initial.npy', initial)
  np.save(tmp_path / 'points.npy', POINTS)
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 '--nouse_mini_batch', '--steps=4', '--batch_size=50',
                 f'--initial_clusters={tmp_path / "initial.npy"}',
                 '--relative_tolerance=0', '--noprogress',
                 tmp_path / 'points.npy') == 0
  in_memory = KMeansClustering(K, model_dir=str(tmp_path / 'api'),
                               use_mini_batch=False, initial_clusters=initial)
  in_memory.train(lambda: POINTS, steps=4)
  streamed = centers_of(tmp_path / 'model')
  np.testing.assert_allclose(streamed, in_memory.cluster_centers(),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(streamed, oracles.lloyd(POINTS, initial, 4)[0],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('empty_cluster', ['keep', 'farthest_point'])
@pytest.mark.slow
def test_kmeans_parallel_and_empty_cluster_flags_equal_the_python_api(
    data_dir, tmp_path, empty_cluster):
  flags = (f'--num_clusters={K}', '--nouse_mini_batch', '--seed=0',
           '--initial_clusters=kmeans_parallel', '--kmeans_parallel_rounds=3',
           '--kmeans_parallel_oversampling=2', f'--empty_cluster={empty_cluster}',
           '--steps=3', f'--batch_size={BATCH}', '--relative_tolerance=0',
           '--noprogress')
  assert run_cli('train', f'--model_dir={tmp_path / "model"}', *flags,
                 data_dir / 'points.npy') == 0
  api = KMeansClustering(K, model_dir=str(tmp_path / 'api'), seed=0,
                         use_mini_batch=False,
                         initial_clusters='kmeans_parallel',
                         kmeans_parallel_rounds=3,
                         kmeans_parallel_oversampling=2,
                         empty_cluster=empty_cluster)
  api.train(batches(POINTS), steps=3)
  np.testing.assert_allclose(centers_of(tmp_path / 'model'),
                             api.cluster_centers(), rtol=1e-6, atol=1e-6)


def test_mini_batch_steps_cycle_through_the_files(tmp_path, capsys):
  np.save(tmp_path / 'points.npy', POINTS)
  # 300 points in batches of 100: 7 steps need three passes.
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 f'--num_clusters={K}', '--seed=0', '--steps=7',
                 '--use_mini_batch', '--batch_size=100',
                 '--progress_every_secs=0', tmp_path / 'points.npy') == 0
  out = capsys.readouterr().out
  assert tf.train.load_variable(str(tmp_path / 'model'), 'global_step') == 7
  assert re.findall(r'^step +(\d+)/7 ', out, re.MULTILINE) == [
      str(step) for step in range(1, 8)]


# ------------------------------------------------ predict, score, centers
def test_predict_to_npy_and_csv_keeps_input_order(trained, tmp_path, capsys):
  model_dir, _ = trained
  # Two files, several batches each: the output follows the files' order.
  np.save(tmp_path / 'part0.npy', POINTS[:130])
  np.save(tmp_path / 'part1.npy', POINTS[130:])
  api = KMeansClustering(K, model_dir=str(model_dir))
  expected = np.array(list(api.predict_cluster_index(lambda: POINTS)))
  distances = np.stack(list(api.transform(lambda: POINTS)))
  assert run_cli('predict', f'--model_dir={model_dir}', '--batch_size=40',
                 '--distances', f'--output={tmp_path / "out.npy"}',
                 tmp_path / 'part*.npy') == 0
  np.testing.assert_array_equal(np.load(tmp_path / 'out.npy'), expected)
  # Batches of 40 and one batch of 300 may take different float32 matmul
  # kernels (oneDNN picks them by shape), so the last bits may differ.
  np.testing.assert_allclose(np.load(tmp_path / 'out.distances.npy'),
                             distances, rtol=1e-5, atol=1e-5)
  assert run_cli('predict', f'--model_dir={model_dir}', '--batch_size=40',
                 f'--output={tmp_path / "out.csv"}', tmp_path / 'part0.npy',
                 tmp_path / 'part1.npy') == 0
  table = np.genfromtxt(tmp_path / 'out.csv', delimiter=',', names=True)
  np.testing.assert_array_equal(table['cluster_index'], expected)
  assert 'Wrote 300 predictions' in capsys.readouterr().out


def test_predict_prints_csv_with_distances(trained, data_dir, capsys):
  model_dir, _ = trained
  api = KMeansClustering(K, model_dir=str(model_dir))
  assert run_cli('predict', f'--model_dir={model_dir}', '--distances',
                 data_dir / 'points.npy') == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == 'cluster_index,distance_0,distance_1,distance_2'
  table = np.array([line.split(',') for line in lines[1:]], np.float64)
  np.testing.assert_array_equal(
      table[:, 0], list(api.predict_cluster_index(lambda: POINTS)))
  np.testing.assert_allclose(table[:, 1:],
                             list(api.transform(lambda: POINTS)), rtol=1e-6)


def test_score_prints_the_inertia_of_numpy(trained, data_dir, capsys):
  model_dir, _ = trained
  assert run_cli('score', f'--model_dir={model_dir}',
                 data_dir / 'points.npy') == 0
  out = capsys.readouterr().out
  centers = centers_of(model_dir)
  assert float(summary_value(out, 'inertia')) == pytest.approx(
      oracles.inertia(POINTS, centers), rel=1e-5)
  assert summary_value(out, 'num_points') == str(len(POINTS))
  assert summary_value(out, 'global_step') == str(STEPS)


def test_centers_print_and_save(trained, tmp_path, capsys):
  model_dir, _ = trained
  centers = centers_of(model_dir)
  assert run_cli('centers', f'--model_dir={model_dir}') == 0
  printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=',')
  np.testing.assert_array_equal(printed.astype(np.float32), centers)
  for name in ('centers.npy', 'centers.csv'):
    assert run_cli('centers', f'--model_dir={model_dir}',
                   f'--output={tmp_path / name}') == 0
  np.testing.assert_array_equal(np.load(tmp_path / 'centers.npy'), centers)
  np.testing.assert_array_equal(
      np.loadtxt(tmp_path / 'centers.csv', delimiter=',').astype(np.float32),
      centers)
  # Saved centers start a new model where this one ended.
  assert run_cli('train', f'--model_dir={tmp_path / "again"}',
                 '--nouse_mini_batch', '--steps=1', '--noprogress',
                 f'--initial_clusters={tmp_path / "centers.csv"}',
                 tmp_path / 'centers.npy') == 0


def test_export_serves_the_cluster_indices(trained, tmp_path, capsys):
  model_dir, _ = trained
  assert run_cli('export', f'--model_dir={model_dir}',
                 f'--export_dir_base={tmp_path / "exports"}') == 0
  path = capsys.readouterr().out.strip()
  assert pathlib.Path(path).parent == tmp_path / 'exports'
  served = tf.saved_model.load(path).signatures['serving_default'](
      input=tf.constant(POINTS))
  api = KMeansClustering(K, model_dir=str(model_dir))
  index, = served.values()
  np.testing.assert_array_equal(
      index.numpy(), list(api.predict_cluster_index(lambda: POINTS)))


# ---------------------------------------------------------- bad files
def _nan_points(path):
  points = POINTS.copy()
  points[200, 1] = np.nan
  np.save(path, points)
  return path


@pytest.mark.parametrize('make_file,extra,message', [
    (lambda d: d / 'missing.npy', [], r"File not found: '.*missing\.npy'"),
    (lambda d: write_csv(d / 'p.csv', POINTS[:, :2]), [],
     r'2 features per point but the model was trained on 3'),
    (lambda d: _nan_points(d / 'nan.npy'), [], r'NaN or Inf'),
], ids=['missing_file', 'wrong_width', 'nan_in_data'])
def test_bad_files_exit_1_with_a_message_and_keep_model_dir(
    trained, tmp_path, capsys, make_file, extra, message):
  model_dir, _ = trained
  before = oracles.snapshot(model_dir)
  path = make_file(tmp_path)
  assert run_cli('train', f'--model_dir={model_dir}', '--steps=2',
                 '--nouse_mini_batch', *extra, path) == 1
  err = capsys.readouterr().err
  assert re.search(r'^kmeans-estimator train: error: .*' + message, err,
                   re.MULTILINE), err
  assert oracles.snapshot(model_dir) == before


def test_a_bad_csv_cell_names_its_file_line_and_column(trained, tmp_path,
                                                       capsys):
  model_dir, _ = trained
  path = write_csv(tmp_path / 'p.csv', POINTS, ['x', 'y', 'z'])
  lines = path.read_text().splitlines()
  lines[150] = '1.0,oops,2.0'  # Line 151 of the file.
  path.write_text('\n'.join(lines) + '\n')
  before = oracles.snapshot(model_dir)
  assert run_cli('score', f'--model_dir={model_dir}', path) == 1
  assert (f"{path} line 151, column y: 'oops' is not a number"
          in capsys.readouterr().err)
  # A failed predict leaves an existing output as it was, and no partial file.
  output = tmp_path / 'out.csv'
  output.write_text('earlier results\n')
  assert run_cli('predict', f'--model_dir={model_dir}', '--batch_size=64',
                 f'--output={output}', path) == 1
  assert output.read_text() == 'earlier results\n'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['out.csv', 'p.csv']
  assert oracles.snapshot(model_dir) == before


def test_a_legacy_model_dir_predicts_with_the_metric_flag(tmp_path):
  # Checkpoints of the legacy estimator do not record their metric.
  model_dir = oracles.copy_legacy('cosine_minibatch', tmp_path)
  expected = json.loads((oracles.LEGACY_DIR / 'expected.json').read_text())
  assert run_cli('predict', f'--model_dir={model_dir}',
                 '--distance_metric=cosine', f'--output={tmp_path / "i.npy"}',
                 oracles.LEGACY_DIR / 'points.npy') == 0
  np.testing.assert_array_equal(
      np.load(tmp_path / 'i.npy'),
      expected['cosine_minibatch']['cluster_index'])


# ------------------------------------------------------------ subprocess
@pytest.mark.slow
def test_the_module_trains_from_a_headerless_csv_like_from_npy(trained,
                                                             tmp_path):
  path = write_csv(tmp_path / 'points.csv', POINTS, extra_column=True)
  model_dir = tmp_path / 'model'
  result = run_process('train', f'--model_dir={model_dir}', *TRAIN_FLAGS,
                       '--columns=0,1,2', path)
  assert result.returncode == 0, result.stderr
  assert re.search(r'^step +5/5 +loss', result.stdout, re.MULTILINE)
  assert 'final inertia' in result.stdout
  assert 'Traceback' not in result.stderr
  np.testing.assert_array_equal(centers_of(model_dir),
                                centers_of(trained[0]))


@pytest.mark.slow
def test_the_module_reports_a_bad_cell_with_status_1_and_no_traceback(
    trained, tmp_path):
  model_dir, _ = trained
  before = oracles.snapshot(model_dir)
  path = write_csv(tmp_path / 'p.csv', POINTS, ['x', 'y', 'z'])
  path.write_text(path.read_text().replace('\n', '\n1,2,?\n', 1))
  result = run_process('score', f'--model_dir={model_dir}', path)
  assert result.returncode == 1
  assert (f"kmeans-estimator score: error: {path} line 2, column z: '?' is "
          'not a number' in result.stderr)
  assert 'Traceback' not in result.stderr
  assert oracles.snapshot(model_dir) == before


# ------------------------------------------------------ file inputs
def test_predict_and_initial_clusters_read_a_csv_with_a_byte_order_mark(
    trained, data_dir, tmp_path, capsys):
  model_dir, _ = trained
  path = tmp_path / 'p.csv'
  path.write_bytes(('\ufeff' + '\n'.join(
      ','.join(repr(float(v)) for v in row) for row in POINTS[:5])
                    ).encode())
  assert run_cli('predict', f'--model_dir={model_dir}', path) == 0
  lines = capsys.readouterr().out.splitlines()
  api = KMeansClustering(K, model_dir=str(model_dir))
  assert [int(line) for line in lines[1:]] == list(
      api.predict_cluster_index(lambda: POINTS[:5]))
  # --initial_clusters: five centers, not four.
  assert run_cli('train', f'--model_dir={tmp_path / "model"}',
                 f'--initial_clusters={path}', '--steps=1', '--seed=0',
                 data_dir / 'points.npy') == 0
  assert centers_of(tmp_path / 'model').shape == (5, 3)


def test_export_with_top_k_and_sparse_serves_those_signatures(
    trained, tmp_path, capsys):
  model_dir, _ = trained
  assert run_cli('export', f'--model_dir={model_dir}',
                 f'--export_dir_base={tmp_path / "exports"}', '--top_k=2',
                 '--sparse') == 0
  served = tf.saved_model.load(capsys.readouterr().out.strip()).signatures
  assert {'top_k', 'sparse_cluster_index', 'sparse_top_k'} <= set(served)
  api = KMeansClustering(K, model_dir=str(model_dir))
  nearest = served['top_k'](input=tf.constant(POINTS))
  index_key = next(key for key in nearest if 'ind' in key)
  np.testing.assert_array_equal(
      nearest[index_key].numpy()[:, 0],
      list(api.predict_cluster_index(lambda: POINTS)))
  sparse = tf.sparse.from_dense(POINTS)
  index, = served['sparse_cluster_index'](
      indices=sparse.indices, values=sparse.values,
      dense_shape=sparse.dense_shape).values()
  np.testing.assert_array_equal(
      index.numpy(), list(api.predict_cluster_index(lambda: POINTS)))

