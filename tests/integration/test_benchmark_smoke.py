"""Smoke test of benchmarks/benchmark.py on the tiny workload.

Checks that every backend runs and reports usable figures, and that
kmeans_estimator reaches scikit-learn Lloyd's inertia on separated blobs (a
correctness check); that the streamed workload's file and tf.data pipeline
give back exactly the array, and that a tiny streamed run reports the
streamed-vs-in-memory figures; that the TF-IDF workload's matrix is
TfidfTransformer's weights of Zipf-distributed counts, and that on a tiny
one kmeans_estimator (CSR, SparseTensor, cosine) reaches the objective of
scikit-learn's Lloyd (of a scipy spherical k-means under cosine) from the
same centers. No timing is asserted.
"""

import dataclasses
import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import pytest

# Subprocesses or long runs: left out of the fast subset (-m 'not slow').
pytestmark = pytest.mark.slow

_PATH = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks' / (
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
  # Row blocks (as read from a file) give the same sum.
  blocks = (points[start:start + 300] for start in range(0, 1000, 300))
  np.testing.assert_allclose(benchmark.inertia(blocks, centers), expected,
                             rtol=1e-9)


@pytest.mark.skipif(not pathlib.Path('/proc/self/status').exists(),
                    reason='the peak comes from getrusage without /proc')
def test_a_workers_peak_rss_is_its_own_not_its_parents():
  import subprocess  # pylint: disable=g-import-not-at-top
  held = np.ones(300 * 2**20 // 8)  # The parent holds 300 MB.
  code = ('import importlib.util, sys; spec = importlib.util.'
          f'spec_from_file_location("b", {str(_PATH)!r}); '
          'b = importlib.util.module_from_spec(spec); '
          'spec.loader.exec_module(b); print(b._peak_rss_mb())')
  child = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True)
  assert held.sum() > 0
  assert float(child.stdout.split()[-1]) < 200


_TINY_STREAM = dataclasses.replace(benchmark.WORKLOADS['stream'], d=3, k=4,
                                   n=1000)


@pytest.mark.parametrize('batch_size, sizes', [
    (300, [300, 300, 300, 100]),  # A last, shorter batch.
    (250, [250] * 4),             # Batches that divide n.
    (5000, [1000]),               # One batch larger than the data.
])
def test_stream_dataset_gives_back_the_array(tmp_path, batch_size, sizes):
  points, centers = benchmark.make_blobs(_TINY_STREAM, seed=1)
  path = str(tmp_path / 'points.npy')
  written = benchmark.write_blobs(_TINY_STREAM, 1, False, path)
  np.testing.assert_array_equal(written, centers)
  np.testing.assert_array_equal(benchmark.read_blobs(path, 3), points)
  batches = [b.numpy() for b in benchmark.stream_dataset(path, 3, batch_size)]
  assert [len(b) for b in batches] == sizes
  assert all(b.dtype == np.float32 and b.shape[1] == 3 for b in batches)
  np.testing.assert_array_equal(np.concatenate(batches), points)
  np.testing.assert_array_equal(
      np.concatenate(list(benchmark._file_blocks(path, 3, 333))), points)


def test_stream_dataset_rejects_a_file_of_another_width(tmp_path):
  path = str(tmp_path / 'points.npy')
  np.save(path, np.zeros((10, 4), np.float32))
  with pytest.raises(ValueError, match='has 4 columns, not 3'):
    benchmark.stream_dataset(path, 3, 2)
  with pytest.raises(ValueError, match=r'shape \(10, 4\), not \(n, 3\)'):
    benchmark.read_blobs(path, 3)


def test_tiny_streamed_run_compares_with_in_memory(tmp_path, monkeypatch):
  monkeypatch.setitem(benchmark.WORKLOADS, 'stream', _TINY_STREAM)
  backends = ['kmeans_estimator', benchmark.IN_MEMORY, 'kmeans_core',
              'gemm_floor']
  report = benchmark.run_benchmarks(
      workloads=['stream'], backends=backends, max_iter=3, out_dir=tmp_path,
      repeats=1, isolate=False, verbose=False, stream_batch=300)
  results = {r['backend']: r for r in report['results']}
  for backend in backends:
    assert results[backend]['status'] == 'ok', (
        backend, results[backend].get('message'))
    assert results[backend]['n'] == 1000
  assert results['kmeans_estimator']['streamed_input']
  assert results['kmeans_core']['streamed_input']
  assert not results[benchmark.IN_MEMORY]['streamed_input']
  assert not results['gemm_floor']['streamed_input']
  for backend in ('kmeans_estimator', 'kmeans_core'):
    assert results[backend]['steady_vs_in_memory'] == pytest.approx(
        results[backend]['s_per_iter_steady'] /
        results[benchmark.IN_MEMORY]['s_per_iter_steady'])
    # Separated blobs: both reach the same clustering.
    assert results[backend]['inertia'] == pytest.approx(
        results[benchmark.IN_MEMORY]['inertia'], rel=0.1)
  assert 'the in-memory one' in report['markdown']
  # The same comparison timed in turn in the streamed backend's process.
  streamed = results['kmeans_estimator']
  assert streamed['rounds_here'] == 2
  assert streamed['stream_here_s'] > 0 and streamed['in_memory_here_s'] > 0
  assert streamed['stream_vs_in_memory_here'] == pytest.approx(
      streamed['stream_here_s'] / streamed['in_memory_here_s'])
  assert 'stream_here_s' not in results['kmeans_core']
  assert (f'{streamed["stream_vs_in_memory_here"]:.2f}x'
          in report['markdown'])


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
    if (backend in benchmark.SKLEARN_BACKENDS and not HAVE_SKLEARN) or (
        backend == benchmark.IN_MEMORY):  # tiny is in memory already.
      assert result['status'] == 'skipped'
      continue
    assert result['status'] == 'ok', (backend, result.get('message'))
    for key in ('s_per_iter', 'iter_total_s', 'fit_s', 'predict_s',
                'predict_points_per_s', 'inertia', 'peak_rss_mb',
                'iterations'):
      assert _positive_finite(result[key]), (backend, key, result[key])
    assert math.isfinite(result['init_s']) and result['init_s'] >= 0
    assert result['s_per_iter_vs_floor'] > 0
    if backend.startswith('kmeans_estimator'):  # Measured against the floor.
      for key in ('predict_vs_floor_interleaved',
                  'predict_cluster_index_vs_floor_interleaved'):
        assert _positive_finite(result[key]), (backend, key, result[key])
  assert 'floor / predict s (per point)' in (tmp_path / 'benchmark.md'
                                             ).read_text()
  # Lloyd steps and floor passes timed in turn, for the Lloyd backend only.
  lloyd = results['kmeans_estimator']
  assert _positive_finite(lloyd['step_interleaved_s'])
  assert _positive_finite(lloyd['floor_interleaved_s'])
  assert lloyd['step_vs_floor_interleaved'] == pytest.approx(
      lloyd['step_interleaved_s'] / lloyd['floor_interleaved_s'])
  assert 'step_interleaved_s' not in results['kmeans_estimator_hamerly']
  assert (f'(in turn {benchmark._fmt(lloyd["step_vs_floor_interleaved"])})'
          in (tmp_path / 'benchmark.md').read_text())
  assert HAVE_SKLEARN, 'scikit-learn is in the test extra'
  reference = results['sklearn_lloyd']['inertia']
  for backend in ('kmeans_estimator', 'kmeans_core'):
    assert results[backend]['inertia'] == pytest.approx(reference, rel=0.1)


def test_the_device_column_states_a_gpus_name_and_tf32(monkeypatch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  experimental = tf.config.experimental
  monkeypatch.setattr(tf.config, 'list_physical_devices',
                      lambda kind=None: ['a GPU'] if kind == 'GPU' else [])
  monkeypatch.setattr(experimental, 'get_device_details',
                      lambda device: {'device_name': 'NVIDIA H100'})
  for enabled, stated in ((True, 'on'), (False, 'off')):
    monkeypatch.setattr(experimental, 'tensor_float_32_execution_enabled',
                        lambda enabled=enabled: enabled)
    assert benchmark._tf_device() == f'GPU (NVIDIA H100), TF32 {stated}'
  monkeypatch.setattr(tf.config, 'list_physical_devices', lambda kind=None: [])
  assert benchmark._tf_device() == 'CPU'


def test_tf32_setting_is_applied_and_stated(tmp_path, monkeypatch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  applied = []
  monkeypatch.setattr(tf.config.experimental,
                      'enable_tensor_float_32_execution', applied.append)
  report = benchmark.run_benchmarks(
      workloads=['tiny'], backends=['gemm_floor'], max_iter=2, out_dir=None,
      repeats=1, isolate=False, verbose=False, tf32=False)
  assert report['results'][0]['status'] == 'ok'
  assert applied == [False]
  assert 'tf32=off (GPU only)' in report['markdown']
  applied.clear()
  report = benchmark.run_benchmarks(
      workloads=['tiny'], backends=['gemm_floor'], max_iter=2, out_dir=None,
      repeats=1, isolate=False, verbose=False)
  assert applied == []  # TensorFlow's default is left alone.
  assert 'tf32=default (GPU only)' in report['markdown']
  with pytest.raises(ValueError, match='`tf32` must be True, False or None'):
    benchmark.run_benchmarks(workloads=['tiny'], backends=['gemm_floor'],
                             out_dir=None, verbose=False, tf32='off')


def test_call_memory_reports_each_calls_peak_rss(tmp_path):
  # In this process (isolate=False), tiny: the figures exist and are
  # finite; whether they stay flat in n is what a real run shows.
  calls = ['predict_cluster_index', 'evaluate', 'transform',
           'train_hamerly']
  report = benchmark.call_memory(points=[300, 600], calls=calls, d=3, k=4,
                                 out_dir=tmp_path, isolate=False,
                                 verbose=False)
  results = report['results']
  assert [(r['n'], r['call']) for r in results] == [
      (n, call) for n in (300, 600) for call in calls]
  for result in results:
    assert result['status'] == 'ok', result.get('message')
    assert math.isfinite(result['growth_mb']) and result['growth_mb'] >= 0
    assert result['peak_mb'] >= result['rss_before_mb'] > 0
    assert result['bytes_per_point'] == pytest.approx(
        result['growth_mb'] * 2**20 / result['n'])
  markdown = (tmp_path / 'call_memory.md').read_text()
  assert markdown.startswith('# kmeans_estimator peak RSS per call')
  assert '| call | n=300 | n=600 |' in markdown
  for call in calls:
    assert f'| {call} |' in markdown
  with open(tmp_path / 'call_memory.json') as f:
    assert len(json.load(f)['results']) == 8
  with pytest.raises(ValueError, match='`calls` must be among'):
    benchmark.call_memory(points=[10], calls=['fit'], out_dir=None,
                          verbose=False)


# ------------------------------------------------------------------ latency
_LATENCY_LABELS = ('first fit, fresh process', 'second estimator\'s fit',
                   'choose-k loop, k=2..3 (2 fits)',
                   'predict_cluster_index, new estimator, 500 points',
                   'train(x, steps=5), per step')

# A stand-in for a TensorFlow 2.15 interpreter: checks what
# run_legacy_latency gives it and prints legacy_latency.py's JSON.
_FAKE_LEGACY = '''#!{python}
import json, os, sys
import numpy as np
script, config = sys.argv[1], json.loads(sys.argv[2])
assert script.endswith('legacy_latency.py'), script
assert 'PYTHONPATH' not in os.environ
points = np.load(config['data'])
assert points.dtype == np.float32 and points.shape == (500, 2), points.shape
assert config['k'] == 5 and config['choose_k'] == [2, 3], config
print('TensorFlow logs go to stderr', file=sys.stderr)
print(json.dumps({{
    'tensorflow': '2.15.1', 'numpy': '1.26.4', 'python': '3.11.2',
    'first_fit_s': 0.5, 'second_fit_s': 0.25, 'choose_k_s': 2.0,
    'predict_s': 0.1, 'times': {{}},
    'per_step_s': 0.0004 if config['long_steps'] else None}}))
'''


def _fake_interpreter(tmp_path, text, name='python'):
  path = tmp_path / name
  path.write_text(text)
  path.chmod(0o755)
  return str(path)


def test_tiny_latency_run_reports_every_row_beside_sklearn_and_legacy(
    tmp_path):
  legacy_python = _fake_interpreter(
      tmp_path, _FAKE_LEGACY.format(python=sys.executable))
  report = benchmark.latency(
      sizes=['tiny'], steps=3, long_steps=5, choose_k=(2, 3), repeats=1,
      legacy_python=legacy_python, out_dir=tmp_path / 'out', verbose=False)
  for backend, result in report['results']['tiny'].items():
    if backend == 'sklearn' and not HAVE_SKLEARN:
      assert result is None
      continue
    assert result['status'] == 'ok', (backend, result.get('message'))
  rows = report['rows']
  assert [r['measurement'] for r in rows] == list(
      benchmark.LATENCY_MEASUREMENTS)
  for row in rows:
    assert _positive_finite(row['ours_s']), row
    assert row['vs_legacy'] == pytest.approx(row['ours_s'] /
                                             row['legacy_s']), row
    if HAVE_SKLEARN:
      assert row['vs_sklearn'] == pytest.approx(row['ours_s'] /
                                                row['sklearn_s']), row
    assert row['target'] is not None and isinstance(row['met'], bool), row
  markdown = (tmp_path / 'out' / 'latency.md').read_text()
  assert markdown == report['markdown'] + '\n'
  assert markdown.startswith('# kmeans_estimator latency')
  assert 'TensorFlow 2.15.1, numpy 1.26.4' in markdown
  table = [line for line in markdown.splitlines()
           if line.startswith('| 500 x 2, k=5 |')]
  assert len(table) == len(_LATENCY_LABELS)
  for line, label, row in zip(table, _LATENCY_LABELS, rows):
    cells = [cell.strip() for cell in line.strip('|').split('|')]
    assert cells[1].startswith(label)
    assert float(cells[6]) == pytest.approx(row['vs_legacy'], rel=6e-3)
    if HAVE_SKLEARN:
      assert float(cells[4]) == pytest.approx(row['vs_sklearn'], rel=6e-3)
    assert cells[7] == row['target'] and cells[8] in ('yes', 'no')
  with open(tmp_path / 'out' / 'latency.json') as f:
    saved = json.load(f)
  assert saved['rows'] == json.loads(json.dumps(rows))
  # Only the per-step size measures the long train call.
  assert saved['results']['tiny']['kmeans_estimator'][
      'per_step_iterations'][0] == 5


def _synthetic_latency_report(legacy):
  """A latency report from given figures (no process run)."""
  figures = {
      'tiny': {'first_fit_s': 1.0, 'second_fit_s': 0.5, 'choose_k_s': 2.0,
               'predict_s': 0.01, 'per_step_s': 1e-4},
      'small': {'first_fit_s': 1.0, 'second_fit_s': 2.0, 'choose_k_s': 0.25,
                'predict_s': 0.01, 'per_step_s': None},
  }
  sklearn = {'first_fit_s': 0.1, 'second_fit_s': 0.1, 'choose_k_s': 0.1,
             'predict_s': 0.001, 'per_step_s': 1e-4, 'status': 'ok'}
  results = {size: {'kmeans_estimator': dict(ours, status='ok'),
                    'sklearn': dict(sklearn, per_step_s=(
                        sklearn['per_step_s'] if size == 'tiny' else None)),
                    'legacy': legacy}
             for size, ours in figures.items()}
  config = {'sizes': ['tiny', 'small'], 'steps': 20, 'long_steps': 1000,
            'choose_k': list(range(2, 11)), 'predict_points': 500,
            'repeats': 3, 'seed': 0, 'kmeans_plus_plus_num_retries': None,
            'legacy_python': None if legacy is None else 'legacy/python',
            'sklearn_threads': None}
  report = {'machine': benchmark.machine_description(), 'config': config,
            'date': 'today', 'total_wall_s': 1.0, 'results': results,
            'rows': benchmark.latency_rows(config['sizes'], results)}
  report['markdown'] = benchmark.latency_markdown(report)
  return report


def test_latency_targets_are_reported_met_or_not():
  report = _synthetic_latency_report(legacy=None)
  met = {(r['size'], r['measurement']): (r['target'], r['met'])
         for r in report['rows']}
  assert met == {
      ('tiny', 'first_fit'): ('<= legacy', None),
      ('tiny', 'second_fit'): ('<= 10x sklearn', True),    # 5x
      ('tiny', 'choose_k'): ('<= 15x sklearn', False),     # 20x
      ('tiny', 'predict'): ('<= 50x sklearn', True),       # 10x
      ('tiny', 'per_step'): ('<= 0.2 ms/step', True),      # 0.1 ms
      ('small', 'first_fit'): ('<= legacy', None),
      ('small', 'second_fit'): ('<= 10x sklearn', False),  # 20x
      ('small', 'choose_k'): ('<= 3x sklearn', True),      # 2.5x
      ('small', 'predict'): ('<= 50x sklearn', True),
  }
  markdown = report['markdown']
  assert '- legacy: not run (pass --legacy_python)' in markdown
  assert ('| 500 x 2, k=5 | first fit, fresh process (import excluded) '
          '| 1 s | 0.1 s | 10 | not run | - | <= legacy | legacy not run |'
          in markdown)
  assert ('| 10,000 x 20, k=20 | choose-k loop, k=2..10 (9 fits) | 0.25 s '
          '| 0.1 s | 2.5 | not run | - | <= 3x sklearn | yes |' in markdown)
  assert ('| 500 x 2, k=5 | train(x, steps=1000), per step | 0.1 ms '
          '| 0.1 ms | 1 | not run | - | <= 0.2 ms/step | yes |' in markdown)
  # A legacy run that failed leaves its column empty and says why.
  failed = _synthetic_latency_report(
      legacy={'status': 'error', 'message': 'no tensorflow here'})
  assert all(r['legacy_s'] is None and r['vs_legacy'] is None
             for r in failed['rows'])
  assert '- legacy on tiny: error: no tensorflow here' in failed['markdown']
  assert ('| 500 x 2, k=5 | first fit, fresh process (import excluded) '
          '| 1 s | 0.1 s | 10 | - | - | <= legacy | not measured |'
          in failed['markdown'])


@pytest.mark.parametrize('script, message', [
    ('import sys\nsys.exit("no tf.compat.v1.estimator")', 'exited with 1'),
    ('print("not json")', 'printed no latency JSON'),
    ('print(\'{"first_fit_s": 1.0}\')', "KeyError: 'second_fit_s'"),
    ('print(\'{"first_fit_s": "1", "second_fit_s": 1, "choose_k_s": 1, '
     '"predict_s": 1, "per_step_s": null}\')', "first_fit_s is '1'"),
])
def test_a_failing_legacy_interpreter_is_reported_not_raised(
    tmp_path, script, message):
  python = _fake_interpreter(tmp_path, f'#!{sys.executable}\n{script}\n')
  config = {'steps': 2, 'long_steps': 0, 'choose_k': [2], 'repeats': 1,
            'predict_points': 10, 'seed': 0,
            'kmeans_plus_plus_num_retries': None}
  result = benchmark.run_legacy_latency(python, 'tiny', config, str(tmp_path))
  assert result['status'] == 'error' and message in result['message']
  missing = benchmark.run_legacy_latency(str(tmp_path / 'missing'), 'tiny',
                                         config, str(tmp_path))
  assert missing['status'] == 'error'
  assert missing['message'].startswith('cannot run')


def test_latency_rejects_bad_settings_before_running_anything():
  with pytest.raises(ValueError, match=r'`sizes` must be among \['):
    benchmark.latency(sizes=['stream'], out_dir=None, verbose=False)
  with pytest.raises(ValueError, match='`steps` must be an integer >= 1'):
    benchmark.latency(steps=0, out_dir=None, verbose=False)
  with pytest.raises(ValueError, match='`choose_k` must be positive'):
    benchmark.latency(choose_k=[], out_dir=None, verbose=False)
  with pytest.raises(ValueError, match='`sklearn_threads` must be an integer'):
    benchmark.latency(sklearn_threads=0, out_dir=None, verbose=False)


_TINY_TFIDF = benchmark.TfidfWorkload(n=2000, d=5000, k=10, density=0.01)


def test_tfidf_matrix_is_deterministic_zipf_and_tfidf_weighted():
  counts = benchmark.tfidf_counts(_TINY_TFIDF, seed=0)
  matrix = benchmark.make_tfidf(_TINY_TFIDF, seed=0)
  assert matrix.format == 'csr' and matrix.shape == (2000, 5000)
  assert matrix.dtype == np.float32 and matrix.indices.dtype == np.int32
  assert matrix.has_canonical_format
  np.testing.assert_array_equal(matrix.indices, counts.indices)
  again = benchmark.make_tfidf(_TINY_TFIDF, seed=0)
  other = benchmark.make_tfidf(_TINY_TFIDF, seed=1)
  np.testing.assert_array_equal(matrix.data, again.data)
  np.testing.assert_array_equal(matrix.indices, again.indices)
  assert matrix.nnz != other.nnz or not np.array_equal(matrix.indices,
                                                      other.indices)
  # Within 10% of the density asked for; no empty row; unit rows.
  density = matrix.nnz / (2000 * 5000)
  assert density == pytest.approx(0.01, rel=0.1)
  assert np.diff(matrix.indptr).min() >= 1
  np.testing.assert_allclose(
      np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel(), 1.0,
      rtol=1e-5)
  # Zipf: the most common term is in far more documents than the median.
  frequency = np.sort(np.bincount(matrix.indices, minlength=5000))[::-1]
  assert frequency[0] > 0.5 * 2000 and frequency[0] > 20 * np.median(
      frequency)
  assert HAVE_SKLEARN, 'scikit-learn is in the test extra'
  from sklearn.feature_extraction import text  # pylint: disable=g-import-not-at-top
  expected = text.TfidfTransformer().fit_transform(counts)
  np.testing.assert_allclose(matrix.toarray(), expected.toarray(), rtol=1e-6,
                             atol=1e-7)


def test_sparse_inertia_and_labels_match_brute_force(monkeypatch):
  matrix = benchmark.make_tfidf(
      benchmark.TfidfWorkload(n=300, d=50, k=4, density=0.1), seed=2)
  centers = benchmark.tfidf_initial_centers(matrix, 4, seed=2)
  dense = matrix.toarray().astype(np.float64)
  squared = ((dense[:, None, :] - centers[None].astype(np.float64))**2).sum(-1)
  monkeypatch.setattr(benchmark, 'CHUNK_ELEMENTS', 4 * 64)  # 5 chunks.
  total, labels = benchmark.sparse_inertia_and_labels(matrix, centers)
  np.testing.assert_allclose(total, squared.min(axis=1).sum(), rtol=1e-9)
  np.testing.assert_array_equal(labels, squared.argmin(axis=1))
  # The initial centers are k distinct rows of the matrix.
  assert len({row.tobytes() for row in centers}) == 4
  assert all((dense == row).all(axis=1).any() for row in centers)


def test_tiny_tfidf_run_agrees_with_sklearn_and_spherical_reference(tmp_path):
  report = benchmark.tfidf(_TINY_TFIDF, max_iter=5, repeats=1,
                           out_dir=tmp_path, isolate=False, verbose=False)
  results = {r['backend']: r for r in report['results']}
  assert set(results) == set(benchmark.TFIDF_BACKENDS)
  for backend, result in results.items():
    assert result['status'] == 'ok', (backend, result.get('message'))
    assert _positive_finite(result['peak_rss_mb'])
  matrix_mb = report['matrix']['mb']
  assert report['matrix']['bytes'] == report['matrix']['nnz'] * 8 + 2001 * 4
  for backend in benchmark.TFIDF_TF_BACKENDS:
    result = results[backend]
    reference = results[benchmark.TFIDF_REFERENCE_OF[backend]]
    assert result['reference'] == reference['backend']
    # The correctness check: the same Lloyd iterations from the same
    # centers reach the same objective and the same partition.
    assert result['objective_rel_diff_vs_reference'] < 1e-4, backend
    assert result['labels_agree_with_reference'] > 0.999, backend
    assert result['iterations'] == 5 == reference['iterations']
    for key in ('s_per_iter', 's_per_iter_steady', 'fit_s',
                's_per_iter_vs_reference', 'fit_s_vs_reference',
                'peak_rss_vs_goal', 'rss_before_fit_mb'):
      assert _positive_finite(result[key]), (backend, key, result[key])
    assert result['rss_goal_mb'] == pytest.approx(
        2 * matrix_mb + results['tf_baseline']['peak_rss_mb'])
  # Under cosine the objective is sum(1 - cos): below n, and below half
  # the squared-distance inertia of the same rows' nearest unit centers.
  assert 0 < results['kmeans_estimator_cosine']['objective'] < 2000
  markdown = (tmp_path / 'benchmark_tfidf.md').read_text()
  assert markdown == report['markdown'] + '\n'
  assert markdown.startswith('# kmeans_estimator sparse (TF-IDF) benchmark')
  assert "- kmeans_estimator_csr: s/iter " in markdown
  assert "x sklearn_lloyd's" in markdown
  assert "x scipy_spherical's" in markdown
  with open(tmp_path / 'benchmark_tfidf.json') as f:
    assert json.load(f)['matrix']['nnz'] == report['matrix']['nnz']


def test_tfidf_backends_run_in_processes_of_their_own(tmp_path):
  backends = ['tf_baseline', 'kmeans_estimator_csr', 'sklearn_lloyd']
  report = benchmark.tfidf(_TINY_TFIDF, backends=backends, max_iter=3,
                           repeats=1, out_dir=None, verbose=False)
  results = {r['backend']: r for r in report['results']}
  assert [r['backend'] for r in report['results']] == backends
  for backend, result in results.items():
    assert result['status'] == 'ok', (backend, result.get('message'))
    assert _positive_finite(result['process_wall_s'])
  ours, theirs = results['kmeans_estimator_csr'], results['sklearn_lloyd']
  assert ours['objective_rel_diff_vs_reference'] < 1e-4
  # scikit-learn's process never imported TensorFlow; ours loaded it and
  # the matrix on top of the baseline.
  assert theirs['peak_rss_mb'] < results['tf_baseline']['peak_rss_mb'] / 2
  assert ours['peak_rss_mb'] > results['tf_baseline']['peak_rss_mb']
  assert ours['rss_before_fit_mb'] <= ours['peak_rss_mb']


def test_spherical_reference_matches_a_dense_numpy_spherical_lloyd():
  matrix = benchmark.make_tfidf(
      benchmark.TfidfWorkload(n=400, d=60, k=5, density=0.1), seed=3)
  initial = benchmark.tfidf_initial_centers(matrix, 5, seed=3)
  dense = matrix.toarray().astype(np.float64)
  centers = initial.astype(np.float64)
  for _ in range(4):
    labels = (dense @ centers.T).argmax(axis=1)
    for j in range(5):
      if (labels == j).any():
        total = dense[labels == j].sum(axis=0)
        centers[j] = total / np.linalg.norm(total)
  np.testing.assert_allclose(
      benchmark.spherical_lloyd(matrix, initial, 4, chunk_rows=64), centers,
      atol=1e-5)


@pytest.mark.parametrize('kwargs, message', [
    (dict(backends=['sklearn_elkan']), '`backends` must be among'),
    (dict(max_iter=0), '`max_iter` must be a positive integer'),
    (dict(workload=benchmark.TfidfWorkload(n=5, d=10, k=6)),
     '`workload.k` must be at most workload.n'),
    (dict(workload=benchmark.TfidfWorkload(density=0.0)),
     '`workload.density` must be in'),
])
def test_tfidf_rejects_bad_settings_before_running_anything(
    tmp_path, kwargs, message):
  with pytest.raises(ValueError, match=message):
    benchmark.tfidf(out_dir=tmp_path, verbose=False, **kwargs)
  assert not list(tmp_path.iterdir())
