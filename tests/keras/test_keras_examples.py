"""The Keras examples run as users run them, and print what is true.

(`--help` of every example, these too, is tested in
tests/integration/test_examples.py.)

(Named test_keras_examples.py: tests/integration/test_examples.py already
holds the basename test_examples, and pytest's default import mode needs
basenames unique across folders without __init__.py.)
"""

import importlib
import os
import pathlib
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import oracles

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _run(script, tmp_path, *flags):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TMPDIR=str(tmp_path),
             PYTHONPATH=os.pathsep.join(
                 [str(ROOT), os.environ.get('PYTHONPATH', '')]))
  return subprocess.run(
      [sys.executable, str(ROOT / 'examples' / script), *flags],
      capture_output=True, text=True, timeout=300, env=env, check=False,
      cwd=tmp_path)


def test_gradient_kmeans_reaches_the_posts_cost_and_lloyds_centers(
    tmp_path):
  cluster = importlib.import_module('sklearn.cluster')
  datasets = importlib.import_module('sklearn.datasets')
  importlib.import_module('matplotlib')
  png = tmp_path / 'gradient.png'
  result = _run('gradient_kmeans.py', tmp_path, f'--output={png}',
                '--dpi=50')
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  costs = [float(c) for c in re.findall(r'^step +\d+  cost ([\d.]+)$', out,
                                        re.MULTILINE)]
  assert len(costs) == 10  # Every 10 of 100 steps.
  assert all(b <= a * (1 + 1e-6) for a, b in zip(costs, costs[1:]))
  final = float(re.search(r'^final cost .*: ([\d.]+)$', out,
                          re.MULTILINE).group(1))
  lloyd = float(re.search(r"^Lloyd's .*: cost ([\d.]+) after", out,
                          re.MULTILINE).group(1))
  points, _ = datasets.make_blobs(500, random_state=1111)
  best = cluster.KMeans(3, n_init=10, random_state=0).fit(points).inertia_
  assert final == pytest.approx(940.45, abs=0.01)  # The post's cost.
  assert final == pytest.approx(best, rel=1e-4)
  assert lloyd == pytest.approx(final, abs=0.01)
  rows = re.findall(r'^ +\d+  \( *(\S+), +(\S+)\)  \( *(\S+), +(\S+)\)$',
                    out, re.MULTILINE)
  table = np.array(rows, np.float64)
  assert table.shape == (3, 4)
  # Both are Lloyd's fixed point: each prototype is its cluster's mean.
  for centers in (table[:, :2], table[:, 2:]):
    labels = oracles.distances(points, centers).argmin(1)
    means = np.stack([points[labels == j].mean(0) for j in range(3)])
    np.testing.assert_allclose(centers, means, atol=2e-3)
  data = png.read_bytes()
  assert data[:8] == PNG_SIGNATURE
  assert struct.unpack('>II', data[16:24]) == (300, 250)
  assert f'wrote {png} (300x250 pixels)' in out


def test_gradient_kmeans_with_the_posts_random_initialisation(tmp_path):
  importlib.import_module('sklearn')
  result = _run('gradient_kmeans.py', tmp_path, '--init=random', '--seed=3',
                '--steps=40', '--num_points=300')
  assert result.returncode == 0, result.stderr[-3000:]
  assert len(re.findall(r'^step ', result.stdout, re.MULTILINE)) == 4
  assert "Lloyd's algorithm from the same prototypes" in result.stdout


def test_digits_embedding_prints_both_accuracies_and_round_trips(tmp_path):
  importlib.import_module('sklearn')
  saved = tmp_path / 'classifier.keras'
  result = _run('digits_embedding.py', tmp_path, '--autoencoder_epochs=3',
                '--classifier_epochs=3', '--num_clusters=10',
                f'--output={saved}')
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  accuracies = [float(a) for a in re.findall(
      r'^test accuracy with(?:out)? the .*: ([\d.]+)$', out, re.MULTILINE)]
  assert len(accuracies) == 2
  assert all(0.1 < a <= 1 for a in accuracies)  # Better than chance.
  assert re.search(r'^k-means of the embeddings: k=10, \d+ steps', out,
                   re.MULTILINE)
  assert 'reloaded predictions identical: True' in out
  assert saved.exists()
