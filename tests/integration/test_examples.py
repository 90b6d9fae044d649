"""The examples run as users run them, and print what is true.

Each example runs as a script in a subprocess, on small data. What it prints
is checked against an oracle computed here: its checkpoint read with
`tf.train.load_variable`, float64 numpy k-means from `oracles`, the
TensorBoard event files read here, and scikit-learn. Each PNG is checked to
be a whole PNG of the promised size. Every example answers `--help` with its
usage and exit status 0, before it imports TensorFlow or trains.
"""

import importlib
import itertools
import os
import pathlib
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import oracles

# Subprocesses or long runs: left out of the fast subset (-m 'not slow').
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
EXAMPLES = sorted(path.name for path in (ROOT / 'examples').glob('*.py'))

# Runs an example as `python examples/x.py` would (as __main__, argv as
# given), then says whether TensorFlow or kmeans_estimator was imported.
_RUN_AND_REPORT_IMPORTS = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
  runpy.run_path(sys.argv[0], run_name='__main__')
  status = 0
except SystemExit as exit:
  status = exit.code
heavy = sorted(m for m in ('tensorflow', 'kmeans_estimator')
               if m in sys.modules)
print('imported:', ','.join(heavy) or 'neither')
sys.exit(status)
"""


def _run_example(script, tmp_path, *flags):
  """Runs examples/`script` with `flags`; returns its stdout."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TMPDIR=str(tmp_path))
  result = subprocess.run(
      [sys.executable, str(ROOT / 'examples' / script), *flags],
      capture_output=True, text=True, timeout=300, env=env, check=False,
      cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def _check_png(path, width, height):
  """Asserts that `path` is a complete, non-blank PNG of width x height."""
  data = pathlib.Path(path).read_bytes()
  assert data[:8] == PNG_SIGNATURE
  assert data[12:16] == b'IHDR'
  assert struct.unpack('>II', data[16:24]) == (width, height)
  assert data[-8:-4] == b'IEND'
  image = importlib.import_module('matplotlib.image').imread(path)
  assert image.shape[:2] == (height, width)
  assert image.std() > 0  # Something was drawn.


def _nearest(points, centers):
  return oracles.distances(points, centers).argmin(axis=1)


def test_legacy_documentation_example_runs_with_only_the_import_changed(
    tmp_path):
  out = _run_example('quickstart.py', tmp_path)
  scores = [float(s) for s in re.findall(r'^score: (\S+)$', out, re.MULTILINE)]
  assert len(scores) == 10
  # Full-batch Lloyd: the score never goes up from one round to the next.
  assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(scores))
  assert len(re.findall(r'^delta:', out, re.MULTILINE)) == 9
  assert 'cluster centers:' in out
  assignments = re.findall(r'^point: .* is in cluster (\d) centered at', out,
                           re.MULTILINE)
  assert len(assignments) == 100
  assert set(assignments) <= {'0', '1', '2', '3', '4'}
  # The example uses the legacy input_fn unchanged.
  source = (ROOT / 'examples' / 'quickstart.py').read_text()
  assert 'tf.compat.v1.train.limit_epochs' in source
  assert 'from kmeans_estimator import KMeansClustering as KMeans' in source


def test_digits_prints_the_true_purity_of_its_clusters(tmp_path):
  datasets = importlib.import_module('sklearn.datasets')
  cluster = importlib.import_module('sklearn.cluster')
  importlib.import_module('matplotlib')
  model_dir, png = tmp_path / 'model', tmp_path / 'centers.png'
  # The default flags: the README quotes the purity they give.
  out = _run_example('digits.py', tmp_path, f'--model_dir={model_dir}',
                     f'--output={png}', '--dpi=50')

  digits = datasets.load_digits()
  points, labels = digits.data / 16.0, digits.target
  centers = tf.train.load_variable(str(model_dir), 'clusters')
  assert centers.shape == (10, 64)
  index = _nearest(points, centers)
  # The oracle: each cluster's digits counted here from the saved centers.
  rows = re.findall(r'^ +(\d+) +(\d+)  ((?:\d \(\d+\) *)+) +([\d.]+)$', out,
                    re.MULTILINE)
  assert [int(row[0]) for row in rows] == list(range(10))
  for cluster_id, size, top, purity in rows:
    counts = np.bincount(labels[index == int(cluster_id)], minlength=10)
    assert int(size) == counts.sum()
    printed = [(int(d), int(c)) for d, c in re.findall(r'(\d) \((\d+)\)', top)]
    order = np.argsort(-counts, kind='stable')[:3]
    assert printed == [(d, counts[d]) for d in order if counts[d]]
    assert float(purity) == pytest.approx(counts.max() / counts.sum(),
                                          abs=5e-4)
  majority = sum(np.bincount(labels[index == c]).max()
                 for c in range(10) if np.any(index == c))
  overall = float(re.search(r'^overall purity: ([\d.]+) \((\d+) of 1797',
                            out, re.MULTILINE).group(1))
  assert overall == pytest.approx(majority / len(labels), abs=5e-5)
  # Known ground: the best of 10 k-means++ restarts finds about four digits
  # in five, the figure the docs quote.
  assert overall == pytest.approx(0.79, abs=0.01)
  # Converged: scikit-learn's Lloyd started at these centers stays there.
  sklearn_kmeans = cluster.KMeans(10, init=centers.astype(np.float64),
                                  n_init=1, algorithm='lloyd').fit(points)
  np.testing.assert_allclose(sklearn_kmeans.cluster_centers_, centers,
                             atol=1e-4)
  inertia = float(re.search(r'inertia ([\d.]+)\.$', out, re.MULTILINE).group(1))
  assert inertia == pytest.approx(sklearn_kmeans.inertia_, rel=1e-5)
  _check_png(png, 400, 200)
  assert f'wrote {png} (400x200 pixels)' in out


def test_blobs_plot_draws_the_centers_it_found(tmp_path):
  importlib.import_module('matplotlib')
  model_dir, png = tmp_path / 'model', tmp_path / 'blobs.png'
  saved = tmp_path / 'blobs.npz'
  out = _run_example('blobs_plot.py', tmp_path, f'--model_dir={model_dir}',
                     f'--output={png}', f'--points_output={saved}',
                     '--num_points=300', '--num_clusters=3', '--dpi=40')

  data = np.load(saved)
  points, centers = data['points'], data['centers']
  assert points.shape == (300, 2)
  np.testing.assert_array_equal(
      centers, tf.train.load_variable(str(model_dir), 'clusters'))
  index = _nearest(points, centers)
  np.testing.assert_array_equal(data['cluster_index'], index)
  # Converged: every center is the mean of its points (a Lloyd fixed point).
  for j, center in enumerate(centers):
    np.testing.assert_allclose(points[index == j].mean(axis=0), center,
                               atol=1e-4)
  # Each true blob center is found.
  gaps = np.linalg.norm(data['true_centers'][:, None] - centers[None], axis=2)
  assert gaps.min(axis=1).max() < 0.5

  rows = re.findall(r'^ +(\d+)  \( *(\S+), +(\S+)\) +(\d+)  (\S+)$', out,
                    re.MULTILINE)
  assert len(rows) == 3
  for j, x, y, size, gap in rows:
    j = int(j)
    np.testing.assert_allclose([float(x), float(y)], centers[j], atol=5e-4)
    assert int(size) == np.sum(index == j)
    assert float(gap) == pytest.approx(gaps[:, j].min(), abs=5e-4)
  inertia = float(re.search(r'inertia ([\d.]+)\.$', out, re.MULTILINE).group(1))
  assert inertia == pytest.approx(oracles.inertia(points, centers), rel=1e-5)
  _check_png(png, 320, 240)
  assert f'wrote {png} (320x240 pixels)' in out


def _read_shards(data_dir):
  """The points in the TFRecord shards, read here without the example."""
  rows = []
  for path in sorted(pathlib.Path(data_dir).glob('*.tfrecord')):
    for record in tf.data.TFRecordDataset(str(path)):
      example = tf.train.Example.FromString(record.numpy())
      rows.append(example.features.feature['x'].float_list.value)
  return np.asarray(rows, np.float32)


def test_streaming_equals_in_memory_and_exact_lloyd(tmp_path):
  model_dir, data_dir = tmp_path / 'models', tmp_path / 'shards'
  steps = 6
  out = _run_example('streaming.py', tmp_path, f'--model_dir={model_dir}',
                     f'--data_dir={data_dir}', '--num_points=2000',
                     '--num_shards=3', '--batch_size=500', f'--steps={steps}')

  assert len(list(data_dir.glob('*.tfrecord'))) == 3
  points = _read_shards(data_dir)
  assert points.shape == (2000, 8)
  assert 'read back as 4 batches of at most 500' in out
  initial = np.load(model_dir / 'initial_centers.npy')
  expected_centers, expected_losses = oracles.lloyd(points, initial, steps)

  rows = re.findall(r'^ +(\d+) +([\d.]+) +([\d.]+) +\S+$', out, re.MULTILINE)
  assert [int(row[0]) for row in rows] == list(range(1, steps + 1))
  for column in (1, 2):  # streamed, in memory
    np.testing.assert_allclose([float(row[column]) for row in rows],
                               expected_losses, rtol=1e-5)
  centers = {}
  for name in ('streamed', 'in_memory'):
    centers[name] = tf.train.load_variable(str(model_dir / name), 'clusters')
    assert tf.train.load_variable(str(model_dir / name), 'global_step') == (
        steps)
    np.testing.assert_allclose(centers[name], expected_centers, atol=1e-4)
  np.testing.assert_allclose(centers['streamed'], centers['in_memory'],
                             rtol=1e-5, atol=1e-5)
  difference = float(re.search(
      r'^max \|streamed center - in-memory center\|: (\S+) ', out,
      re.MULTILINE).group(1))
  assert difference == pytest.approx(
      np.abs(centers['streamed'] - centers['in_memory']).max(), rel=1e-2,
      abs=1e-12)
  assert 'points in the same cluster: 2000 of 2000' in out
  assert 'The streamed and in-memory centers are equal' in out


def test_serve_checks_every_signature_of_the_saved_model_against_numpy(
    tmp_path):
  output = _run_example('serve.py', tmp_path,
                        f'--export_dir_base={tmp_path / "exports"}',
                        '--num_points=120', '--top_k=2')
  exports = [p for p in (tmp_path / 'exports').iterdir() if p.is_dir()]
  assert len(exports) == 1 and exports[0].name.isdigit()
  assert f'Exported to {exports[0]}' in output
  # The signatures are the SavedModel's own, listed here without the example.
  served = tf.saved_model.load(str(exports[0]))
  signatures = sorted(served.signatures)
  assert signatures == ['all_distances', 'cluster_centers', 'cluster_index',
                        'serving_default', 'top_k', 'transform']
  assert f'Signatures: {", ".join(signatures)}' in output
  assert 'Metadata: distance_metric=squared_euclidean, k=4, d=2, ' \
      'global_step=10' in output
  checks = re.findall(r'^(OK  |FAIL) (.+)$', output, re.MULTILINE)
  assert all(status == 'OK  ' for status, _ in checks), checks
  checked = [what.split(' ')[0] for _, what in checks[1:]]
  assert checks[0][1] == 'serving process imported only TensorFlow'
  assert checked == signatures
  # The printed assignments are the nearest exported centers (numpy).
  queries = np.load(tmp_path / 'exports' / 'queries.npy')
  printed = re.search(r'^serving_default: \[(.*)\]$', output, re.MULTILINE)
  want = oracles.distances(queries, served.clusters.numpy()).argmin(axis=1)
  assert [int(i) for i in printed.group(1).split(',')] == want.tolist()


def test_multi_worker_example_on_one_machine(tmp_path):
  output = _run_example('multi_worker.py', tmp_path, '--local',
                        f'--model_dir={tmp_path}', '--steps=3')
  assert 'OK: two workers give the centers of one process.' in output
  figures = dict(re.findall(r'^(two workers|one process) +global_step=3 '
                            r'inertia=([0-9.]+)$', output, re.MULTILINE))
  assert set(figures) == {'two workers', 'one process'}
  np.testing.assert_allclose(float(figures['two workers']),
                             float(figures['one process']), rtol=1e-5)
  # The chief's checkpoint is a plain one: numpy reproduces its inertia.
  centers = tf.train.load_variable(str(tmp_path / 'distributed'), 'clusters')
  rng = np.random.default_rng(0)
  true_centers = rng.uniform(0, 100, size=(5, 4))
  points = (true_centers[rng.integers(5, size=2000)] +
            rng.normal(0, 5, size=(2000, 4))).astype(np.float32)
  np.testing.assert_allclose(oracles.inertia(points, centers),
                             float(figures['two workers']), rtol=1e-4)


@pytest.mark.parametrize('script', EXAMPLES)
@pytest.mark.parametrize('help_flag', ['--help', '-h'])
def test_example_help_prints_usage_and_exits_0_without_training(
    script, help_flag, tmp_path):
  model_dir = tmp_path / 'model'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TMPDIR=str(tmp_path))
  result = subprocess.run(
      [sys.executable, '-c', _RUN_AND_REPORT_IMPORTS,
       str(ROOT / 'examples' / script), help_flag,
       f'--model_dir={model_dir}'],
      capture_output=True, text=True, timeout=120, env=env, check=False,
      cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  # The usage is the example's docstring (and its flags, if it has any).
  first_line = (ROOT / 'examples' / script).read_text().split(
      '"""')[1].splitlines()[0]
  assert result.stdout.startswith(first_line)
  assert f'python examples/{script}' in result.stdout
  # Answered before anything heavy was imported; nothing trained or written.
  assert result.stdout.rstrip().endswith('imported: neither')
  assert list(tmp_path.iterdir()) == []


def _read_event_scalars(model_dir):
  """{tag: {step: value}} of every event file in model_dir, read here with
  `summary_iterator` (the example reads them another way)."""
  found = {}
  for path in sorted(pathlib.Path(model_dir).glob('events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        found.setdefault(value.tag, {})[event.step] = float(
            tf.make_ndarray(value.tensor).ravel()[0])
  return found


def test_convergence_plot_draws_the_losses_that_training_wrote(tmp_path):
  importlib.import_module('matplotlib')
  model_dir, png = tmp_path / 'runs', tmp_path / 'convergence.png'
  saved = tmp_path / 'convergence.npz'
  n, b, passes = 600, 60, 2
  out = _run_example('convergence_plot.py', tmp_path,
                     f'--model_dir={model_dir}', f'--output={png}',
                     f'--data_output={saved}', f'--num_points={n}',
                     '--num_features=3', '--num_clusters=5',
                     f'--batch_size={b}', '--steps=10',
                     f'--mini_batch_passes={passes}', '--dpi=40')
  data = np.load(saved)
  points = data['points']
  assert points.shape == (n, 3)
  rows = {row[0]: row[1:] for row in re.findall(
      r'^(\w+) +(\d+)  (\w+) +([\d.]+) +([\d.]+)$', out, re.MULTILINE)}
  names = ['lloyd_random', 'lloyd_kmeans_plus_plus',
           'hamerly_kmeans_plus_plus', 'mini_batch']
  assert sorted(rows) == sorted(names)
  for name in names:
    scalars = _read_event_scalars(model_dir / name)
    losses = scalars['loss']
    global_step, stopped_by, last_loss, inertia = rows[name]
    global_step = int(global_step)
    # Every step was summarised, and the plotted data are those losses,
    # which are the ones the hook saw during training.
    assert sorted(losses) == list(range(1, global_step + 1))
    np.testing.assert_array_equal(data[f'{name}_steps'], sorted(losses))
    np.testing.assert_allclose(data[f'{name}_losses'],
                               [losses[s] for s in sorted(losses)],
                               rtol=1e-7)
    np.testing.assert_allclose(data[f'{name}_hook_losses'],
                               data[f'{name}_losses'], rtol=1e-6)
    # The last step's loss is the one the run's TrainingSummary reports.
    assert scalars['training_summary/loss'] == {
        global_step: pytest.approx(losses[global_step], rel=1e-6)}
    assert float(last_loss) == pytest.approx(losses[global_step], abs=1e-3)
    # evaluate()'s inertia is numpy's for the saved centers.
    centers = tf.train.load_variable(str(model_dir / name), 'clusters')
    assert float(inertia) == pytest.approx(oracles.inertia(points, centers),
                                           rel=1e-5)
    if name == 'mini_batch':
      assert global_step == passes * n // b and stopped_by == 'step_limit'
    else:
      # Full-batch Lloyd never raises the loss; the next step's loss is the
      # inertia of the saved centers.
      values = data[f'{name}_losses']
      assert np.all(np.diff(values) <= 1e-5 * values[:-1])
      assert float(inertia) <= values[-1] * (1 + 1e-5)
  # Hamerly is exact: the same losses as Lloyd from the same centers.
  np.testing.assert_allclose(data['hamerly_kmeans_plus_plus_losses'],
                             data['lloyd_kmeans_plus_plus_losses'],
                             rtol=1e-5)
  assert 'The losses read from the TensorBoard summaries equal those' in out
  _check_png(png, 320, 240)
  assert f'wrote {png} (320x240 pixels)' in out
