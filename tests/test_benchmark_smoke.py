"""Smoke test of benchmarks/benchmark.py on the tiny workload.

Checks that every backend runs and reports usable figures, and that
kmeans_estimator reaches scikit-learn Lloyd's inertia on separated blobs (a
correctness check). No timing is asserted.
"""

import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / (
    'benchmark.py')


def _load_benchmark():
  spec = importlib.util.spec_from_file_location('kmeans_benchmark', _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


benchmark = _load_benchmark()
HAVE_SKLEARN = benchmark.sklearn_available()


def _positive_finite(value):
  return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_make_blobs_is_deterministic_float32():
  workload = benchmark.WORKLOADS['tiny']
  points, centers = benchmark.make_blobs(workload, seed=3)
  again, _ = benchmark.make_blobs(workload, seed=3)
  other, _ = benchmark.make_blobs(workload, seed=4)
  assert points.dtype == np.float32 and points.shape == (500, 2)
  assert centers.shape == (5, 2)
  assert np.all((centers >= 0) & (centers < 500))
  np.testing.assert_array_equal(points, again)
  assert not np.array_equal(points, other)


def test_inertia_matches_brute_force_in_chunks(monkeypatch):
  rng = np.random.default_rng(0)
  points = rng.normal(size=(1000, 3)).astype(np.float32)
  centers = rng.normal(size=(7, 3))
  expected = ((points[:, None, :].astype(np.float64) - centers[None]) **
              2).sum(-1).min(axis=1).sum()
  monkeypatch.setattr(benchmark, 'CHUNK_ELEMENTS', 7 * 64)  # 16 chunks.
  np.testing.assert_allclose(benchmark.inertia(points, centers), expected,
                             rtol=1e-9)


def test_tiny_run_reports_every_backend(tmp_path):
  benchmark.run_benchmarks(workloads=['tiny'], max_iter=3, out_dir=tmp_path,
                           repeats=1, isolate=False, verbose=False)
  with open(tmp_path / 'benchmark.json') as f:
    report = json.load(f)
  assert (tmp_path / 'benchmark.md').read_text().startswith(
      '# kmeans_estimator benchmark')
  assert report['machine']['cpu'] and report['machine']['cpu_count'] >= 1
  results = {r['backend']: r for r in report['results']}
  assert set(results) == set(benchmark.BACKENDS)
  for backend, result in results.items():
    if backend in benchmark.SKLEARN_BACKENDS and not HAVE_SKLEARN:
      assert result['status'] == 'skipped'
      continue
    assert result['status'] == 'ok', (backend, result.get('message'))
    for key in ('s_per_iter', 'iter_total_s', 'fit_s', 'predict_s',
                'predict_points_per_s', 'inertia', 'peak_rss_mb',
                'iterations'):
      assert _positive_finite(result[key]), (backend, key, result[key])
    assert math.isfinite(result['init_s']) and result['init_s'] >= 0
    assert result['s_per_iter_vs_floor'] > 0
  if not HAVE_SKLEARN:
    pytest.skip('scikit-learn is not installed')
  reference = results['sklearn_lloyd']['inertia']
  for backend in ('kmeans_estimator', 'kmeans_core'):
    assert results[backend]['inertia'] == pytest.approx(reference, rel=0.1)
