"""The `kmeans-estimator` command line and the file inputs under it.

Evidence: the command line's results equal the Python API's for the same
seed, options and batches (the estimator is the oracle; numpy checks the
inertia and cluster sizes it prints); the same points as .npy, .csv (with and
without a header, picked by --columns) and TFRecord (--feature) train the
same centers; a streamed full-batch run equals in-memory full-batch training
and numpy Lloyd; bad flags and bad files exit non-zero with a message naming
the flag or file and leave an existing model_dir byte for byte as it was.
Most cases call `cli.main` in-process; a few run `python -m kmeans_estimator`
in a subprocess (each costs a TensorFlow import).
"""

import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import oracles
import pytest
import tensorflow as tf
from absl import app, flags

from kmeans_estimator import KMeansClustering
from kmeans_estimator.cli import app as cli
from kmeans_estimator.data import files as file_inputs

FLAGS = flags.FLAGS
_K = 3
_BATCH = 64
_STEPS = 5
_TRAIN_FLAGS = (f'--num_clusters={_K}', '--nouse_mini_batch',
                '--initial_clusters=kmeans_plus_plus', '--seed=0',
                f'--steps={_STEPS}', f'--batch_size={_BATCH}')


def _blobs(seed=0, n=300, d=3):
  rng = np.random.default_rng(seed)
  centers = rng.uniform(0, 6, size=(_K, d))
  points = centers[rng.integers(_K, size=n)] + rng.normal(0, 1, (n, d))
  return points.astype(np.float32)


POINTS = _blobs()


def run_main(*args):
  """Parses the flags as absl would and calls cli.main in this process."""
  FLAGS.unparse_flags()
  try:
    return cli.main(FLAGS(['kmeans-estimator', *map(str, args)]))
  finally:
    FLAGS.unparse_flags()


def run_process(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run(
      [sys.executable, '-m', 'kmeans_estimator', *map(str, args)],
      capture_output=True, text=True, env=env, timeout=120,
      cwd=pathlib.Path(__file__).resolve().parents[2], check=False)


def write_csv(path, points, header=None, extra_column=False):
  with open(path, 'w') as f:
    if header:
      f.write(','.join(header) + '\n')
    for i, row in enumerate(points):
      cells = [repr(float(v)) for v in row]
      if extra_column:
        cells.append(f'label{i % 2}')
      f.write(','.join(cells) + '\n')
  return path


def write_tfrecord(path, points):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for row in points:
      feature = {
          'xy': tf.train.Feature(float_list=tf.train.FloatList(value=row[:2])),
          'z': tf.train.Feature(float_list=tf.train.FloatList(value=row[2:])),
          'id': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'p'])),
      }
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())
  return path


def batches(points, batch_size=_BATCH):
  """The Python API's input_fn for the batches the command line reads."""
  return lambda: tf.data.Dataset.from_tensor_slices(points).batch(batch_size)


def summary_value(text, label):
  return re.search(rf'{label}:\s+(\S+)', text).group(1)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp('data')
  np.save(path / 'points.npy', POINTS)
  write_csv(path / 'points.csv', POINTS, ['x', 'y', 'z'])
  write_tfrecord(path / 'points.tfrecord', POINTS)
  return path


@pytest.fixture(scope='module')
def trained(data_dir, tmp_path_factory):
  """A model_dir trained by the command line on points.npy, and its output."""
  model_dir = tmp_path_factory.mktemp('trained') / 'model'
  out = io.StringIO()  # capsys is function-scoped.
  with contextlib.redirect_stdout(out):
    assert run_main('train', f'--model_dir={model_dir}', *_TRAIN_FLAGS,
                    data_dir / 'points.npy') == 0
  return model_dir, out.getvalue()


def centers_of(model_dir):
  return tf.train.load_variable(str(model_dir), 'clusters')


# ----------------------------------------------------------------- train
def test_train_equals_the_python_api_and_prints_a_true_summary(trained,
                                                               tmp_path):
  model_dir, out = trained
  api = KMeansClustering(_K, model_dir=str(tmp_path / 'api'), seed=0,
                         use_mini_batch=False,
                         initial_clusters='kmeans_plus_plus')
  api.train(batches(POINTS), steps=_STEPS)
  centers = centers_of(model_dir)
  np.testing.assert_allclose(centers, api.cluster_centers(), rtol=1e-6,
                             atol=1e-6)
  # The summary against numpy.
  distances = oracles.distances(POINTS, centers)
  assert summary_value(out, r'iterations \(global step\)') == str(_STEPS)
  assert float(summary_value(out, 'final inertia')) == pytest.approx(
      oracles.inertia(POINTS, centers), rel=1e-5)
  assert float(summary_value(out, 'mean squared distance')) == pytest.approx(
      distances.min(1).mean(), rel=1e-5)
  sizes = np.bincount(distances.argmin(1), minlength=_K).tolist()
  assert f'cluster sizes:            {sizes}' in out
  assert summary_value(out, 'checkpoint') == tf.train.latest_checkpoint(
      str(model_dir))
  # One progress line per step, with loss, relative change and points/s.
  progress = re.findall(r'^step +(\d+) +loss (\S+) +relative change (\S+) '
                        r'+([\d,]+) points/s$', out, re.MULTILINE)
  assert [int(step) for step, *_ in progress] == list(range(1, _STEPS + 1))
  assert progress[0][2] == '-' and float(progress[1][2]) >= 0


def test_train_from_csv_with_header_and_columns_equals_train_from_npy(
    trained, tmp_path):
  path = write_csv(tmp_path / 'points.csv', POINTS, ['x', 'y', 'z', 'label'],
                   extra_column=True)
  assert run_main('train', f'--model_dir={tmp_path / "model"}',
                  *_TRAIN_FLAGS, '--columns=x,y,z', path) == 0
  np.testing.assert_array_equal(centers_of(tmp_path / 'model'),
                                centers_of(trained[0]))


def test_train_from_tfrecord_features_equals_train_from_npy(trained,
                                                            tmp_path):
  path = write_tfrecord(tmp_path / 'points.tfrecord', POINTS)
  assert run_main('train', f'--model_dir={tmp_path / "model"}',
                  *_TRAIN_FLAGS, '--feature=xy:2,z', path) == 0
  np.testing.assert_array_equal(centers_of(tmp_path / 'model'),
                                centers_of(trained[0]))


def test_streamed_npy_full_batch_equals_in_memory_training_and_numpy(
    tmp_path):
  initial = POINTS[[0, 1, 2]]
  np.save(tmp_path / 'initial.npy', initial)
  np.save(tmp_path / 'points.npy', POINTS)
  assert run_main('train', f'--model_dir={tmp_path / "model"}',
                  '--nouse_mini_batch', '--steps=4', '--batch_size=50',
                  f'--initial_clusters={tmp_path / "initial.npy"}',
                  '--progress_every=0', tmp_path / 'points.npy') == 0
  in_memory = KMeansClustering(_K, model_dir=str(tmp_path / 'api'),
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
  flags = (f'--num_clusters={_K}', '--nouse_mini_batch', '--seed=0',
           '--initial_clusters=kmeans_parallel', '--kmeans_parallel_rounds=3',
           '--kmeans_parallel_oversampling=2', f'--empty_cluster={empty_cluster}',
           '--steps=3', f'--batch_size={_BATCH}', '--progress_every=0')
  assert run_main('train', f'--model_dir={tmp_path / "model"}', *flags,
                  data_dir / 'points.npy') == 0
  api = KMeansClustering(_K, model_dir=str(tmp_path / 'api'), seed=0,
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
  assert run_main('train', f'--model_dir={tmp_path / "model"}',
                  f'--num_clusters={_K}', '--seed=0', '--steps=7',
                  '--batch_size=100', '--progress_every=3',
                  tmp_path / 'points.npy') == 0
  out = capsys.readouterr().out
  assert tf.train.load_variable(str(tmp_path / 'model'), 'global_step') == 7
  assert re.findall(r'^step +(\d+)', out, re.MULTILINE) == ['1', '3', '6']


# ------------------------------------------------ predict, score, centers
def test_predict_to_npy_and_csv_keeps_input_order(trained, tmp_path, capsys):
  model_dir, _ = trained
  # Two files, several batches each: the output follows the files' order.
  np.save(tmp_path / 'part0.npy', POINTS[:130])
  np.save(tmp_path / 'part1.npy', POINTS[130:])
  api = KMeansClustering(_K, model_dir=str(model_dir))
  expected = np.array(list(api.predict_cluster_index(lambda: POINTS)))
  distances = np.stack(list(api.transform(lambda: POINTS)))
  assert run_main('predict', f'--model_dir={model_dir}', '--batch_size=40',
                  '--distances', f'--output={tmp_path / "out.npy"}',
                  tmp_path / 'part*.npy') == 0
  np.testing.assert_array_equal(np.load(tmp_path / 'out.npy'), expected)
  # Batches of 40 and one batch of 300 may take different float32 matmul
  # kernels (oneDNN picks them by shape), so the last bits may differ.
  np.testing.assert_allclose(np.load(tmp_path / 'out.distances.npy'),
                             distances, rtol=1e-5, atol=1e-5)
  assert run_main('predict', f'--model_dir={model_dir}', '--batch_size=40',
                  f'--output={tmp_path / "out.csv"}', tmp_path / 'part0.npy',
                  tmp_path / 'part1.npy') == 0
  table = np.genfromtxt(tmp_path / 'out.csv', delimiter=',', names=True)
  np.testing.assert_array_equal(table['cluster_index'], expected)
  assert 'Wrote 300 predictions' in capsys.readouterr().out


def test_predict_prints_csv_with_distances(trained, data_dir, capsys):
  model_dir, _ = trained
  api = KMeansClustering(_K, model_dir=str(model_dir))
  assert run_main('predict', f'--model_dir={model_dir}', '--distances',
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
  assert run_main('score', f'--model_dir={model_dir}',
                  data_dir / 'points.npy') == 0
  out = capsys.readouterr().out
  centers = centers_of(model_dir)
  assert float(summary_value(out, 'inertia')) == pytest.approx(
      oracles.inertia(POINTS, centers), rel=1e-5)
  assert summary_value(out, 'num_points') == str(len(POINTS))
  assert summary_value(out, 'global_step') == str(_STEPS)


def test_centers_print_and_save(trained, tmp_path, capsys):
  model_dir, _ = trained
  centers = centers_of(model_dir)
  assert run_main('centers', f'--model_dir={model_dir}') == 0
  printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=',')
  np.testing.assert_array_equal(printed.astype(np.float32), centers)
  for name in ('centers.npy', 'centers.csv'):
    assert run_main('centers', f'--model_dir={model_dir}',
                    f'--output={tmp_path / name}') == 0
  np.testing.assert_array_equal(np.load(tmp_path / 'centers.npy'), centers)
  np.testing.assert_array_equal(
      np.loadtxt(tmp_path / 'centers.csv', delimiter=',').astype(np.float32),
      centers)
  # Saved centers start a new model where this one ended.
  assert run_main('train', f'--model_dir={tmp_path / "again"}',
                  '--nouse_mini_batch', '--steps=1', '--progress_every=0',
                  f'--initial_clusters={tmp_path / "centers.csv"}',
                  tmp_path / 'centers.npy') == 0


@pytest.mark.parametrize('command,name', [
    ('predict', 'out.npy'), ('predict', 'out.csv'), ('centers', 'out.npy'),
    ('centers', 'out.csv')])
def test_outputs_never_write_through_a_planted_symlink(
    trained, data_dir, tmp_path, command, name, capsys):
  model_dir, _ = trained
  output = tmp_path / name
  victims = []
  # Symlinks at the output, at the old predictable temporary names, and at
  # the .distances.npy output.
  links = [output, tmp_path / f'{name}.tmp-{os.getpid()}',
           tmp_path / 'out.distances.npy']
  for i, link in enumerate(links):
    victim = tmp_path / f'victim{i}'
    victim.write_text('precious')
    link.symlink_to(victim)
    victims.append(victim)
  args = ['--distances', data_dir / 'points.npy'] if command == 'predict' else []
  assert run_main(command, f'--model_dir={model_dir}', f'--output={output}',
                  *args) == 0
  capsys.readouterr()
  assert all(victim.read_text() == 'precious' for victim in victims)
  assert not output.is_symlink() and output.is_file()
  if name.endswith('.npy') and command == 'predict':
    assert not links[2].is_symlink()
    assert np.load(links[2]).shape == (len(POINTS), _K)
  expected = (centers_of(model_dir) if command == 'centers' else
              np.array(list(KMeansClustering(
                  _K, model_dir=str(model_dir)).predict_cluster_index(
                      lambda: POINTS))))
  got = (np.load(output) if name.endswith('.npy') else
         np.loadtxt(output, delimiter=',', skiprows=int(command == 'predict')))
  np.testing.assert_allclose(got if got.ndim == expected.ndim else got[:, 0],
                             expected, rtol=1e-6)
  assert not [p for p in tmp_path.iterdir() if '.tmp-' in p.name and
              not p.is_symlink()]


def _same_path(d):
  np.save(d / 'p.npy', POINTS)
  return d / 'p.npy', d / 'p.npy', []


def _other_spelling(d):
  np.save(d / 'p.npy', POINTS)
  return d / 'p.npy', f'{d}/./sub/../p.npy', []


def _symlink_to_input(d):
  np.save(d / 'p.npy', POINTS)
  (d / 'link.npy').symlink_to(d / 'p.npy')
  return d / 'p.npy', d / 'link.npy', []


def _hard_link_to_input(d):
  write_csv(d / 'p.csv', POINTS)
  os.link(d / 'p.csv', d / 'link.csv')
  return d / 'p.csv', d / 'link.csv', []


def _input_by_glob(d):
  np.save(d / 'p.npy', POINTS)
  return d / '*.npy', d / 'p.npy', []


def _distances_output(d):
  np.save(d / 'out.distances.npy', POINTS)
  return d / 'out.distances.npy', d / 'out.npy', ['--distances']


@pytest.mark.parametrize('make', [
    _same_path, _other_spelling, _symlink_to_input, _hard_link_to_input,
    _input_by_glob, _distances_output])
def test_predict_refuses_an_output_that_is_an_input_file(trained, tmp_path,
                                                         make):
  model_dir, _ = trained
  (tmp_path / 'sub').mkdir()
  data, output, extra = make(tmp_path)
  before = oracles.snapshot(tmp_path)
  with pytest.raises(app.UsageError,
                     match=r'`output` must not be an input file: the '
                     r'predictions would overwrite the points\. Give another '
                     rf'path\. Received: --output={re.escape(str(output))}.* '
                     r'which is the input file '):
    run_main('predict', f'--model_dir={model_dir}', f'--output={output}',
             *extra, data)
  assert oracles.snapshot(tmp_path) == before


def test_the_temporary_output_is_created_exclusively(trained, tmp_path,
                                                     monkeypatch, capsys):
  model_dir, _ = trained
  output = tmp_path / 'centers.npy'
  victim = tmp_path / 'victim'
  victim.write_text('precious')
  # The first random name drawn is taken by a symlink: another is drawn.
  names = iter(['planted', 'fresh'])
  monkeypatch.setattr(cli.secrets, 'token_hex', lambda n: next(names))
  (tmp_path / 'centers.npy.tmp-planted').symlink_to(victim)
  assert run_main('centers', f'--model_dir={model_dir}',
                  f'--output={output}') == 0
  capsys.readouterr()
  assert victim.read_text() == 'precious'
  np.testing.assert_array_equal(np.load(output), centers_of(model_dir))
  assert not (tmp_path / 'centers.npy.tmp-fresh').exists()


def test_export_serves_the_cluster_indices(trained, tmp_path, capsys):
  model_dir, _ = trained
  assert run_main('export', f'--model_dir={model_dir}',
                  f'--export_dir_base={tmp_path / "exports"}') == 0
  path = capsys.readouterr().out.strip()
  assert pathlib.Path(path).parent == tmp_path / 'exports'
  served = tf.saved_model.load(path).signatures['serving_default'](
      input=tf.constant(POINTS))
  api = KMeansClustering(_K, model_dir=str(model_dir))
  index, = served.values()
  np.testing.assert_array_equal(
      index.numpy(), list(api.predict_cluster_index(lambda: POINTS)))


# ------------------------------------------------------- bad flags, files
@pytest.mark.parametrize('args,message', [
    (['fit'], (r'The command must be one of train, predict, score, centers, '
               r'export\. Received: fit')),
    ([], r'Give a command'),
    (['train', '--model_dir={model}', '--num_clusters=0', '{data}'],
     (r'`num_clusters` must be a positive integer\. Received: '
      r'--num_clusters=0')),
    (['train', '--num_clusters=3', '{data}'],
     r'`model_dir` must be given.*Received: no --model_dir'),
    (['train', '--model_dir={model}', '--num_clusters=4', '{data}'],
     (r'`num_clusters` must match the model in --model_dir=.*which has 3 '
      r'clusters.*Received: --num_clusters=4')),
    (['train', '--model_dir={model}', '--steps=2', '--max_steps=3', '{data}'],
     r'Give `steps` or `max_steps`, not both'),
    (['train', '--model_dir={model}', '--relative_tolerance=-1', '{data}'],
     (r'`relative_tolerance` must be None or a number >= 0\. Received: '
      r'--relative_tolerance=-1')),
    (['train', '--model_dir={model}', '--initial_clusters=best', '{data}'],
     (r'`initial_clusters` must be one of .*Received: '
      r'--initial_clusters=best')),
    (['train', '--model_dir={model}'], r'`train` needs input files'),
    (['predict', '--model_dir={model}', '--output=out.txt', '{data}'],
     r'`output` must end in \.npy or \.csv.*Received: --output=out\.txt'),
    (['centers', '--model_dir={empty}'],
     r'`model_dir` must hold a trained model .*Received: --model_dir='),
    (['export', '--model_dir={model}'], r'`export_dir_base` must be given'),
    (['train', '--model_dir={model}', '--columns=x,w', '{csv}'],
     (r"`columns` must be the header names \['x', 'y', 'z'\] or 0-based "
      r"indices .*'w' is neither\. Received: --columns=x,w")),
    (['score', '--model_dir={model}', '--columns=x', '{tfrecord}'],
     (r'`columns` applies to \.csv and \.npy files; for TFRecord files name '
      r'the features with `feature`\. Received: --columns=x')),
    (['score', '--model_dir={model}', '--feature=w', '{tfrecord}'],
     r'`feature` must name features of the records.*Received: --feature=w'),
    (['centers', '--model_dir={model}', '--distance_metric=cosine'],
     (r'`distance_metric` must match the model in --model_dir=.*trained with '
      r'squared_euclidean.*Received: --distance_metric=cosine')),
], ids=['unknown_command', 'no_command', 'num_clusters_0', 'no_model_dir',
        'other_num_clusters', 'steps_and_max_steps', 'negative_tolerance',
        'unknown_init', 'no_files', 'bad_output', 'untrained_model_dir',
        'no_export_dir', 'unknown_column', 'columns_of_tfrecord',
        'unknown_feature', 'other_distance_metric'])
def test_bad_flags_raise_usage_errors_and_keep_model_dir(
    trained, data_dir, tmp_path, args, message):
  model_dir, _ = trained
  before = oracles.snapshot(model_dir)
  args = [arg.format(model=model_dir, data=data_dir / 'points.npy',
                     empty=tmp_path / 'empty', csv=data_dir / 'points.csv',
                     tfrecord=data_dir / 'points.tfrecord') for arg in args]
  with pytest.raises(app.UsageError, match=message):
    run_main(*args)
  assert oracles.snapshot(model_dir) == before


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
  assert run_main('train', f'--model_dir={model_dir}', '--steps=2',
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
  assert run_main('score', f'--model_dir={model_dir}', path) == 1
  assert (f"{path} line 151, column y: 'oops' is not a number"
          in capsys.readouterr().err)
  # A failed predict leaves an existing output as it was, and no partial file.
  output = tmp_path / 'out.csv'
  output.write_text('earlier results\n')
  assert run_main('predict', f'--model_dir={model_dir}', '--batch_size=64',
                  f'--output={output}', path) == 1
  assert output.read_text() == 'earlier results\n'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['out.csv', 'p.csv']
  assert oracles.snapshot(model_dir) == before


def test_a_legacy_model_dir_predicts_with_the_metric_flag(tmp_path):
  # Checkpoints of the legacy estimator do not record their metric.
  model_dir = oracles.copy_legacy('cosine_minibatch', tmp_path)
  expected = json.loads((oracles.LEGACY_DIR / 'expected.json').read_text())
  assert run_main('predict', f'--model_dir={model_dir}',
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
  result = run_process('train', f'--model_dir={model_dir}', *_TRAIN_FLAGS,
                       '--columns=0,1,2', path)
  assert result.returncode == 0, result.stderr
  assert re.search(r'^step +5 +loss', result.stdout, re.MULTILINE)
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


# ----------------------------------------------------------- file inputs
def test_npy_streams_in_batches_in_file_order(tmp_path):
  np.save(tmp_path / 'a.npy', POINTS[:100].astype(np.float64))
  np.save(tmp_path / 'b.npy', POINTS[100:].astype(np.int64))
  source = file_inputs.open_files(str(tmp_path / '*.npy'), columns=[2, '0'])
  assert (source.num_points, source.num_features) == (300, 2)
  sizes = [len(batch) for batch in source.dataset(batch_size=64)]
  assert sizes == [64, 36, 64, 64, 64, 8]
  expected = np.concatenate([POINTS[:100], POINTS[100:].astype(np.int64)])
  np.testing.assert_array_equal(source.read_all(), expected[:, [2, 0]])


@pytest.mark.parametrize('layout', ['fortran', 'big_endian', 'version_2'])
def test_npy_batches_of_every_layout_equal_the_array(tmp_path, layout):
  path = str(tmp_path / 'p.npy')
  if layout == 'fortran':
    np.save(path, np.asfortranarray(POINTS))
  elif layout == 'big_endian':
    np.save(path, POINTS.astype('>f8'))
  else:
    with open(path, 'wb') as f:
      np.lib.format.write_array(f, POINTS, version=(2, 0))
  source = file_inputs.open_files(path, columns=[1, 2])
  batches = [batch.numpy() for batch in source.dataset(batch_size=128)]
  assert [len(batch) for batch in batches] == [128, 128, 44]
  np.testing.assert_array_equal(np.concatenate(batches),
                                POINTS[:, [1, 2]].astype(np.float32))


def test_npy_sources_of_one_file_share_one_memory_map(tmp_path):
  # However many sources and passes read a file, it is mapped once (so the
  # process's RSS grows by at most the file's size).
  path = tmp_path / 'p.npy'
  np.save(path, POINTS.astype(np.float32))
  passes = [iter(file_inputs.open_files(path).dataset(batch_size=size))
            for size in (64, 100, 300)]
  batches = [[batch.numpy() for batch in one_pass] for one_pass in passes]
  for one_pass in batches:
    np.testing.assert_array_equal(np.concatenate(one_pass), POINTS)
  maps = {key: array for key, array in file_inputs._MAPPED.items()
          if key[0] == os.path.realpath(path)}
  assert len(maps) == 1
  assert file_inputs._memory_map(str(path)) is next(iter(maps.values()))


def test_a_memory_map_being_loaded_does_not_block_other_readers(
    tmp_path, monkeypatch):
  # The garbage collector can run inside np.load, and a tf.data iterator it
  # finalises there waits for its reads in flight, of other files on other
  # threads. Those reads must not wait for the load: this hung the suite.
  first, second = tmp_path / 'first.npy', tmp_path / 'second.npy'
  np.save(first, POINTS.astype(np.float32))
  np.save(second, 2 * POINTS.astype(np.float32))
  load = np.load
  other = {}

  def load_waiting_for_another_reader(path, *args, **kwargs):
    if os.fspath(path) == os.fspath(first):
      reader = threading.Thread(target=lambda: other.update(
          array=file_inputs._memory_map(os.fspath(second))))
      reader.start()
      reader.join(timeout=30)
      assert not reader.is_alive(), 'a reader waited for another one\'s load'
    return load(path, *args, **kwargs)

  monkeypatch.setattr(np, 'load', load_waiting_for_another_reader)
  np.testing.assert_array_equal(file_inputs._memory_map(os.fspath(first)),
                                POINTS)
  np.testing.assert_array_equal(other['array'], 2 * POINTS)


def test_file_datasets_read_ahead_without_the_autotuner(tmp_path):
  # Every full-batch step reads the files with a new iterator; tf.data's
  # autotuner would start from nothing each time (measured: some passes
  # stalled to twice the time), so the read-ahead is fixed.
  np.save(tmp_path / 'p.npy', POINTS.astype(np.float32))
  np.savetxt(tmp_path / 'p.csv', POINTS, delimiter=',')
  for name in ('p.npy', 'p.csv'):
    dataset = file_inputs.open_files(str(tmp_path / name)).dataset(64)
    assert dataset.options().autotune.enabled is False
    np.testing.assert_allclose(np.concatenate(list(dataset)), POINTS,
                               rtol=1e-6)


def test_truncated_npy_is_a_clear_error_naming_the_file(tmp_path):
  path = tmp_path / 'p.npy'
  np.save(path, POINTS.astype(np.float32))
  path.write_bytes(path.read_bytes()[:-100])
  source = file_inputs.open_files(path)
  with (pytest.raises(ValueError, match=r"p\.npy' cannot be read \(.*\); the "
                                        r'file is truncated or damaged'),
        file_inputs.readable_errors()):
    for _ in source.dataset(batch_size=128):
      pass


def test_csv_header_is_detected_and_quotes_and_blank_lines_are_read(
    tmp_path):
  path = tmp_path / 'p.csv'
  path.write_text('"a", "b"\n\n1, "2.5"\n-3e1,inf\n')
  source = file_inputs.open_files(path)
  assert source.feature_names == ('a', 'b')
  np.testing.assert_array_equal(source.read_all(),
                                [[1, 2.5], [-30, np.inf]])
  headerless = file_inputs.open_files(path, header=False)
  with pytest.raises(ValueError, match=r"line 1, column 0: 'a' is not a "):
    headerless.read_all()


@pytest.mark.parametrize('boms', [1, 2], ids=['bom', 'converted_twice'])
@pytest.mark.parametrize('header', [None, False])
def test_a_csv_byte_order_mark_does_not_make_the_first_row_a_header(
    tmp_path, header, boms):
  # Spreadsheet programs open UTF-8 CSV files with a BOM (U+FEFF); a file
  # converted twice has two.
  path = tmp_path / 'p.csv'
  path.write_bytes(('\ufeff' * boms + '1,2,3\n4,5,6\n7,8,9\n').encode())
  source = file_inputs.open_files(path, header=header)
  assert source.feature_names is None
  expected = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
  np.testing.assert_array_equal(source.read_all(), expected)
  for batch_size in (1, 2):  # The first line alone, and with the next.
    np.testing.assert_array_equal(
        np.concatenate(list(source.dataset(batch_size))), expected)


def test_a_csv_byte_order_mark_is_not_part_of_the_first_header_name(
    tmp_path):
  path = tmp_path / 'p.csv'
  path.write_bytes('\ufeffx,y\n1,2\n3,4\n'.encode())
  source = file_inputs.open_files(path, columns=['x'])
  assert source.feature_names == ('x',)
  np.testing.assert_array_equal(source.read_all(), [[1], [3]])


def test_predict_and_initial_clusters_read_a_csv_with_a_byte_order_mark(
    trained, data_dir, tmp_path, capsys):
  model_dir, _ = trained
  path = tmp_path / 'p.csv'
  path.write_bytes(('\ufeff' + '\n'.join(
      ','.join(repr(float(v)) for v in row) for row in POINTS[:5])
                    ).encode())
  assert run_main('predict', f'--model_dir={model_dir}', path) == 0
  lines = capsys.readouterr().out.splitlines()
  api = KMeansClustering(_K, model_dir=str(model_dir))
  assert [int(line) for line in lines[1:]] == list(
      api.predict_cluster_index(lambda: POINTS[:5]))
  # --initial_clusters: five centers, not four.
  assert run_main('train', f'--model_dir={tmp_path / "model"}',
                  f'--initial_clusters={path}', '--steps=1', '--seed=0',
                  data_dir / 'points.npy') == 0
  assert centers_of(tmp_path / 'model').shape == (5, 3)


def test_a_csv_batch_of_blank_lines_is_skipped_not_an_empty_batch(tmp_path):
  # Batches of 2 lines: the second holds only blank lines.
  path = tmp_path / 'p.csv'
  path.write_text('1,2\n3,4\n\n  \n5,6\n')
  batches = [batch.numpy() for batch in
             file_inputs.open_files(path).dataset(batch_size=2)]
  assert [len(batch) for batch in batches] == [2, 1]
  np.testing.assert_array_equal(np.concatenate(batches),
                                [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize('content,name,message', [
    (None, 'p.txt', (r"'.*p\.txt' has an unknown extension; input files "
                     r'must end in \.npy, \.csv')),
    ('', 'p.csv', r"'.*p\.csv' is empty"),
    ('x,y\n', 'p.csv', r'has a header row but no data rows'),
    ('1,2\n3\n', 'p.csv', r'line 2 has 1 fields but the first row has 2'),
    ('x,y\n1,2\n', 'p.csv', None),
], ids=['unknown_extension', 'empty_csv', 'header_only', 'short_row',
        'bad_column'])
def test_csv_and_extension_errors(tmp_path, content, name, message):
  path = tmp_path / name
  path.write_text('1,2\n' if content is None else content)
  if message is None:
    with pytest.raises(ValueError, match=r'`columns` must be .*Received: '
                                         r"columns=\['z'\]"):
      file_inputs.open_files(path, columns=['z'])
    return
  with pytest.raises(ValueError, match=message):
    file_inputs.open_files(path).read_all()


@pytest.mark.parametrize('array,message', [
    (np.array([{'a': 1}], dtype=object), r'pickled object array'),
    (np.arange(5.0), r'shape \(5,\); the points must be a 2-D array'),
    (np.zeros((0, 3)), r'is empty'),
    (np.array([['a', 'b']]), r'must be integers or floats'),
], ids=['pickled', 'rank_1', 'no_rows', 'strings'])
def test_npy_errors(tmp_path, array, message):
  np.save(tmp_path / 'p.npy', array, allow_pickle=True)
  with pytest.raises(ValueError, match=message):
    file_inputs.open_files(tmp_path / 'p.npy')


def test_tfrecord_features_default_and_errors(tmp_path):
  path = write_tfrecord(tmp_path / 'p.tfrecord', POINTS)
  source = file_inputs.open_files(path)  # Numeric features by name.
  assert source.feature_names == ('xy[0]', 'xy[1]', 'z')
  np.testing.assert_array_equal(source.read_all(), POINTS)
  with pytest.raises(ValueError, match=r"`features` must name features of "
                                       r"the records.*'id', 'xy', 'z'"):
    file_inputs.open_files(path, features=['w'])
  with pytest.raises(ValueError, match=r"Feature 'id' .* holds bytes_list"):
    file_inputs.open_files(path, features=['id'])
  with pytest.raises(ValueError, match=r'gives width 3'):
    file_inputs.open_files(path, features=[('xy', 3)])
  empty = tmp_path / 'e.tfrecord'
  empty.write_bytes(b'')
  with pytest.raises(ValueError, match=r'is empty'):
    file_inputs.open_files(empty)
  with pytest.raises(ValueError, match=r'not a readable TFRecord file'):
    file_inputs.open_files(shutil.copy(tmp_path / 'p.tfrecord',
                                       tmp_path / 'bad.tfrecord.gz'))


def test_a_leading_tilde_is_expanded_in_every_path_flag_and_input(
    data_dir, tmp_path, monkeypatch):
  # A shell leaves ~ as it is in --flag=~/x and in quoted globs.
  home = tmp_path / 'home'
  home.mkdir()
  monkeypatch.setenv('HOME', str(home))
  np.save(home / 'points.npy', POINTS)
  np.save(home / 'init.npy', POINTS[:_K])
  assert run_main('train', '--model_dir=~/model', '--num_clusters=3',
                  '--initial_clusters=~/init.npy', '--steps=1',
                  '~/points.npy') == 0
  assert centers_of(home / 'model').shape == (_K, 3)
  assert run_main('predict', '--model_dir=~/model', '--output=~/p.npy',
                  '~/point*.npy') == 0
  assert np.load(home / 'p.npy').shape == (len(POINTS),)
  with pytest.raises(app.UsageError, match=(
      r'Received: --output=~/points\.npy, which is the input file')):
    run_main('predict', '--model_dir=~/model', '--output=~/points.npy',
             '~/points.npy')
  assert run_main('centers', '--model_dir=~/model', '--output=~/c.csv') == 0
  assert (home / 'c.csv').exists()
  assert run_main('export', '--model_dir=~/model',
                  '--export_dir_base=~/exports') == 0
  assert len(os.listdir(home / 'exports')) == 1
  assert not any(path.name == '~' for path in tmp_path.rglob('*'))
  assert not os.path.exists('~')
