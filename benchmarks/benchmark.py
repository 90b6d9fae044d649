r"""Benchmarks kmeans_estimator against scikit-learn and a GEMM floor.

Every backend clusters the same deterministic Gaussian blobs, side by side in
one invocation, and is reported with the same figures:

- `s/iter`: seconds per Lloyd iteration, the iteration time over the number of
  iterations, with initialisation left out where it can be separated (for
  mini-batch backends an "iteration" is one epoch over the data);
- `iters`, `init s` and `fit s` (the whole fit, initialisation included);
- `inertia`: the sum over ALL points of the squared distance to the nearest of
  the backend's final centers, computed here in numpy float64 for every
  backend alike (never the backend's own figure);
- `predict pts/s`: points per second assigning all points with the fitted
  model (median of at least `--repeats` warm calls; for the estimator
  `predict(predict_keys=['cluster_index'], yield_single_examples=False)`,
  while the per-point `predict_cluster_index` generator is in the JSON);
- `peak RSS`: the peak RSS (VmHWM; not getrusage, which on Linux carries
  the parent's peak into the child) of the process that ran the backend; each
  backend runs in a fresh subprocess (`--isolate`, the default), so this is
  that backend's peak including the interpreter, its libraries and the data;
  RSS before the fit is reported beside it (after the data was loaded, for
  the backends that hold it);
- ratios of `s/iter` to scikit-learn's Lloyd and to the GEMM floor, the time
  of the distance product plus argmin for the same shapes (one assignment
  pass, TensorFlow, row chunks, inside a `tf.function`).

Each process first warms its library up with a trivial call, so once-per-
process start-up is left out; per-model costs (tf.function tracing,
checkpoints, input validation) stay in. The TF backends also report their
first step (tracing included) and steady per-iteration time apart.

Streamed workload: the parent process writes the points once, block by block,
to a `.npy` file in a temporary directory (the same values as the array of
every other workload; see `write_blobs`). The TF backends but
kmeans_estimator_in_memory and the floor read it through a `tf.data` pipeline
(`stream_dataset`: the `.npy` reader of kmeans_estimator's command line,
which memory-maps the file and copies `--stream_batch` rows per batch through
`tf.numpy_function`, prefetched) and never hold the array, so their peak RSS
over the RSS before the fit is what streaming costs in memory. The other backends load the array before the fit.
kmeans_estimator_in_memory is kmeans_estimator given that array as one
tensor: the full-batch streamed backends report their steady s/iter over its
(`steady / in-memory`), and the report lists RSS growth per backend.
Those ratios compare two processes, whose speeds differ by 10-30% on a shared
machine; the streamed kmeans_estimator backend therefore also times streamed
and in-memory steps in turn in its own process, after its peak RSS was taken
(`streamed_vs_in_memory`; `here` in the report).

Backends:
  kmeans_estimator            `KMeansClustering(use_mini_batch=False,
                              initial_clusters='kmeans_plus_plus')`, fixed
                              `--max_iter` steps (no relative_tolerance);
                              k-means++ draws as many candidates per center
                              as scikit-learn unless
                              `--kmeans_plus_plus_num_retries` is given.
  kmeans_estimator_minibatch  the same with `use_mini_batch=True`, batches of
                              `--batch_size`, `--max_iter` epochs.
  kmeans_estimator_hamerly    full batch with `algorithm='hamerly'` (bounds
                              skip distances; in-memory workloads only).
  kmeans_estimator_yinyang    the same with `algorithm='yinyang'` (group
                              bounds skip groups of centers).
  kmeans_estimator_batched    full batch over a dataset of 20,000-point
                              batches: k-means++ runs on the first batch
                              (as the legacy estimator's did), Lloyd on all.
  kmeans_estimator_kmc2       full batch from `initial_clusters='kmc2'`
                              (k-MC2: initialisation without a pass per
                              center), for the time to quality.
  kmeans_estimator_parallel   `initial_clusters='kmeans_parallel'` (k-means||:
                              5 sampling rounds over all the data) with
                              `algorithm='hamerly'` (Lloyd on streamed
                              workloads): the fastest route to a good fit.
  kmeans_estimator_in_memory  kmeans_estimator with the streamed workload's
                              points as one in-memory array (skipped on the
                              other workloads, which kmeans_estimator reads
                              in memory already).
  kmeans_core                 the `KMeans` tf.Module alone (`initialize`,
                              `full_batch_step`, `nearest` in tf.functions),
                              to show what the estimator shell adds.
  sklearn_lloyd, sklearn_elkan  `KMeans(algorithm=..., n_init=1, tol=0)`;
                              k-means++ runs first through
                              `sklearn.cluster.kmeans_plusplus` so that its
                              time is separated, then `fit` starts from it
                              (tol=0 still stops at strict convergence).
  sklearn_minibatch           `MiniBatchKMeans(batch_size, tol=0,
                              max_no_improvement=None)`, k-means++ on an
                              `init_size = 3 * batch_size` sample, as sklearn.
  gemm_floor                  the floor above, with the generating centers;
                              its inertia is that of the true centers.

Workloads (d / k / n): tiny 2/5/500, small 20/20/10000, medium 100/50/50000
(the default set), large 100/500/500000 and stream 64/256/1000000 (streamed
from a file as above; `--stream_points` changes its n, say to show that
streaming RSS does not grow with n). No timing is asserted anywhere.

Memory per call (`--call_memory`, `call_memory`): instead of the fit
benchmark, the peak RSS of each inference call (and of two training steps)
over the RSS with the points loaded, one fresh process per call and n, at
`--rss_points` (default 1M and 5M) points: flat in n when a call holds
O(chunk) beyond its input and output.

Latency (`--workloads=latency`, not in the default set; `latency`): what
small problems cost, on 500 x 2 (k=5) and 10,000 x 20 (k=20) blobs:
full-batch kmeans_estimator from k-means++ given the array
(`train(x, steps=20)`) against scikit-learn's KMeans (k-means++, n_init=1,
max_iter=20, tol=0) and, with `--legacy_python`, the legacy TF 2.15
estimator in that interpreter (`legacy_latency.py`). Each runs in a fresh
process per size, which times its first fit (import excluded), then the
median second estimator's fit, choose-k loop (k = 2..10, fresh estimators),
`predict_cluster_index` on a new estimator over a trained model_dir (500
points), and on 500 x 2 the per-step cost of `train(x, steps=1000)`. The
report puts each beside its target (LATENCY_TARGETS) and says whether it
is met; nothing is asserted.

Sparse data (`--workloads=tfidf`, not in the default set; `tfidf`): a
deterministic TF-IDF-like CSR matrix (by default 100,000 documents x 50,000
terms, 0.1% density, Zipf-distributed terms, TfidfVectorizer's weights,
float32; `make_tfidf`), written once to an `.npz` that each backend's
process loads, clustered with k=100 from the same k rows chosen by the seed
and `--max_iter` Lloyd iterations (tol 0) by kmeans_estimator given the CSR
matrix or a tf.SparseTensor, and by scikit-learn's KMeans on the same CSR
matrix. The report gives s/iter, fit time, peak RSS against two baseline
processes that only import their libraries, the matrix's bytes, every
backend's float64 inertia (the correctness check: the same iterations from
the same centers) and the ratios to the issue's goals: s/iter at most
scikit-learn's, peak RSS at most 2 x the matrix's bytes plus TensorFlow's
baseline. It is written to `benchmark_tfidf.md` and `.json`.

Usage:
  .venv/bin/python benchmarks/benchmark.py
  .venv/bin/python benchmarks/benchmark.py --workloads=tfidf --max_iter=10
  .venv/bin/python benchmarks/benchmark.py --workloads=latency \
      --legacy_python=/path/to/tf215-venv/bin/python
  .venv/bin/python benchmarks/benchmark.py --workloads=large --max_iter=10
  .venv/bin/python benchmarks/benchmark.py --spread   # unseparated blobs
  .venv/bin/python benchmarks/benchmark.py --workloads=stream --max_iter=5 \
      --backends=kmeans_estimator,kmeans_estimator_in_memory,gemm_floor
  .venv/bin/python benchmarks/benchmark.py --call_memory --rss_k=16
"""

import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS

CENTER_RANGE = 500.0
WIDTH = 20.0
SPREAD_WIDTH = 250.0
# Points per batch when a workload is streamed.
STREAM_BATCH = 16384
# kmeans_estimator_batched: full-batch Lloyd over batches of this many points,
# so that k-means++ (which runs on the first batch) sees this many.
INIT_BATCH = 20000
# As kmeans_estimator's defaults: at most this many distances at once, in
# chunks of at most this many rows.
CHUNK_ELEMENTS = 1 << 20
MAX_CHUNK_ROWS = 4096


@dataclasses.dataclass(frozen=True)
class Workload:
  name: str
  d: int
  k: int
  n: int
  streamed: bool = False


WORKLOADS = {
    w.name: w for w in (
        Workload('tiny', d=2, k=5, n=500),
        Workload('small', d=20, k=20, n=10_000),
        Workload('medium', d=100, k=50, n=50_000),
        Workload('large', d=100, k=500, n=500_000),
        Workload('stream', d=64, k=256, n=1_000_000, streamed=True),
    )
}
DEFAULT_WORKLOADS = ('tiny', 'small', 'medium')

SKLEARN_BACKENDS = ('sklearn_lloyd', 'sklearn_elkan', 'sklearn_minibatch')
# kmeans_estimator with the streamed workload's points as one in-memory array.
IN_MEMORY = 'kmeans_estimator_in_memory'
TF_BACKENDS = ('kmeans_estimator', 'kmeans_estimator_minibatch',
               'kmeans_estimator_hamerly', 'kmeans_estimator_yinyang',
               'kmeans_estimator_batched',
               'kmeans_estimator_kmc2', 'kmeans_estimator_parallel',
               IN_MEMORY, 'kmeans_core', 'gemm_floor')
# The backends that read a streamed workload from its file through tf.data;
# the others (scikit-learn, the floor, IN_MEMORY) load the array.
STREAMING_BACKENDS = ('kmeans_estimator', 'kmeans_estimator_minibatch',
                      'kmeans_estimator_hamerly', 'kmeans_estimator_batched',
                      'kmeans_estimator_kmc2', 'kmeans_estimator_parallel',
                      'kmeans_core')
# Those whose iterations are full-batch Lloyd steps, as IN_MEMORY's are.
_FULL_BATCH = tuple(b for b in STREAMING_BACKENDS
                    if b != 'kmeans_estimator_minibatch')
BACKENDS = ('kmeans_estimator', 'kmeans_estimator_minibatch',
            'kmeans_estimator_hamerly', 'kmeans_estimator_yinyang',
            'kmeans_estimator_batched',
            'kmeans_estimator_kmc2', 'kmeans_estimator_parallel', IN_MEMORY,
            'kmeans_core', 'sklearn_lloyd', 'sklearn_elkan',
            'sklearn_minibatch', 'gemm_floor')
REFERENCE = 'sklearn_lloyd'
FLOOR = 'gemm_floor'
# --tf32: None leaves TensorFlow's default.
TF32_SETTINGS = {'default': None, 'on': True, 'off': False}


def _define_flags():
  """Defines the flags; only when run as a script, so importing is inert."""
  flags.DEFINE_list('workloads', list(DEFAULT_WORKLOADS),
                    f'Workloads to run, of '
                    f'{list(WORKLOADS) + [LATENCY, TFIDF]} '
                    f'({LATENCY!r}: the latency of small fits and calls, '
                    f'see `latency`; {TFIDF!r}: a sparse TF-IDF matrix '
                    'against scikit-learn, see `tfidf`).')
  flags.DEFINE_list('backends', list(BACKENDS),
                    f'Backends to run, of {list(BACKENDS)}.')
  flags.DEFINE_integer('max_iter', 20,
                       'Lloyd iterations (epochs for mini-batch backends).')
  flags.DEFINE_string('out_dir', os.path.join(os.path.dirname(
      os.path.abspath(__file__)), 'results'),
                      'Where the markdown table and the JSON go.')
  flags.DEFINE_integer('seed', 0, 'Seed of the data and of every backend.')
  flags.DEFINE_bool('spread', False,
                    f'Blob width {SPREAD_WIDTH} instead of {WIDTH}: '
                    'unseparated clusters.')
  flags.DEFINE_integer('batch_size', 1024, 'Mini-batch size.')
  flags.DEFINE_integer('repeats', 5,
                       'Timed repeats of the floor and of predict (median).')
  flags.DEFINE_integer('stream_points', None,
                       'Points n of the streamed workload, instead of its '
                       f'{WORKLOADS["stream"].n:,} (to check that peak RSS '
                       'does not grow with n).')
  flags.DEFINE_integer('stream_batch', STREAM_BATCH,
                       'Points per tf.data batch of the streamed workload.')
  flags.DEFINE_integer(
      'kmeans_plus_plus_num_retries', None,
      'kmeans_estimator\'s k-means++ retries; by default 1 + int(ln k), so '
      'that it draws as many candidates per center as scikit-learn (the '
      'estimator\'s own default is 2).')
  flags.DEFINE_enum(
      'tf32', 'default', list(TF32_SETTINGS),
      'TensorFloat-32 matrix products on the GPUs that have them (A100, H100 '
      'and later): TensorFlow\'s default (on), or forced on or off. The '
      'device column states what each backend ran with; no effect on CPUs.')
  flags.DEFINE_bool('isolate', True,
                    'Run each (workload, backend) in a fresh subprocess, so '
                    'that peak RSS is per backend.')
  flags.DEFINE_string('worker_output', None,
                      'Internal: run one (workload, backend) in this process '
                      'and write its result to this JSON file.')
  flags.DEFINE_string('data_file', None,
                      'Internal: the streamed workload\'s .npy file, '
                      'written by the parent process.')
  flags.DEFINE_bool('call_memory', False,
                    'Instead of the fit benchmark: the peak RSS of each of '
                    '--rss_calls over the loaded points, for each of '
                    '--rss_points (see `call_memory`).')
  flags.DEFINE_list('rss_calls', list(RSS_CALLS),
                    f'Calls whose peak RSS --call_memory takes, of '
                    f'{list(RSS_CALLS)}.')
  flags.DEFINE_list('rss_points', [str(n) for n in RSS_POINTS],
                    'Numbers of points n for --call_memory.')
  flags.DEFINE_integer('rss_k', 16, 'Clusters k for --call_memory.')
  flags.DEFINE_integer('rss_d', 32, 'Features d for --call_memory.')
  flags.DEFINE_string(
      'legacy_python', None,
      'With --workloads=latency: a Python interpreter with TensorFlow 2.15 '
      'and tensorflow-estimator 2.15, which runs the same latency '
      'measurements on the legacy tf.compat.v1.estimator.experimental.KMeans '
      '(benchmarks/legacy_latency.py) for the legacy column.')
  flags.DEFINE_integer('latency_steps', LATENCY_STEPS,
                       'Latency workload: train(x, steps) of every fit.')
  flags.DEFINE_integer('latency_long_steps', LATENCY_LONG_STEPS,
                       'Latency workload: the steps of the long train call '
                       'whose per-step cost is measured; 0 skips it.')
  flags.DEFINE_integer('latency_repeats', LATENCY_REPEATS,
                       'Latency workload: timed calls (at least; fast ones '
                       'are repeated for 0.2 s) of each measurement after '
                       'the first fit (median).')
  flags.DEFINE_integer(
      'latency_sklearn_threads', None,
      'Latency workload: OpenMP threads of scikit-learn\'s process '
      '(OMP_NUM_THREADS); by default its own (one per core). 1 keeps its '
      'small fits steady when other processes keep the cores busy.')
  flags.DEFINE_enum('latency_worker', None, ['kmeans_estimator', 'sklearn'],
                    'Internal: measure this backend\'s latency in this '
                    'fresh process with --latency_config and print it as '
                    'JSON.')
  flags.DEFINE_string('latency_config', None,
                      'Internal: the JSON settings of --latency_worker.')
  flags.DEFINE_list('tfidf_backends', list(TFIDF_BACKENDS),
                    f'Backends of --workloads={TFIDF}, of '
                    f'{list(TFIDF_BACKENDS)}.')
  flags.DEFINE_integer('tfidf_rows', TFIDF_WORKLOAD.n,
                       f'Rows (documents) n of the {TFIDF} matrix.')
  flags.DEFINE_integer('tfidf_columns', TFIDF_WORKLOAD.d,
                       f'Columns (terms) d of the {TFIDF} matrix.')
  flags.DEFINE_float('tfidf_density', TFIDF_WORKLOAD.density,
                     f'Expected fraction of stored entries of the {TFIDF} '
                     'matrix.')
  flags.DEFINE_integer('tfidf_k', TFIDF_WORKLOAD.k,
                       f'Clusters k of the {TFIDF} workload.')
  flags.DEFINE_enum('tfidf_worker', None, list(TFIDF_BACKENDS),
                    'Internal: run this tfidf backend on --data_file in this '
                    'process and write its result to --worker_output.')
  flags.DEFINE_string('rss_worker', None,
                      'Internal: measure this call in this process.')
  flags.DEFINE_string('model_dir', None,
                      'Internal: the model of --rss_worker.')


def workload_of(name, config):
  """The workload `name`, with the streamed one's n from `stream_points`."""
  workload = WORKLOADS[name]
  if workload.streamed and config.get('stream_points'):
    workload = dataclasses.replace(workload, n=config['stream_points'])
  return workload


# ------------------------------------------------------------------ data
_BLOCK_ROWS = 100_000  # Rows generated at once: bounded float64 temporaries.


def _true_centers(workload, seed, rng=None):
  """The k generating centers, uniform in [0, 500)^d (the rng's first draw)."""
  rng = np.random.default_rng(seed) if rng is None else rng
  return rng.uniform(0.0, CENTER_RANGE, (workload.k, workload.d))


def _blob_blocks(workload, seed, spread):
  """(centers float64 (k, d), iterator of float32 row blocks, in order)."""
  rng = np.random.default_rng(seed)
  centers = _true_centers(workload, seed, rng)
  width = SPREAD_WIDTH if spread else WIDTH

  def blocks():
    for start in range(0, workload.n, _BLOCK_ROWS):
      size = min(start + _BLOCK_ROWS, workload.n) - start
      labels = rng.integers(0, workload.k, size)
      yield (centers[labels] + rng.normal(0.0, width, (size, workload.d))
            ).astype(np.float32)

  return centers, blocks()


def make_blobs(workload, seed, spread=False):
  """Deterministic Gaussian blobs.

  Centers are uniform in [0, 500)^d; each point is a uniformly chosen center
  plus normal offsets of width 20 (250 with `spread`).

  Returns:
    (points float32 (n, d), centers float64 (k, d)).
  """
  centers, blocks = _blob_blocks(workload, seed, spread)
  points = np.empty((workload.n, workload.d), np.float32)
  start = 0
  for block in blocks:
    points[start:start + len(block)] = block
    start += len(block)
  return points, centers


def write_blobs(workload, seed, spread, path):
  """Writes `make_blobs`' points to `path`: a float32 `.npy` of (n, d).

  Block by block, so the writer never holds the whole array.

  Returns:
    the generating centers, float64 (k, d).
  """
  centers, blocks = _blob_blocks(workload, seed, spread)
  with open(path, 'wb') as f:
    np.lib.format.write_array_header_1_0(f, {
        'descr': np.lib.format.dtype_to_descr(np.dtype(np.float32)),
        'fortran_order': False, 'shape': (workload.n, workload.d)})
    f.writelines(block.astype(np.float32, copy=False).tobytes()
                 for block in blocks)
  return centers


def read_blobs(path, num_features):
  """The whole `.npy` at `path` as an array of shape (n, num_features)."""
  points = np.load(path, allow_pickle=False)
  if points.ndim != 2 or points.shape[1] != num_features:
    raise ValueError(f'{path} holds an array of shape {points.shape}, not '
                     f'(n, {num_features}); rewrite it with write_blobs.')
  return points


def _file_blocks(path, num_features, rows):
  """Blocks of at most `rows` rows of the `.npy` at `path` (copies of a
  memory map, so the reader never holds the whole array)."""
  points = np.load(path, mmap_mode='r', allow_pickle=False)
  for start in range(0, len(points), rows):
    yield np.array(points[start:start + rows]).reshape(-1, num_features)


def inertia(points, centers):
  """Sum over all points of the squared distance to the nearest center.

  numpy float64, in row chunks; identical for every backend.

  Args:
    points: float array (n, d), or an iterable of such row blocks (say,
      read from a file; each is processed in chunks alike).
    centers: array (k, d).
  """
  centers = np.asarray(centers, np.float64)
  center_norms = np.einsum('kd,kd->k', centers, centers)
  rows = _chunk_rows(len(centers))
  blocks = [points] if isinstance(points, np.ndarray) else points
  total = 0.0
  for block in blocks:
    for start in range(0, len(block), rows):
      chunk = np.asarray(block[start:start + rows], np.float64)
      squared = (np.einsum('nd,nd->n', chunk, chunk)[:, None] -
                 2.0 * chunk @ centers.T + center_norms[None, :])
      total += float(np.maximum(squared.min(axis=1), 0.0).sum())
  return total


def _chunk_rows(k):
  """Rows per chunk for k centers, as kmeans_estimator chooses them."""
  return max(1, min(CHUNK_ELEMENTS // k, MAX_CHUNK_ROWS))


def _peak_rss_mb():
  """This process's peak RSS so far, in MB: VmHWM where /proc has it.

  Not getrusage's ru_maxrss there: Linux carries the parent's peak over
  an exec into the child's ru_maxrss, so a worker started by a parent
  holding the data would report at least the parent's RSS. Elsewhere
  ru_maxrss."""
  kb = _rss_kb('VmHWM')
  if kb is None:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return kb / 1024.0


def _interleaved_medians(fns, repeats, min_total_s=0.2, max_rounds=1000):
  """Median seconds of each of `fns`, called in turn round after round
  (at least `repeats` rounds, and until the first has run `min_total_s`)."""
  times = [[] for _ in fns]
  while len(times[0]) < repeats or (sum(times[0]) < min_total_s and
                                    len(times[0]) < max_rounds):
    for fn, fn_times in zip(fns, times):
      start = time.perf_counter()
      fn()
      fn_times.append(time.perf_counter() - start)
  return [float(np.median(fn_times)) for fn_times in times]


def _median_time(fn, repeats, min_total_s=0.2, max_calls=1000):
  """Median seconds of `fn()` over at least `repeats` calls.

  Fast calls are repeated until `min_total_s` has passed (at most
  `max_calls`), so that a median of sub-millisecond calls is not noise.
  """
  times = []
  while len(times) < repeats or (sum(times) < min_total_s and
                                 len(times) < max_calls):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


# ------------------------------------------------------------ TF backends
def _tf_dataset(points, batch_size):
  """Batches of the in-memory `points` as a tf.data pipeline."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # Slices of one tensor: Dataset.batch would gather the batch row by row,
  # which costs more than the k-means step itself.
  data = tf.constant(points)
  starts = tf.data.Dataset.range(0, len(points), batch_size)
  # As the README advises for full-batch steps over batches: without the
  # autotuner, which restarts with every pass's iterator and stalls some.
  options = tf.data.Options()
  options.autotune.enabled = False
  return starts.map(lambda start: data[start:start + batch_size]).prefetch(
      2).with_options(options)


def stream_dataset(path, num_features, batch_size):
  """Batches of the `.npy` at `path` (`write_blobs`) as a tf.data pipeline.

  The reader of kmeans_estimator's command line (`kmeans-estimator train
  --input points.npy`): the file is memory-mapped and each batch of
  `batch_size` rows is copied out of it by `tf.numpy_function`, prefetched
  while the current one is clustered, so the process never holds the array.
  A last, shorter batch holds the rows left over.

  Args:
    path: `.npy` file of a float32 array (n, num_features).
    num_features: d.
    batch_size: rows per batch.

  Returns:
    `tf.data.Dataset` of float32 Tensors of shape (batch_size or fewer, d).
  """
  from kmeans_estimator.data import files as file_inputs  # pylint: disable=g-import-not-at-top
  source = file_inputs.open_files([path])
  if source.num_features != num_features:
    raise ValueError(f'{path} has {source.num_features} columns, not '
                     f'{num_features}; rewrite it with write_blobs.')
  return source.dataset(batch_size)


def _steady(step_times, steps_per_iteration=1):
  """Median step time after the first (which traces), per iteration."""
  if len(step_times) < 2:
    return None
  return float(np.median(np.diff(step_times))) * steps_per_iteration


def kmeans_plus_plus_retries(k, retries=None):
  """kmeans_estimator's retries; None matches scikit-learn's candidates.

  scikit-learn draws n_local_trials = 2 + int(ln k) candidates per center,
  kmeans_estimator 1 + kmeans_plus_plus_num_retries (legacy default 2).
  """
  return 1 + int(math.log(k)) if retries is None else retries


def _tf_device():
  """'CPU', or the GPU's name and whether TensorFloat-32 products were on
  (they round the distance product's inputs to 10 mantissa bits)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gpus = tf.config.list_physical_devices('GPU')
  if not gpus:
    return 'CPU'
  name = tf.config.experimental.get_device_details(gpus[0]).get(
      'device_name', 'GPU')
  tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
  return f'GPU ({name}), TF32 {"on" if tf32 else "off"}'


def _tf32_name(setting):
  """The --tf32 value of a config's 'tf32' (None, True or False)."""
  return next(name for name, value in TF32_SETTINGS.items()
              if value is setting)


def _configure_tensorflow(config):
  """Applies --tf32 (before the backend's first TensorFlow op)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if config.get('tf32') is not None:
    tf.config.experimental.enable_tensor_float_32_execution(config['tf32'])


class _StepTimer:
  """A SessionRunHook-like timer: when training begins and each step ends.

  Besides wall-clock times it records the process's CPU time (all threads)
  at each step end: on a shared machine, CPU seconds per step move less with
  the load than wall seconds do.
  """

  def __init__(self):
    self.begin_time = None
    self.step_times = []
    self.cpu_times = []
    self.losses = []

  def begin(self):
    self.begin_time = time.perf_counter()

  def before_run(self, run_context):  # pylint: disable=unused-argument
    import kmeans_estimator  # pylint: disable=g-import-not-at-top
    return kmeans_estimator.SessionRunArgs('loss')

  def after_run(self, run_context, run_values):  # pylint: disable=unused-argument
    self.step_times.append(time.perf_counter())
    self.cpu_times.append(time.process_time())
    # The loss of step t is the inertia of the centers step t started from.
    self.losses.append(float(run_values.results))

  def end(self, session):  # pylint: disable=unused-argument
    pass


def _tracing_counts(estimator):
  # Diagnostic only: the estimator's compiled steps are a private cache.
  counts = {}
  for name, fn in getattr(estimator, '_compiled', {}).items():
    if hasattr(fn, 'experimental_get_tracing_count'):
      key = name if isinstance(name, str) else '/'.join(map(str, name))
      counts[key] = fn.experimental_get_tracing_count()
  return counts


def _batches(data, num_features, batch_size):
  """A dataset of batches of `data`: a file path (streamed) or an array."""
  if isinstance(data, str):
    return stream_dataset(data, num_features, batch_size)
  return _tf_dataset(data, batch_size)


def run_kmeans_estimator(workload, data, config, mini_batch,
                         algorithm='lloyd', initial_clusters=None,
                         full_batch_batches=None):
  """KMeansClustering, full batch or mini-batch, with a step-timing hook.

  `data` is the points as an array, or the path of their `.npy` file,
  which is then streamed through tf.data (`stream_dataset`) in training and
  prediction alike.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import kmeans_estimator  # pylint: disable=g-import-not-at-top
  max_iter, seed = config['max_iter'], config['seed']
  batch_size = config['batch_size']
  streamed = isinstance(data, str)
  stream_batch = config.get('stream_batch') or STREAM_BATCH
  n, d = workload.n, workload.d
  if mini_batch:
    steps_per_epoch = math.ceil(n / batch_size)

    def train_input_fn():
      return _batches(data, d, batch_size).repeat(max_iter)
  elif streamed or full_batch_batches:
    steps_per_epoch = 1

    def train_input_fn():
      return _batches(data, d, full_batch_batches or stream_batch)
  else:
    steps_per_epoch = 1

    def train_input_fn():
      return data

  if streamed:
    def predict_input_fn():
      return stream_dataset(data, d, stream_batch)
  else:
    def predict_input_fn():
      return data

  timer = _StepTimer()
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as model_dir:
    start = time.perf_counter()
    estimator = kmeans_estimator.KMeansClustering(
        num_clusters=workload.k, model_dir=model_dir,
        initial_clusters=(
            initial_clusters or
            kmeans_estimator.KMeansClustering.KMEANS_PLUS_PLUS_INIT),
        kmeans_plus_plus_num_retries=kmeans_plus_plus_retries(
            workload.k, config['kmeans_plus_plus_num_retries']),
        seed=seed, use_mini_batch=mini_batch, algorithm=algorithm)
    # Full batch: `steps` Lloyd steps. Mini-batch: the finite dataset of
    # max_iter epochs is read once, one step per batch.
    estimator.train(train_input_fn, hooks=[timer],
                    steps=None if mini_batch else max_iter)
    fit_s = time.perf_counter() - start
    centers = estimator.cluster_centers()

    def predict():
      for _ in estimator.predict(predict_input_fn,
                                 predict_keys=['cluster_index'],
                                 yield_single_examples=False):
        pass

    predict_start = time.perf_counter()
    predict()
    predict_first_s = time.perf_counter() - predict_start
    predict_s = _median_time(predict, config['repeats'])
    def per_point():
      for _ in estimator.predict_cluster_index(predict_input_fn):
        pass

    per_point_start = time.perf_counter()
    per_point()
    per_point_s = time.perf_counter() - per_point_start
    interleaved = {}
    if not streamed:
      # The floor again, in this process and interleaved with predict: the
      # ratios are then not moved by the machine's speed changing between
      # processes or over the run (seen: 10-30%).
      floor_fn, _ = floor_pass(data, centers)
      floor_s, predict_again_s, per_point_again_s = _interleaved_medians(
          (floor_fn, predict, per_point), config['repeats'])
      interleaved = {
          'predict_vs_floor_interleaved': floor_s / predict_again_s,
          'predict_cluster_index_vs_floor_interleaved': (
              floor_s / per_point_again_s)}
    traces = _tracing_counts(estimator)

  steps = len(timer.step_times)
  iterations = steps / steps_per_epoch
  iter_total = timer.step_times[-1] - timer.begin_time
  init_s = timer.begin_time - start
  return {
      'centers': centers,
      'iterations': iterations,
      'steps': steps,
      'init_s': init_s,
      'iter_total_s': iter_total,
      's_per_iter': iter_total / iterations,
      's_per_iter_steady': _steady(timer.step_times, steps_per_epoch),
      'cpu_s_per_iter_steady': _steady(timer.cpu_times, steps_per_epoch),
      'first_step_s': timer.step_times[0] - timer.begin_time,
      'other_s': fit_s - init_s - iter_total,
      'fit_s': fit_s,
      'predict_s': predict_s,
      'predict_first_s': predict_first_s,
      'predict_cluster_index_points_per_s': n / per_point_s,
      **interleaved,
      'traces': traces,
      # (seconds since the fit started, inertia of the centers that step
      # started from) per step: for the time to reach a given quality.
      'loss_trace': [(t - start, loss) for t, loss in
                     zip(timer.step_times, timer.losses)] if not mini_batch
                    else [],
      'device': _tf_device(),
      'tf_threads': [tf.config.threading.get_intra_op_parallelism_threads(),
                     tf.config.threading.get_inter_op_parallelism_threads()],
  }


def _interleaved_rounds(timers, rounds):
  """Median of the seconds that each of `timers` (callables returning a
  list of seconds) measures, called in turn round after round; the first
  round is a warm-up (tracing) and does not count."""
  times = [[] for _ in timers]
  for round_index in range(rounds + 1):
    for timer, timer_times in zip(timers, times):
      measured = timer()
      if round_index:
        timer_times.extend(measured)
  return [float(np.median(timer_times)) for timer_times in times]


def _estimator_steps(workload, centers, input_fn, model_dir, steps_per_call):
  """A callable taking `steps_per_call` full-batch Lloyd steps of a fresh
  estimator started from `centers`, returning the seconds of each step
  after the first (the first of a call also reads the input and, in
  memory, starts the carried state)."""
  import kmeans_estimator  # pylint: disable=g-import-not-at-top
  estimator = kmeans_estimator.KMeansClustering(
      num_clusters=workload.k, model_dir=model_dir,
      initial_clusters=np.asarray(centers, np.float32), use_mini_batch=False)

  def steps():
    timer = _StepTimer()
    estimator.train(input_fn, hooks=[timer], steps=steps_per_call)
    return list(np.diff(timer.step_times))
  return steps


def streamed_vs_in_memory(workload, data_file, centers, config,
                          steps_per_call=4):
  """Streamed full-batch steps and in-memory ones, timed in turn in this
  process.

  The streamed backends and IN_MEMORY run in different processes, whose
  speed differs by 10-30% on a shared machine: their ratio moves by as
  much. Here two estimators start from the same `centers` (the fit's, so
  the steps are steady ones), one reading `data_file` in batches as the
  streamed fit did, one given the points as an array (loaded here, after
  the fit's peak RSS was taken), and take `steps_per_call` Lloyd steps
  each, in turn, round after round (`_interleaved_rounds`).

  Returns:
    {'stream_here_s': median streamed step, 'in_memory_here_s': median
    in-memory step, 'rounds_here': timed rounds}.
  """
  points = read_blobs(data_file, workload.d)
  stream_batch = config.get('stream_batch') or STREAM_BATCH
  rounds = max(config['repeats'], 2)
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as model_dir:
    stream_s, in_memory_s = _interleaved_rounds([
        _estimator_steps(
            workload, centers,
            lambda: stream_dataset(data_file, workload.d, stream_batch),
            os.path.join(model_dir, 'stream'), steps_per_call),
        _estimator_steps(workload, centers, lambda: points,
                         os.path.join(model_dir, 'in_memory'),
                         steps_per_call)], rounds)
  return {'stream_here_s': stream_s, 'in_memory_here_s': in_memory_s,
          'rounds_here': rounds}


def steps_vs_floor(workload, points, centers, config, steps_per_call=4):
  """In-memory Lloyd steps and floor passes, timed in turn in this process.

  `floor_here_s` times the floor after the fit, against steps timed during
  it: the machine's speed can change in between. Here an estimator started
  from the fit's `centers` takes `steps_per_call` steps, then the floor
  makes `steps_per_call` passes with those centers, round after round
  (`_interleaved_rounds`).

  Returns:
    {'step_interleaved_s': median step, 'floor_interleaved_s': median floor
    pass}.
  """
  one_pass, _ = floor_pass(points, centers)

  def floor_passes():
    passes = []
    for _ in range(steps_per_call):
      start = time.perf_counter()
      one_pass()
      passes.append(time.perf_counter() - start)
    return passes

  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as model_dir:
    step_s, floor_s = _interleaved_rounds([
        _estimator_steps(workload, centers, lambda: points, model_dir,
                         steps_per_call),
        floor_passes], max(config['repeats'], 2))
  return {'step_interleaved_s': step_s, 'floor_interleaved_s': floor_s}


def run_kmeans_core(workload, data, config):
  """The `KMeans` tf.Module alone, each method in its own tf.function.

  `data`: the points as an array, or the path of their `.npy` file.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import kmeans_estimator  # pylint: disable=g-import-not-at-top
  max_iter = config['max_iter']
  start = time.perf_counter()
  km = kmeans_estimator.KMeans(
      num_clusters=workload.k, num_features=workload.d,
      initial_clusters=kmeans_estimator.KMeans.KMEANS_PLUS_PLUS_INIT,
      use_mini_batch=False, random_seed=config['seed'],
      kmeans_plus_plus_num_retries=kmeans_plus_plus_retries(
          workload.k, config['kmeans_plus_plus_num_retries']))
  initialize = tf.function(km.initialize)
  step = tf.function(km.full_batch_step)
  nearest = tf.function(km.nearest)
  streamed = isinstance(data, str)
  if streamed:
    data = stream_dataset(data, workload.d,
                          config.get('stream_batch') or STREAM_BATCH)
    first = next(iter(data))
  else:
    data = first = tf.constant(data)
  bool(initialize(first))
  init_s = time.perf_counter() - start
  step_times = []
  for _ in range(max_iter):
    float(step(data)['loss'])
    step_times.append(time.perf_counter())
  fit_s = time.perf_counter() - start
  iter_total = step_times[-1] - start - init_s

  if streamed:
    def predict():
      for batch in data:
        nearest(batch)[0].numpy()
  else:
    def predict():
      nearest(data)[0].numpy()

  predict_start = time.perf_counter()
  predict()
  predict_first_s = time.perf_counter() - predict_start
  predict_s = _median_time(predict, config['repeats'])
  return {
      'centers': km.clusters.numpy(),
      'iterations': max_iter,
      'init_s': init_s,
      'iter_total_s': iter_total,
      's_per_iter': iter_total / max_iter,
      's_per_iter_steady': _steady(step_times),
      'first_step_s': step_times[0] - start - init_s,
      'fit_s': fit_s,
      'predict_s': predict_s,
      'predict_first_s': predict_first_s,
      'traces': {name: fn.experimental_get_tracing_count() for name, fn in
                 (('initialize', initialize), ('step', step),
                  ('nearest', nearest))},
      'device': _tf_device(),
  }


def floor_pass(points, centers):
  """A warmed-up callable running one floor pass over `points`.

  argmin_j |x - c_j|^2 = argmin_j (|c_j|^2 - 2 x.c_j): one matmul per chunk
  of rows as kmeans_estimator chooses them (`_chunk_rows`), the |c_j|^2
  added by `bias_add` (which TensorFlow fuses into the matmul) and an int32
  argmin (faster than int64), the chunks unrolled in one tf.function.

  Returns:
    (the callable, seconds of its first call, tracing included).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  n, k = len(points), len(centers)
  rows = _chunk_rows(k)

  @tf.function
  def assign(x, c):
    scaled, center_norms = -2.0 * c, tf.reduce_sum(tf.square(c), axis=1)
    parts = []
    for start in range(0, n, rows):
      scores = tf.nn.bias_add(
          tf.matmul(x[start:start + rows], scaled, transpose_b=True),
          center_norms)
      parts.append(tf.argmin(scores, axis=1, output_type=tf.int32))
    return tf.concat(parts, axis=0)

  x = tf.constant(points)
  c = tf.constant(np.asarray(centers, np.float32))
  warm_start = time.perf_counter()
  assign(x, c).numpy()
  return (lambda: assign(x, c).numpy()), time.perf_counter() - warm_start


def run_gemm_floor(workload, points, centers, config):
  """Distance product plus argmin in row chunks: a lower bound per pass
  (`floor_pass`)."""
  del workload
  one_pass, warmup_s = floor_pass(points, centers)
  floor_s = _median_time(one_pass, config['repeats'])
  return {
      'centers': centers,
      'iterations': config['max_iter'],
      'init_s': 0.0,
      'iter_total_s': floor_s * config['max_iter'],
      's_per_iter': floor_s,
      'fit_s': floor_s * config['max_iter'],
      'predict_s': floor_s,
      'warmup_s': warmup_s,
      'repeats': config['repeats'],
      'device': _tf_device(),
      'note': 'fit_s = max_iter x one assignment pass; centers = the '
              'generating centers',
  }


# -------------------------------------------------------- sklearn backends
def run_sklearn_kmeans(workload, points, config, algorithm):
  """KMeans(algorithm) with k-means++ timed apart, then fit from it."""
  from sklearn import cluster  # pylint: disable=g-import-not-at-top
  del workload
  seed = config['seed']
  start = time.perf_counter()
  initial, _ = cluster.kmeans_plusplus(points, config['k'],
                                       random_state=seed)
  init_s = time.perf_counter() - start
  model, iter_total, fits = _timed_fits(
      lambda: cluster.KMeans(n_clusters=len(initial), init=initial, n_init=1,
                             max_iter=config['max_iter'], tol=0.0,
                             algorithm=algorithm, random_state=seed),
      points, config['repeats'])
  result = _sklearn_result(model, points, config, init_s, iter_total,
                           int(model.n_iter_))
  result['fit_repeats'] = fits
  return result


def run_sklearn_minibatch(workload, points, config):
  """MiniBatchKMeans for max_iter epochs (no early stopping)."""
  from sklearn import cluster  # pylint: disable=g-import-not-at-top
  del workload
  seed, batch_size, k = config['seed'], config['batch_size'], config['k']
  start = time.perf_counter()
  # sklearn's own default: k-means++ on init_size = 3 * batch_size points.
  init_size = min(max(3 * batch_size, 3 * k), len(points))
  rng = np.random.default_rng(seed)
  sample = points[rng.choice(len(points), init_size, replace=False)]
  initial, _ = cluster.kmeans_plusplus(sample, k, random_state=seed)
  init_s = time.perf_counter() - start
  model, iter_total, fits = _timed_fits(
      lambda: cluster.MiniBatchKMeans(
          n_clusters=k, init=initial, n_init=1, max_iter=config['max_iter'],
          batch_size=batch_size, tol=0.0, max_no_improvement=None,
          compute_labels=False, random_state=seed),
      points, config['repeats'])
  result = _sklearn_result(model, points, config, init_s, iter_total,
                           int(model.n_iter_))
  result.update(steps=int(model.n_steps_), fit_repeats=fits)
  return result


def _timed_fits(make_model, points, repeats, budget_s=2.0):
  """Median time of `make_model().fit(points)` (deterministic fits).

  Repeated up to `repeats` times while under `budget_s`, as scikit-learn's
  OpenMP loops suffer badly from other processes on a small machine.

  Returns:
    (the last fitted model, median seconds, number of fits).
  """
  times = []
  while not times or (len(times) < repeats and sum(times) < budget_s):
    model = make_model()
    start = time.perf_counter()
    model.fit(points)
    times.append(time.perf_counter() - start)
  return model, float(np.median(times)), len(times)


def _sklearn_result(model, points, config, init_s, iter_total, iterations):
  model.predict(points)  # Warm-up, as for the TF backends.
  predict_s = _median_time(lambda: model.predict(points), config['repeats'])
  return {
      'centers': model.cluster_centers_,
      'iterations': iterations,
      'init_s': init_s,
      'iter_total_s': iter_total,
      's_per_iter': iter_total / max(iterations, 1),
      'fit_s': init_s + iter_total,
      'predict_s': predict_s,
      'device': 'CPU',
  }


# ------------------------------------------------------------- one backend
def _warm_up_library(backend):
  """Pays the once-per-process costs (runtime and thread pool start-up).

  Per-model costs stay in the figures: tf.function tracing, checkpoint I/O,
  scikit-learn's input validation.
  """
  if backend in TF_BACKENDS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.argmin(tf.matmul(tf.ones([64, 8]), tf.ones([8, 8])), axis=1).numpy()
  elif backend in SKLEARN_BACKENDS:
    from sklearn import cluster  # pylint: disable=g-import-not-at-top
    points = np.random.default_rng(0).normal(size=(64, 2))
    for model in (cluster.KMeans(2, n_init=1, max_iter=2, algorithm='lloyd'),
                  cluster.KMeans(2, n_init=1, max_iter=2, algorithm='elkan'),
                  cluster.MiniBatchKMeans(2, n_init=1, max_iter=2,
                                          batch_size=16)):
      model.fit(points).predict(points)


def run_backend(workload_name, backend, config, data_file=None):
  """Runs one backend on one workload in this process; returns its result.

  A streamed workload's points come from a `.npy` file (`data_file`, or
  one written here): the backends in STREAMING_BACKENDS read it through
  tf.data and never hold the array, the others load it before the fit.
  """
  workload = workload_of(workload_name, config)
  config = dict(config, k=workload.k)
  seed, spread = config['seed'], config['spread']
  streams = workload.streamed and backend in STREAMING_BACKENDS
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as tmp:
    if workload.streamed:
      if data_file is None:
        data_file = os.path.join(tmp, 'points.npy')
        write_blobs(workload, seed, spread, data_file)
      true_centers = _true_centers(workload, seed)
      points = None if streams else read_blobs(data_file, workload.d)
    else:
      points, true_centers = make_blobs(workload, seed, spread)
    data = data_file if streams else points
    if backend in TF_BACKENDS:
      _configure_tensorflow(config)
    _warm_up_library(backend)
    rss_before = _peak_rss_mb()
    if backend in ('kmeans_estimator', IN_MEMORY):
      # IN_MEMORY differs on streamed workloads only, where it gets `points`.
      result = run_kmeans_estimator(workload, data, config, mini_batch=False)
    elif backend == 'kmeans_estimator_minibatch':
      result = run_kmeans_estimator(workload, data, config, mini_batch=True)
    elif backend in ('kmeans_estimator_hamerly', 'kmeans_estimator_yinyang'):
      result = run_kmeans_estimator(workload, data, config, mini_batch=False,
                                    algorithm=backend.split('_')[-1])
    elif backend == 'kmeans_estimator_batched':
      result = run_kmeans_estimator(workload, data, config, mini_batch=False,
                                    full_batch_batches=INIT_BATCH)
    elif backend == 'kmeans_estimator_kmc2':
      result = run_kmeans_estimator(workload, data, config, mini_batch=False,
                                    initial_clusters='kmc2')
    elif backend == 'kmeans_estimator_parallel':
      result = run_kmeans_estimator(
          workload, data, config, mini_batch=False,
          initial_clusters='kmeans_parallel',
          algorithm='lloyd' if workload.streamed else 'hamerly')
    elif backend == 'kmeans_core':
      result = run_kmeans_core(workload, data, config)
    elif backend == 'sklearn_lloyd':
      result = run_sklearn_kmeans(workload, points, config, 'lloyd')
    elif backend == 'sklearn_elkan':
      result = run_sklearn_kmeans(workload, points, config, 'elkan')
    elif backend == 'sklearn_minibatch':
      result = run_sklearn_minibatch(workload, points, config)
    elif backend == FLOOR:
      result = run_gemm_floor(workload, points, true_centers, config)
    else:
      raise ValueError(f'`backend` must be one of {list(BACKENDS)}. '
                       f'Received: backend={backend!r}')
    # The backend's peak, before the inertia below reads the data again.
    peak_rss = _peak_rss_mb()
    centers = result.pop('centers')
    if (result.get('s_per_iter_steady') is not None and points is not None
        and backend in _FULL_BATCH + (IN_MEMORY,)):
      # The floor again, in this process right after the fit: its ratio to
      # the steady step is not moved by the machine's speed changing
      # between the floor's process and this one (seen: 10-30%).
      one_pass, _ = floor_pass(points, centers)
      result['floor_here_s'] = _median_time(one_pass, config['repeats'])
      if backend in ('kmeans_estimator', IN_MEMORY):
        # Lloyd steps and floor passes in turn (target 1).
        result.update(steps_vs_floor(workload, points, centers, config))
    if streams and backend == 'kmeans_estimator':
      # Streamed against in-memory steps in this one process (the others
      # streamed take the same Lloyd step over batches).
      result.update(streamed_vs_in_memory(workload, data_file, centers,
                                          config))
    blocks = (points if points is not None else
              _file_blocks(data_file, workload.d, _BLOCK_ROWS))
    result.update(
        workload=workload_name, backend=backend, status='ok', n=workload.n,
        streamed_input=streams, data_mb=workload.n * workload.d * 4 / 2**20,
        inertia=inertia(blocks, centers),
        predict_points_per_s=workload.n / result['predict_s'],
        rss_before_fit_mb=rss_before, peak_rss_mb=peak_rss)
  return result


def _run_worker(command, output):
  """Runs a worker process (`command`, this script with a worker flag) and
  returns the JSON it wrote to `output`; a failed worker raises
  RuntimeError with the end of its output."""
  env = dict(os.environ)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  process = subprocess.run(command, capture_output=True, text=True, env=env,
                           check=False)
  if process.returncode != 0 or not os.path.exists(output):
    tail = (process.stderr or process.stdout).strip().splitlines()[-15:]
    raise RuntimeError(f'worker exited with {process.returncode}:\n' +
                       '\n'.join(tail))
  with open(output) as f:
    return json.load(f)


def _run_isolated(workload_name, backend, config, data_file=None):
  """Runs `run_backend` in a fresh interpreter (for a per-backend peak RSS)."""
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as tmp:
    output = os.path.join(tmp, 'result.json')
    command = [
        sys.executable, os.path.abspath(__file__),
        f'--workloads={workload_name}', f'--backends={backend}',
        f'--max_iter={config["max_iter"]}', f'--seed={config["seed"]}',
        f'--spread={config["spread"]}',
        f'--batch_size={config["batch_size"]}',
        f'--repeats={config["repeats"]}', f'--worker_output={output}',
        f'--stream_batch={config.get("stream_batch") or STREAM_BATCH}',
        f'--tf32={_tf32_name(config.get("tf32"))}',
    ]
    if config.get('stream_points'):
      command.append(f'--stream_points={config["stream_points"]}')
    if data_file is not None:
      command.append(f'--data_file={data_file}')
    if config['kmeans_plus_plus_num_retries'] is not None:
      command.append('--kmeans_plus_plus_num_retries='
                     f'{config["kmeans_plus_plus_num_retries"]}')
    start = time.perf_counter()
    result = _run_worker(command, output)
    wall = time.perf_counter() - start
  result['process_wall_s'] = wall
  return result


# ----------------------------------------------------------------- report
def machine_description():
  """CPU model, cores, memory and library versions (no heavy imports)."""
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          cpu = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  memory_gb = None
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemTotal:'):
          memory_gb = round(int(line.split()[1]) / 1024**2, 1)
  except OSError:
    pass
  versions = {}
  for package in ('tensorflow', 'numpy', 'scikit-learn', 'kmeans_estimator',
                  'absl-py'):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  commit = None
  try:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = subprocess.run(['git', '-C', repo, 'rev-parse', '--short',
                             'HEAD'], capture_output=True, text=True,
                            check=True, timeout=10).stdout.strip()
    dirty = subprocess.run(['git', '-C', repo, 'status', '--porcelain'],
                           capture_output=True, text=True, check=True,
                           timeout=10).stdout.strip()
    commit += ' (uncommitted changes)' if dirty else ''
  except (OSError, subprocess.SubprocessError):
    pass
  return {
      'cpu': cpu,
      'cpu_count': os.cpu_count(),
      'usable_cores': (len(os.sched_getaffinity(0))
                       if hasattr(os, 'sched_getaffinity') else None),
      'memory_gb': memory_gb,
      'python': platform.python_version(),
      'platform': platform.platform(),
      'versions': versions,
      'git_commit': commit,
      'load_average': (list(os.getloadavg()) if hasattr(os, 'getloadavg')
                       else None),
  }


def add_ratios(results):
  """Adds each backend's ratios to sklearn Lloyd and to the GEMM floor.

  Full-batch backends that streamed their input also get their ratios to
  IN_MEMORY, the same Lloyd iterations on the same points held in memory.
  """
  by_key = {(r['workload'], r['backend']): r for r in results
            if r.get('status') == 'ok'}
  for result in by_key.values():
    reference = by_key.get((result['workload'], REFERENCE))
    floor = by_key.get((result['workload'], FLOOR))
    if reference:
      result['s_per_iter_vs_sklearn_lloyd'] = (result['s_per_iter'] /
                                               reference['s_per_iter'])
      result['fit_s_vs_sklearn_lloyd'] = result['fit_s'] / reference['fit_s']
      result['inertia_vs_sklearn_lloyd'] = (result['inertia'] /
                                            reference['inertia'])
    if floor:
      result['s_per_iter_vs_floor'] = result['s_per_iter'] / floor['s_per_iter']
    elkan = by_key.get((result['workload'], 'sklearn_elkan'))
    target = (elkan or reference or {}).get('inertia')
    if target is not None and result.get('loss_trace') is not None:
      # Time to quality: when the inertia first came within 1% of
      # scikit-learn's k-means++ result (the final centers count too).
      trace = result['loss_trace'] + [(result['fit_s'], result['inertia'])]
      reached = [t for t, loss in trace if loss <= 1.01 * target]
      result['time_to_1pct_s'] = reached[0] if reached else None
      if reached and elkan:
        result['time_to_1pct_vs_elkan_fit'] = reached[0] / elkan['fit_s']
    steady = result.get('s_per_iter_steady')
    if steady is not None and reference:
      result['steady_vs_sklearn_lloyd'] = steady / reference['s_per_iter']
    if steady is not None and floor:
      result['steady_vs_floor'] = steady / floor['s_per_iter']
    if steady is not None and result.get('floor_here_s'):
      result['steady_vs_floor_here'] = steady / result['floor_here_s']
    if result.get('floor_interleaved_s'):
      result['step_vs_floor_interleaved'] = (result['step_interleaved_s'] /
                                             result['floor_interleaved_s'])
    if result.get('in_memory_here_s'):
      result['stream_vs_in_memory_here'] = (result['stream_here_s'] /
                                            result['in_memory_here_s'])
    in_memory = by_key.get((result['workload'], IN_MEMORY))
    if (result.get('streamed_input') and in_memory and
        result['backend'] in _FULL_BATCH):
      result['s_per_iter_vs_in_memory'] = (result['s_per_iter'] /
                                           in_memory['s_per_iter'])
      if steady is not None and in_memory.get('s_per_iter_steady'):
        result['steady_vs_in_memory'] = (steady /
                                         in_memory['s_per_iter_steady'])
      cpu = result.get('cpu_s_per_iter_steady')
      if cpu is not None and in_memory.get('cpu_s_per_iter_steady'):
        result['cpu_steady_vs_in_memory'] = (
            cpu / in_memory['cpu_s_per_iter_steady'])


def _fmt(value, spec='.3g'):
  if value is None:
    return '-'
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return format(value, spec)


def _fmt_load(load):
  return '-' if not load else '/'.join(f'{x:.1f}' for x in load)


def _fmt_iters(result):
  iterations = result['iterations']
  return str(int(iterations)) if float(iterations).is_integer() else (
      f'{iterations:.3g}')


def _streaming_lines(results):
  """What streaming costs against the in-memory run, for a streamed workload.

  CPU s/iter is the process's CPU time (all threads) per steady iteration:
  the work streaming adds, less disturbed by other processes than wall time.
  """
  lines = []
  for r in results:
    if r.get('status') != 'ok' or not (r.get('streamed_input') or
                                       r['backend'] == IN_MEMORY):
      continue
    growth = r['peak_rss_mb'] - r['rss_before_fit_mb']
    if r['backend'] == IN_MEMORY:
      lines.append(
          f'- {IN_MEMORY} (the {r["data_mb"]:.3g} MB of points in memory, '
          f'loaded before the fit): peak RSS {r["peak_rss_mb"]:.0f} MB, '
          f'{growth:.0f} MB above the {r["rss_before_fit_mb"]:.0f} MB before '
          f'the fit; steady {_fmt(r.get("s_per_iter_steady"))} s/iter '
          f'({_fmt(r.get("cpu_s_per_iter_steady"))} CPU s/iter)')
      continue
    line = (f'- {r["backend"]} streamed ({r["data_mb"]:.3g} MB of points): '
            f'peak RSS {r["peak_rss_mb"]:.0f} MB, {growth:.0f} MB above the '
            f'{r["rss_before_fit_mb"]:.0f} MB before the fit; steady '
            f'{_fmt(r.get("s_per_iter_steady"))} s/iter '
            f'({_fmt(r.get("cpu_s_per_iter_steady"))} CPU s/iter)')
    if r.get('steady_vs_in_memory') is not None:
      line += (f', {r["steady_vs_in_memory"]:.2f}x the in-memory one (s/iter '
               f'{r["s_per_iter_vs_in_memory"]:.2f}x')
      if r.get('cpu_steady_vs_in_memory') is not None:
        line += f', CPU s/iter {r["cpu_steady_vs_in_memory"]:.2f}x'
      line += ')'
    if r.get('stream_vs_in_memory_here') is not None:
      line += (f'; timed in turn in its process, streamed steps '
               f'{_fmt(r["stream_here_s"])} s against in-memory ones '
               f'{_fmt(r["in_memory_here_s"])} s: '
               f'{r["stream_vs_in_memory_here"]:.2f}x')
    lines.append(line)
  return lines + [''] if lines else []


def markdown_report(report):
  """The report as markdown: machine, settings, one table per workload."""
  machine, config = report['machine'], report['config']
  retries = config.get('kmeans_plus_plus_num_retries')
  retries = ('1 + int(ln k) (as many candidates as scikit-learn)'
             if retries is None else retries)
  versions = ', '.join(f'{k} {v}' for k, v in machine['versions'].items()
                       if v)
  lines = [
      '# kmeans_estimator benchmark',
      '',
      f'- machine: {machine["cpu"]}, {machine["usable_cores"]} usable of '
      f'{machine["cpu_count"]} cores, {machine["memory_gb"]} GB; '
      f'Python {machine["python"]}, {machine["platform"]}',
      f'- versions: {versions}; git {machine["git_commit"]}',
      f'- run: {report["date"]}, max_iter={config["max_iter"]}, '
      f'seed={config["seed"]}, blob width '
      f'{SPREAD_WIDTH if config["spread"] else WIDTH}, '
      f'batch_size={config["batch_size"]}, repeats={config["repeats"]}, '
      f'tf32={_tf32_name(config.get("tf32"))} (GPU only), '
      'kmeans_estimator k-means++ retries '
      f'{retries}, total {report["total_wall_s"]:.0f} s; load average '
      f'{_fmt_load(machine.get("load_average_before"))} before, '
      f'{_fmt_load(machine.get("load_average"))} after (other processes '
      'on the machine disturb the timings)',
      '- peak RSS: ' + (
          'each backend ran in its own process, so it is that backend\'s '
          'peak (interpreter, libraries and data included; TensorFlow alone '
          'is several hundred MB).' if config['isolate'] else
          'all backends ran in ONE process and getrusage is monotone: each '
          'figure is the peak of everything run so far, not per backend.'),
      '- s/iter: iteration time / iterations, init excluded (epochs for '
      'mini-batch backends); fit s includes init; inertia: numpy float64 over '
      'all points; floor: one distance-product + argmin pass.',
      '',
  ]
  header = ('| backend | device | s/iter | iters | init s | fit s | inertia '
            '| inertia / sk-lloyd | predict pts/s | peak RSS MB (before fit) '
            '| s/iter / sk-lloyd | s/iter / floor |')
  for name in config['workloads']:
    workload = workload_of(name, config)
    lines += [f'## {name}: d={workload.d}, k={workload.k}, n={workload.n}'
              + (' (the TF backends but ' + IN_MEMORY + ' and the floor '
                 'stream a .npy file through tf.data in batches of '
                 f'{config.get("stream_batch") or STREAM_BATCH:,} points)'
                 if workload.streamed else ''),
              '', header, '|' + ' --- |' * (header.count('|') - 1)]
    for result in report['results']:
      if result['workload'] != name:
        continue
      if result.get('status') != 'ok':
        lines.append(f'| {result["backend"]} | {result["status"]}: '
                     f'{result.get("message", "")[:80]} |' + ' |' * 10)
        continue
      lines.append(
          f'| {result["backend"]} | {result.get("device", "-")} '
          f'| {_fmt(result["s_per_iter"])} | {_fmt_iters(result)} '
          f'| {_fmt(result["init_s"])} | {_fmt(result["fit_s"])} '
          f'| {_fmt(result["inertia"], ".6g")} '
          f'| {_fmt(result.get("inertia_vs_sklearn_lloyd"), ".4f")} '
          f'| {_fmt(result["predict_points_per_s"])} '
          f'| {_fmt(result["peak_rss_mb"], ".0f")} '
          f'({_fmt(result["rss_before_fit_mb"], ".0f")}) '
          f'| {_fmt(result.get("s_per_iter_vs_sklearn_lloyd"))} '
          f'| {_fmt(result.get("s_per_iter_vs_floor"))} |')
    lines.append('')
    if workload.streamed:
      lines += _streaming_lines([r for r in report['results']
                                 if r['workload'] == name])
  diagnostics = [r for r in report['results'] if r.get('status') == 'ok' and
                 r.get('s_per_iter_steady') is not None]
  if diagnostics:
    lines += ['## Where kmeans_estimator\'s time goes', '',
              '| workload | backend | init s | first step s | steady s/iter '
              '| steady / sk-lloyd | steady / floor '
              '| steady / floor here (in turn) | steady / in-memory (here) '
              '| other s | predict first s '
              '| floor / predict s (per point) '
              '| to 1% of sk inertia s (/ elkan fit) | traces |',
              '|' + ' --- |' * 14]
    for r in diagnostics:
      traces = ', '.join(f'{k}={v}' for k, v in r.get('traces', {}).items())
      lines.append(
          f'| {r["workload"]} | {r["backend"]} | {_fmt(r["init_s"])} '
          f'| {_fmt(r.get("first_step_s"))} '
          f'| {_fmt(r["s_per_iter_steady"])} '
          f'| {_fmt(r.get("steady_vs_sklearn_lloyd"))} '
          f'| {_fmt(r.get("steady_vs_floor"))} '
          f'| {_fmt(r.get("steady_vs_floor_here"))}'
          + (f' (in turn {_fmt(r["step_vs_floor_interleaved"])})'
             if r.get('step_vs_floor_interleaved') is not None else '') +
          ' '
          f'| {_fmt(r.get("steady_vs_in_memory"))}'
          + (f' (here {_fmt(r["stream_vs_in_memory_here"])})'
             if r.get('stream_vs_in_memory_here') is not None else '') +
          f' | {_fmt(r.get("other_s"))} '
          f'| {_fmt(r.get("predict_first_s"))} '
          f'| {_fmt(r.get("predict_vs_floor_interleaved"))} '
          f'({_fmt(r.get("predict_cluster_index_vs_floor_interleaved"))}) '
          f'| {_fmt(r.get("time_to_1pct_s"))} '
          f'({_fmt(r.get("time_to_1pct_vs_elkan_fit"))}) | {traces} |')
    lines += ['', 'init: from the start of the fit to the first step '
              '(k-means++ and its tracing, reading the input); first step: '
              'tf.function tracing included; steady: median step time after '
              'it, per iteration (epoch); steady / floor here: over the '
              'floor measured again in the same process right after the '
              'fit (with its final centers), which machine-speed drift '
              'between processes does not move (in turn: Lloyd steps from '
              'the fit\'s centers and floor passes timed round after round, '
              'which drift during the run does not move either); '
              'steady / in-memory: a streamed '
              f'backend\'s steady time over {IN_MEMORY}\'s on the same points '
              '(here: streamed and in-memory steps from the fit\'s centers, '
              'timed in turn in the streamed backend\'s process); '
              'other: the rest of the fit '
              '(checkpoint, summaries, end of input); floor / predict: the '
              'floor pass\'s median seconds over predict\'s (and over the '
              'per-point predict_cluster_index\'s), the three run in turn in '
              'the same process (in-memory workloads): the assignment rate '
              'as a fraction of the floor\'s; to 1%: seconds from '
              'the start of the fit until the inertia came within 1% of '
              'scikit-learn Elkan\'s k-means++ result, and that over '
              'Elkan\'s whole fit time; traces: tf.function traces per '
              'compiled function.', '']
  return '\n'.join(lines)


# ------------------------------------------------------------ call memory
# The calls whose peak RSS `call_memory` measures; each consumes what the
# call returns (a generator to its end) and keeps none of it.
RSS_CALLS = ('predict_cluster_index', 'evaluate', 'predict',
             'predict_batched', 'predict_batches', 'transform',
             'train_lloyd', 'train_hamerly')
RSS_POINTS = (1_000_000, 5_000_000)
# Rows of `predict_batched`'s batch_size.
RSS_BATCH = 65536
# Rows of the warm-up call that traces each call before its peak is taken.
_WARM_UP_ROWS = 1000


def _rss_kb(field):
  """VmRSS or VmHWM of this process in KiB, from /proc (None elsewhere)."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith(field + ':'):
          return int(line.split()[1])
  except OSError:
    pass
  return None


def _reset_peak_rss():
  """Resets VmHWM to the current RSS (Linux: clear_refs 5); whether it
  could (elsewhere the peak stays the process's peak so far)."""
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')
  except OSError:
    return False
  return True


def _run_call(call, estimator, points, k):
  """Runs `call` on `points`, consuming its generator without keeping it."""
  import collections  # pylint: disable=g-import-not-at-top
  import kmeans_estimator  # pylint: disable=g-import-not-at-top
  drain = collections.deque(maxlen=0).extend
  if call == 'predict_cluster_index':
    drain(estimator.predict_cluster_index(points))
  elif call == 'evaluate':
    estimator.evaluate(points)
  elif call == 'predict':  # The default keys, all_distances among them.
    drain(estimator.predict(points))
  elif call == 'predict_batched':
    drain(estimator.predict(points, batch_size=RSS_BATCH))
  elif call == 'predict_batches':  # One dict holding every point's index.
    drain(estimator.predict(points, predict_keys=['cluster_index'],
                            yield_single_examples=False))
  elif call == 'transform':
    drain(estimator.transform(points))
  elif call in ('train_lloyd', 'train_hamerly'):
    centers = estimator.cluster_centers()
    with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as tmp:
      kmeans_estimator.KMeansClustering(
          num_clusters=k, model_dir=tmp, initial_clusters=centers,
          use_mini_batch=False, seed=0,
          algorithm=call[len('train_'):]).train(points, steps=2)
  else:
    raise ValueError(f'`call` must be one of {list(RSS_CALLS)}. Received: '
                     f'call={call!r}')


def measure_call(call, data_file, model_dir, k):
  """Peak RSS of one call over the RSS just before it, in this process.

  The points are loaded whole from `data_file` (the caller's array), the
  model restored from `model_dir`, and an inference call run once on the
  first rows, so that tracing and restoring are done (a training call
  builds a new estimator and is not warmed up); the peak is then reset
  (where Linux lets it be) and the call run on all the points.

  Returns:
    dict: 'rss_before_mb' (data loaded, warmed up), 'peak_mb', 'growth_mb'
    (peak - before, at least 0) and 'bytes_per_point' (growth / n), 'data_mb', 'n',
    'seconds'.
  """
  import kmeans_estimator  # pylint: disable=g-import-not-at-top
  points = np.load(data_file, allow_pickle=False)
  estimator = kmeans_estimator.KMeansClustering(
      num_clusters=k, model_dir=model_dir, use_mini_batch=False, seed=0)
  if not call.startswith('train_'):
    # (Training builds an estimator of its own, traced anew.)
    _run_call(call, estimator, points[:_WARM_UP_ROWS].copy(), k)
  reset = _reset_peak_rss()
  before_kb = _rss_kb('VmRSS') if reset else None
  if before_kb is None:
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  start = time.perf_counter()
  _run_call(call, estimator, points, k)
  seconds = time.perf_counter() - start
  peak_kb = _rss_kb('VmHWM') if reset else None
  if peak_kb is None:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  # Linux keeps RSS counters per thread and folds them in batches, so the
  # peak can read a fraction of a MB below the RSS read before the call;
  # such a call grew by nothing.
  growth = max(0.0, (peak_kb - before_kb) / 1024.0)
  peak_kb = max(peak_kb, before_kb)
  return {'call': call, 'n': int(len(points)), 'k': k,
          'd': int(points.shape[1]), 'data_mb': points.nbytes / 2**20,
          'rss_before_mb': before_kb / 1024.0, 'peak_mb': peak_kb / 1024.0,
          'growth_mb': growth,
          'bytes_per_point': growth * 2**20 / len(points),
          'peak_reset': reset, 'seconds': seconds}


def _measure_call_isolated(call, data_file, model_dir, k):
  """`measure_call` in a fresh interpreter."""
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as tmp:
    output = os.path.join(tmp, 'result.json')
    command = [sys.executable, os.path.abspath(__file__),
               f'--rss_worker={call}', f'--data_file={data_file}',
               f'--model_dir={model_dir}', f'--rss_k={k}',
               f'--worker_output={output}']
    return _run_worker(command, output)


def call_memory(points=RSS_POINTS, calls=RSS_CALLS, d=32, k=16, seed=0,
                out_dir=None, isolate=True, verbose=True):
  """Peak RSS of each call over its input, for each n: flat when the call
  holds O(chunk) beyond its input and output.

  The points are `make_blobs`' (width 20, k blobs), written once per n to a
  `.npy`; the model is k-means fitted on max(20,000, k) such points (3
  Lloyd steps from random centers: the figures do not depend on its
  quality). Each (n, call) runs in a fresh process
  (`isolate`), which loads the array, warms the call up on its first rows,
  and then reports the peak RSS of the call on all of them over the RSS
  just before it (`measure_call`).

  Returns:
    dict with 'machine', 'config', 'date', 'results' (one dict per (n,
    call), or with 'status': 'error' and its message) and 'markdown'.
  """
  import kmeans_estimator  # pylint: disable=g-import-not-at-top
  points, calls = [int(n) for n in points], list(calls)
  unknown = [call for call in calls if call not in RSS_CALLS]
  if unknown or not calls:
    raise ValueError(f'`calls` must be among {list(RSS_CALLS)}. Received: '
                     f'calls={calls!r}')
  results = []
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_rss_') as tmp:
    model_dir = os.path.join(tmp, 'model')
    sample = make_blobs(Workload('rss', d=d, k=k, n=max(20_000, k)),
                        seed)[0]
    kmeans_estimator.KMeansClustering(
        num_clusters=k, model_dir=model_dir, use_mini_batch=False,
        initial_clusters='random', seed=seed).train(sample, steps=3)
    for n in points:
      data_file = os.path.join(tmp, f'points_{n}.npy')
      write_blobs(Workload('rss', d=d, k=k, n=n), seed, False, data_file)
      for call in calls:
        try:
          result = (_measure_call_isolated(call, data_file, model_dir, k)
                    if isolate else measure_call(call, data_file, model_dir,
                                                 k))
          result['status'] = 'ok'
        except Exception as error:  # pylint: disable=broad-except
          result = {'call': call, 'n': n, 'k': k, 'd': d, 'status': 'error',
                    'message': f'{type(error).__name__}: {error}'}
        if verbose:
          print(_rss_line(result), flush=True)
        results.append(result)
      os.remove(data_file)
  report = {'machine': machine_description(),
            'config': {'points': points, 'calls': calls, 'd': d, 'k': k,
                       'seed': seed, 'isolate': isolate},
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            'results': results}
  report['markdown'] = rss_markdown(report)
  _write_report(report, out_dir, 'call_memory', verbose)
  return report


def _rss_line(result):
  if result['status'] != 'ok':
    return (f'{result["call"]:<22} n={result["n"]:,}: {result["status"]}: '
            f'{result["message"]}')
  return (f'{result["call"]:<22} n={result["n"]:,}: peak '
          f'{result["growth_mb"]:.0f} MB over {result["rss_before_mb"]:.0f} '
          f'MB ({result["bytes_per_point"]:.0f} B/point), '
          f'{result["seconds"]:.1f} s')


def rss_markdown(report):
  """`call_memory`'s report: one row per call, one column per n."""
  config, machine = report['config'], report['machine']
  points = config['points']
  lines = [
      '# kmeans_estimator peak RSS per call',
      '',
      f'- machine: {machine["cpu"]}, {machine["memory_gb"]} GB; git '
      f'{machine["git_commit"]}; run {report["date"]}',
      f'- d={config["d"]}, k={config["k"]}, float32 points loaded whole '
      f'({", ".join(f"{n:,}" for n in points)} points); each call in '
      + ('its own process' if config['isolate'] else 'this process') +
      ', warmed up on its first rows; figure: peak RSS of the call over the '
      'RSS just before it, MB (bytes per point)',
      '',
      '| call | ' + ' | '.join(f'n={n:,}' for n in points) + ' |',
      '| --- |' + ' --- |' * len(points),
  ]
  by_key = {(r['call'], r['n']): r for r in report['results']}
  for call in config['calls']:
    cells = []
    for n in points:
      result = by_key.get((call, n))
      if result is None or result['status'] != 'ok':
        cells.append('error' if result else '')
      else:
        cells.append(f'{result["growth_mb"]:.0f} '
                     f'({result["bytes_per_point"]:.0f})')
    lines.append(f'| {call} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


# ---------------------------------------------------------------- latency
LATENCY = 'latency'
# The latency workload's data sizes (WORKLOADS names): 500 x 2 with k = 5 and
# 10,000 x 20 with k = 20.
LATENCY_SIZES = ('tiny', 'small')
# The size on which the per-step cost of a long `train` call is measured.
PER_STEP_SIZE = 'tiny'
LATENCY_STEPS = 20
LATENCY_LONG_STEPS = 1000
# The choose-k loop: one fresh estimator per k.
CHOOSE_K = tuple(range(2, 11))
PREDICT_POINTS = 500
LATENCY_REPEATS = 3
LATENCY_MEASUREMENTS = ('first_fit', 'second_fit', 'choose_k', 'predict',
                        'per_step')
# The latency backends, each measured in processes of its own.
LATENCY_BACKENDS = ('kmeans_estimator', 'sklearn', 'legacy')
LEGACY_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             'legacy_latency.py')
# (measurement, size or None for every size, what the figure is compared
# with, limit): 'sklearn' and 'legacy' bound the ratio ours / theirs,
# 'absolute' bounds our figure in seconds. Reported, never asserted.
LATENCY_TARGETS = (
    ('first_fit', None, 'legacy', 1.0),
    ('second_fit', None, 'sklearn', 10.0),
    ('choose_k', 'tiny', 'sklearn', 15.0),
    ('choose_k', 'small', 'sklearn', 3.0),
    ('predict', None, 'sklearn', 50.0),
    ('per_step', None, 'absolute', 0.2e-3),
)
# Measurements reported in milliseconds (the others in seconds).
_LATENCY_MS = ('predict', 'per_step')


def _latency_estimator(k, model_dir, config):
  """The latency workload's estimator: full batch from k-means++."""
  import kmeans_estimator  # pylint: disable=g-import-not-at-top
  estimator_class = kmeans_estimator.KMeansClustering
  return estimator_class(
      num_clusters=k, model_dir=model_dir,
      initial_clusters=estimator_class.KMEANS_PLUS_PLUS_INIT,
      use_mini_batch=False, seed=config['seed'],
      kmeans_plus_plus_num_retries=config['kmeans_plus_plus_num_retries'])


def _sklearn_latency_kmeans(k, config, max_iter=None):
  """scikit-learn's counterpart: k-means++, one init, Lloyd, tol=0 (which
  still stops at strict convergence)."""
  from sklearn import cluster  # pylint: disable=g-import-not-at-top
  return cluster.KMeans(n_clusters=k, init='k-means++', n_init=1,
                        max_iter=max_iter or config['steps'], tol=0.0,
                        algorithm='lloyd', random_state=config['seed'])


def latency_process_config(size, config):
  """The settings of one latency process on `size` (JSON-able): those of
  `config` with the size's k, the per-step steps (0 but on PER_STEP_SIZE)
  and the k-means++ retries resolved."""
  workload = WORKLOADS[size]
  return {
      'size': size, 'k': workload.k, 'steps': config['steps'],
      'long_steps': (config['long_steps'] if size == PER_STEP_SIZE else 0),
      'choose_k': list(config['choose_k']),
      'predict_points': config['predict_points'],
      'repeats': config['repeats'], 'seed': config['seed'],
      'kmeans_plus_plus_num_retries': kmeans_plus_plus_retries(
          workload.k, config['kmeans_plus_plus_num_retries'])}


def _median_of(times):
  return float(np.median(times)) if times else None


def _repeat_times(fn, repeats, min_total_s=0.2, max_calls=1000):
  """The seconds that each call of `fn` (a callable returning the seconds
  it measured) took: at least `repeats` calls, and fast calls repeated
  until `min_total_s` has passed (at most `max_calls`), so that a median of
  millisecond calls does not rest on a few of them."""
  times = []
  while len(times) < repeats or (sum(times) < min_total_s and
                                 len(times) < max_calls):
    times.append(float(fn()))
  return times


def latency_worker(backend, config):
  """The latency measurements of `backend` in this process, which must be
  fresh (its first fit is measured first).

  `config` is `latency_process_config`'s. The points are made and the
  library imported (TensorFlow with kmeans_estimator, or scikit-learn)
  before any clock starts. benchmarks/legacy_latency.py measures the legacy
  estimator in the same way. Medians are over `_repeat_times`' calls (at
  least `repeats`).

  - first_fit_s: constructing the process's first estimator and its
    `train(x, steps)` (scikit-learn: constructing and fitting its first
    KMeans);
  - second_fit_s: the median over fresh estimators (each its own
    model_dir) fitted the same way;
  - choose_k_s: the median over loops of fresh estimators, one per k of
    `choose_k`;
  - predict_s: the median over calls of
    `list(predict_cluster_index(x[:predict_points]))`, each on a new
    estimator over the first fit's model_dir (constructed untimed), after
    one untimed such call (scikit-learn: `predict` of its first model);
  - per_step_s (when `long_steps`): a fresh estimator fitted with
    `train(x, steps)`, then the median over its calls of
    `train(x, steps=long_steps)`, over long_steps (scikit-learn: fits with
    max_iter=long_steps over their n_iter_, few: they stop at strict
    convergence; 'per_step_iterations' has them). None otherwise.

  Returns:
    dict of those, with 'times' (every timed call) and 'status': 'ok'.
  """
  workload = WORKLOADS[config['size']]
  points, _ = make_blobs(workload, config['seed'])
  predict_points = points[:config['predict_points']]
  steps, repeats, k = config['steps'], config['repeats'], config['k']
  long_steps = config['long_steps']
  iterations = []
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as tmp:
    if backend == 'kmeans_estimator':
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
      import kmeans_estimator  # pylint: disable=g-import-not-at-top,unused-import
      counter = iter(range(1 << 30))

      def fit(num_clusters):
        estimator = _latency_estimator(
            num_clusters, os.path.join(tmp, f'model_{next(counter)}'),
            config)
        estimator.train(points, steps=steps)
        return estimator

      def predictor(fitted):
        estimator = _latency_estimator(k, fitted.model_dir, config)
        return lambda: list(estimator.predict_cluster_index(predict_points))

      def long_fit():
        estimator = fit(k)

        def once():
          start = time.perf_counter()
          estimator.train(points, steps=long_steps)
          iterations.append(long_steps)
          return time.perf_counter() - start
        return once
    elif backend == 'sklearn':
      from sklearn import cluster  # pylint: disable=g-import-not-at-top,unused-import

      def fit(num_clusters):
        return _sklearn_latency_kmeans(num_clusters, config).fit(points)

      def predictor(fitted):
        return lambda: fitted.predict(predict_points)

      def long_fit():
        def once():
          start = time.perf_counter()
          model = _sklearn_latency_kmeans(k, config, long_steps).fit(points)
          seconds = time.perf_counter() - start
          iterations.append(max(int(model.n_iter_), 1))
          return seconds
        return once
    else:
      raise ValueError('`backend` must be kmeans_estimator or sklearn. '
                       f'Received: backend={backend!r}')

    def timed(fn):
      start = time.perf_counter()
      fn()
      return time.perf_counter() - start

    def predict_once():
      predict = predictor(first)
      start = time.perf_counter()
      indices = predict()
      seconds = time.perf_counter() - start
      if len(indices) != len(predict_points):
        raise RuntimeError(f'{backend} predicted {len(indices)} indices for '
                           f'{len(predict_points)} points')
      return seconds

    start = time.perf_counter()
    first = fit(k)
    first_fit_s = time.perf_counter() - start
    times = {
        'second_fit_s': _repeat_times(lambda: timed(lambda: fit(k)),
                                      repeats),
        'choose_k_s': _repeat_times(
            lambda: timed(lambda: [fit(j) for j in config['choose_k']]),
            repeats)}
    predict_once()  # Warm-up.
    times['predict_s'] = _repeat_times(predict_once, repeats)
    # Whole calls are repeated, then each divided by its iterations.
    times['per_step_s'] = [
        seconds / count for seconds, count in zip(
            _repeat_times(long_fit(), repeats) if long_steps else [],
            iterations)]
  return {'status': 'ok', 'first_fit_s': first_fit_s,
          **{name: _median_of(values) for name, values in times.items()},
          'per_step_iterations': iterations, 'times': times}


def _latency_process(command, env, what):
  """Runs a latency process that prints its result as the last line of
  JSON on stdout: that dict, or {'status': 'error', 'message'} (never
  raises for what the process does)."""
  try:
    process = subprocess.run(command, capture_output=True, text=True,
                             env=env, check=False)
  except OSError as error:
    return {'status': 'error', 'message': f'cannot run {what}: {error}'}
  lines = process.stdout.strip().splitlines()
  if process.returncode != 0 or not lines:
    tail = (process.stderr or process.stdout).strip().splitlines()[-5:]
    return {'status': 'error',
            'message': f'{what} exited with {process.returncode}: '
                       + ' / '.join(tail)}
  try:
    result = json.loads(lines[-1])
    for measurement in LATENCY_MEASUREMENTS:
      value = result[f'{measurement}_s']
      if value is not None and (isinstance(value, bool) or
                                not isinstance(value, (int, float))):
        raise TypeError(f'{measurement}_s is {value!r}')
  except (ValueError, KeyError, TypeError) as error:
    return {'status': 'error',
            'message': f'{what} printed no latency JSON '
                       f'({type(error).__name__}: {error}): {lines[-1][:200]}'}
  result['status'] = 'ok'
  return result


def run_latency_worker(backend, size, config):
  """`latency_worker` in a fresh interpreter running this script (for
  scikit-learn with OMP_NUM_THREADS set to config['sklearn_threads'] when
  that is not None)."""
  command = [sys.executable, os.path.abspath(__file__),
             f'--latency_worker={backend}',
             '--latency_config=' + json.dumps(latency_process_config(size,
                                                                     config))]
  env = dict(os.environ)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  if backend == 'sklearn' and config.get('sklearn_threads') is not None:
    env['OMP_NUM_THREADS'] = str(config['sklearn_threads'])
  return _latency_process(command, env, f'the {backend} latency worker')


def run_legacy_latency(legacy_python, size, config, tmp):
  """LEGACY_SCRIPT on `size` in the interpreter `legacy_python`.

  The points go to a `.npy` file in `tmp` (the values this script makes);
  the script runs in a fresh process, without this process's PYTHONPATH,
  and prints its measurements (those of `latency_worker`) as one line of
  JSON.

  Returns:
    its dict with 'status': 'ok', or {'status': 'error', 'message'}.
  """
  data = os.path.join(tmp, f'legacy_{size}.npy')
  np.save(data, make_blobs(WORKLOADS[size], config['seed'])[0])
  env = {name: value for name, value in os.environ.items()
         if name != 'PYTHONPATH'}
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  legacy_python = os.path.expanduser(legacy_python)
  command = [legacy_python, LEGACY_SCRIPT,
             json.dumps(dict(latency_process_config(size, config),
                             data=data))]
  return _latency_process(command, env, legacy_python)


def _target_of(measurement, size):
  for target in LATENCY_TARGETS:
    if target[0] == measurement and target[1] in (None, size):
      return target
  return None


def _target_text(measurement, reference, limit):
  if reference == 'absolute':
    if measurement in _LATENCY_MS:
      return f'<= {limit * 1e3:g} ms' + (
          '/step' if measurement == 'per_step' else '')
    return f'<= {limit:g} s'
  if reference == 'legacy' and limit == 1.0:
    return '<= legacy'
  return f'<= {limit:g}x {reference}'


def latency_rows(sizes, results):
  """The report's rows: each measurement's figures, ratios and target.

  Args:
    sizes: WORKLOADS names.
    results: {size: {backend: its process's dict, or None when not run}}
      for the backends of LATENCY_BACKENDS.

  Returns:
    list of dicts: 'size', 'measurement', 'ours_s', 'sklearn_s',
    'legacy_s' (None when not measured), 'vs_sklearn', 'vs_legacy' (ours /
    theirs), 'target' (its text, or None) and 'met' (True, False, or None
    when a figure it needs was not measured).
  """
  rows = []
  for size in sizes:
    figures = {}
    for backend in LATENCY_BACKENDS:
      result = results[size].get(backend) or {}
      figures[backend] = result if result.get('status') == 'ok' else {}
    for measurement in LATENCY_MEASUREMENTS:
      key = f'{measurement}_s'
      ours = figures['kmeans_estimator'].get(key)
      sklearn = figures['sklearn'].get(key)
      legacy = figures['legacy'].get(key)
      if ours is None and sklearn is None and legacy is None:
        continue  # Not measured on this size (per_step), or errors only.
      row = {'size': size, 'measurement': measurement, 'ours_s': ours,
             'sklearn_s': sklearn, 'legacy_s': legacy,
             'vs_sklearn': ours / sklearn if ours and sklearn else None,
             'vs_legacy': ours / legacy if ours and legacy else None,
             'target': None, 'met': None}
      target = _target_of(measurement, size)
      if target is not None:
        _, _, reference, limit = target
        row['target'] = _target_text(measurement, reference, limit)
        value = ours if reference == 'absolute' else row[f'vs_{reference}']
        row['met'] = None if value is None else bool(value <= limit)
      rows.append(row)
  return rows


def latency(sizes=LATENCY_SIZES, steps=LATENCY_STEPS,
            long_steps=LATENCY_LONG_STEPS, choose_k=CHOOSE_K,
            predict_points=PREDICT_POINTS, repeats=LATENCY_REPEATS, seed=0,
            kmeans_plus_plus_num_retries=None, legacy_python=None,
            sklearn_threads=None, out_dir=None, verbose=True):
  """The latency workload: what small fits and calls cost, side by side.

  On each size of `sizes` (WORKLOADS names; blobs, float32), full-batch
  `KMeansClustering` from k-means++ given the array (`train(x, steps)`),
  scikit-learn's `KMeans(init='k-means++', n_init=1, max_iter=steps,
  tol=0)` and, with `legacy_python`, the legacy TF 2.15 estimator each run
  in a fresh process of their own per size, which measures its first fit
  first, then the second estimator's fit, the choose-k loop, predict on a
  new estimator and (on PER_STEP_SIZE) the per-step cost of
  `train(x, steps=long_steps)` (`latency_worker`; LEGACY_SCRIPT for the
  legacy estimator, in that interpreter). scikit-learn runs in a process
  without TensorFlow: its OpenMP loops are slowed by TensorFlow's thread
  pools in the same process. The ratios therefore compare processes run
  one after the other. The report gives each figure beside its target
  (LATENCY_TARGETS) and whether it is met; nothing is asserted.

  Args:
    sizes: in-memory WORKLOADS names.
    steps: steps of every fit (scikit-learn's max_iter).
    long_steps: steps of the per-step measurement; 0 skips it.
    choose_k: the k of the choose-k loop.
    predict_points: the first this many points are predicted.
    repeats: timed repeats of the measurements after the first fit
      (median).
    seed: seed of the data and of every estimator.
    kmeans_plus_plus_num_retries: kmeans_estimator's (and the legacy
      estimator's) k-means++ retries; None draws as many candidates per
      center as scikit-learn.
    legacy_python: path of a Python interpreter with TensorFlow 2.15 and
      tensorflow-estimator 2.15, or None (the legacy column then says it
      was not run).
    sklearn_threads: OpenMP threads of scikit-learn's process
      (OMP_NUM_THREADS), or None for its default (one per core). On a
      machine whose cores other processes keep busy, its OpenMP loops can
      wait for a descheduled thread at every barrier; one thread avoids
      that.
    out_dir: where `latency.md` and `latency.json` go; None writes nothing.
    verbose: print progress and the table.

  Returns:
    dict with 'machine', 'config', 'date', 'total_wall_s', 'results'
    ({size: {backend: dict or None}}), 'rows' (`latency_rows`) and
    'markdown'.
  """
  sizes = list(sizes)
  in_memory = [w for w in WORKLOADS if not WORKLOADS[w].streamed]
  if not sizes or any(size not in in_memory for size in sizes):
    raise ValueError(f'`sizes` must be among {in_memory}. Received: '
                     f'sizes={sizes!r}')
  counts = [('steps', steps, 1), ('repeats', repeats, 1),
            ('predict_points', predict_points, 1),
            ('long_steps', long_steps, 0)]
  if sklearn_threads is not None:
    counts.append(('sklearn_threads', sklearn_threads, 1))
  for name, value, least in counts:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
      raise ValueError(f'`{name}` must be an integer >= {least}. Received: '
                       f'{name}={value!r}')
  choose_k = list(choose_k)
  if not choose_k or any(isinstance(k, bool) or not isinstance(k, int) or
                         k < 1 for k in choose_k):
    raise ValueError('`choose_k` must be positive integers. Received: '
                     f'choose_k={choose_k!r}')
  config = {'sizes': sizes, 'steps': steps, 'long_steps': long_steps,
            'choose_k': choose_k, 'predict_points': predict_points,
            'repeats': repeats, 'seed': seed,
            'kmeans_plus_plus_num_retries': kmeans_plus_plus_num_retries,
            'legacy_python': legacy_python,
            'sklearn_threads': sklearn_threads}
  have_sklearn = sklearn_available()
  if not have_sklearn and verbose:
    print('scikit-learn is not installed: its column stays empty '
          "(pip install 'kmeans_estimator[benchmark]').")
  load_before = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
  start = time.perf_counter()
  results = {}
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_latency_') as tmp:
    for size in sizes:
      results[size] = {
          'kmeans_estimator': run_latency_worker('kmeans_estimator', size,
                                                 config),
          'sklearn': (run_latency_worker('sklearn', size, config)
                      if have_sklearn else None),
          'legacy': (run_legacy_latency(legacy_python, size, config, tmp)
                     if legacy_python is not None else None)}
      if verbose:
        for backend, result in results[size].items():
          if result is not None:
            print(f'{size:>7} {backend:<17} ' + (
                ', '.join(f'{m} {_fmt(result.get(m + "_s"))} s'
                          for m in LATENCY_MEASUREMENTS)
                if result['status'] == 'ok' else
                f'error: {result["message"]}'), flush=True)
  machine = machine_description()
  machine['load_average_before'] = load_before
  report = {
      'machine': machine, 'config': config,
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'total_wall_s': time.perf_counter() - start,
      'results': results, 'rows': latency_rows(sizes, results)}
  report['markdown'] = latency_markdown(report)
  _write_report(report, out_dir, 'latency', verbose)
  return report


_MEASUREMENT_LABELS = {
    'first_fit': 'first fit, fresh process (import excluded)',
    'second_fit': 'second estimator\'s fit',
    'choose_k': 'choose-k loop',
    'predict': 'predict_cluster_index, new estimator',
    'per_step': 'train(x, steps={long_steps}), per step',
}


def _latency_cell(seconds, measurement):
  if seconds is None:
    return '-'
  if measurement in _LATENCY_MS:
    return f'{_fmt(seconds * 1e3)} ms'
  return f'{_fmt(seconds)} s'


def _latency_status_lines(report):
  """The legacy line, and a line per process that failed."""
  config, results = report['config'], report['results']
  legacy = [r['legacy'] for r in results.values()
            if r.get('legacy') is not None]
  if config['legacy_python'] is None:
    lines = ['- legacy: not run (pass --legacy_python)']
  else:
    versions = sorted({f'TensorFlow {r["tensorflow"]}, numpy {r["numpy"]}, '
                       f'Python {r["python"]}' for r in legacy
                       if r['status'] == 'ok' and 'tensorflow' in r})
    lines = ['- legacy: `tf.compat.v1.estimator.experimental.KMeans` ('
             f'{"; ".join(versions) or "versions unknown"}) in '
             f'`{config["legacy_python"]}`, the same settings, '
             '`train(input_fn, steps)` reading the whole array at every '
             'step, `predict_cluster_index(input_fn)` (benchmarks/'
             'legacy_latency.py)']
  for size, by_backend in results.items():
    for backend, result in by_backend.items():
      if result is not None and result['status'] != 'ok':
        lines.append(f'- {backend} on {size}: error: {result["message"]}')
  return lines


def latency_markdown(report):
  """The latency report as markdown: settings and one table of rows."""
  machine, config = report['machine'], report['config']
  retries = config['kmeans_plus_plus_num_retries']
  retries = ('1 + int(ln k) (as many candidates as scikit-learn)'
             if retries is None else retries)
  choose_k = config['choose_k']
  versions = ', '.join(f'{k} {v}' for k, v in machine['versions'].items()
                       if v)
  lines = [
      '# kmeans_estimator latency',
      '',
      f'- machine: {machine["cpu"]}, {machine["usable_cores"]} usable of '
      f'{machine["cpu_count"]} cores, {machine["memory_gb"]} GB; '
      f'Python {machine["python"]}, {machine["platform"]}',
      f'- versions: {versions}; git {machine["git_commit"]}',
      f'- run: {report["date"]}, total {report["total_wall_s"]:.0f} s; '
      f'load average {_fmt_load(machine.get("load_average_before"))} '
      f'before, {_fmt_load(machine.get("load_average"))} after',
      '- kmeans_estimator: `KMeansClustering(use_mini_batch=False, '
      'initial_clusters=KMEANS_PLUS_PLUS_INIT)`, `train(x, '
      f'steps={config["steps"]})` given the float32 array; k-means++ '
      f'retries {retries}',
      '- scikit-learn: `KMeans(init=\'k-means++\', n_init=1, '
      f'max_iter={config["steps"]}, tol=0, algorithm=\'lloyd\')` (tol=0 '
      'still stops at strict convergence), `predict`; OpenMP threads: '
      + (f'{config["sklearn_threads"]} (OMP_NUM_THREADS)'
         if config.get('sklearn_threads') is not None else
         'its default (one per core)'),
      *_latency_status_lines(report),
      '- each backend in a fresh process per size: the library imported and '
      'the data made before any clock starts, the first fit timed first; '
      f'then medians of at least {config["repeats"]} calls (fast ones '
      'repeated for 0.2 s): fresh estimators '
      '(second fit), the choose-k loop over fresh estimators for k = '
      f'{choose_k[0]}..{choose_k[-1]} ({len(choose_k)} fits), '
      f'predict of the first {config["predict_points"]} points on a new '
      'estimator over the first fit\'s model_dir (constructed untimed; one '
      'untimed call first), and on '
      f'{WORKLOADS[PER_STEP_SIZE].n:,} x {WORKLOADS[PER_STEP_SIZE].d} '
      f'`train(x, steps={config["long_steps"]})` of a fitted estimator '
      'over its steps (scikit-learn: a fit over its n_iter_, few: it '
      'converges)',
      '- ratios are ours / theirs, across processes; targets are reported, '
      'never asserted',
      '',
      '| size | measurement | kmeans_estimator | scikit-learn '
      '| ours / sklearn | legacy | ours / legacy | target | met |',
      '|' + ' --- |' * 9,
  ]
  legacy_run = config['legacy_python'] is not None
  for row in report['rows']:
    workload = WORKLOADS[row['size']]
    measurement = row['measurement']
    label = _MEASUREMENT_LABELS[measurement].format(
        long_steps=config['long_steps'])
    if measurement == 'choose_k':
      label += f', k={choose_k[0]}..{choose_k[-1]} ({len(choose_k)} fits)'
    elif measurement == 'predict':
      label += f', {min(config["predict_points"], workload.n)} points'
    if row['target'] is None:
      met = '-'
    elif row['met'] is not None:
      met = 'yes' if row['met'] else 'no'
    elif row['target'] == '<= legacy' and not legacy_run:
      met = 'legacy not run'
    else:
      met = 'not measured'
    legacy = (_latency_cell(row['legacy_s'], measurement) if legacy_run
              else 'not run')
    lines.append(
        f'| {workload.n:,} x {workload.d}, k={workload.k} | {label} '
        f'| {_latency_cell(row["ours_s"], measurement)} '
        f'| {_latency_cell(row["sklearn_s"], measurement)} '
        f'| {_fmt(row["vs_sklearn"])} | {legacy} '
        f'| {_fmt(row["vs_legacy"])} | {row["target"] or "-"} | {met} |')
  return '\n'.join(lines)


# ------------------------------------------------------------------ tfidf
TFIDF = 'tfidf'


@dataclasses.dataclass(frozen=True)
class TfidfWorkload:
  """A synthetic TF-IDF matrix: n documents, d terms, k clusters.

  `density` is the expected fraction of stored entries (terms per document
  / d); term popularity follows Zipf's law with `zipf_exponent`.
  """
  n: int = 100_000
  d: int = 50_000
  k: int = 100
  density: float = 0.001
  zipf_exponent: float = 1.0


TFIDF_WORKLOAD = TfidfWorkload()
# Processes that import their libraries and do nothing else: the RSS a
# backend's peak is to be read against.
TFIDF_BASELINES = ('tf_baseline', 'sklearn_baseline')
TFIDF_TF_BACKENDS = ('kmeans_estimator_csr', 'kmeans_estimator_sparse_tensor',
                     'kmeans_estimator_hamerly', 'kmeans_estimator_yinyang',
                     'kmeans_estimator_cosine')
TFIDF_REFERENCE = 'sklearn_lloyd'
# Spherical k-means (the cosine metric) in scipy: scikit-learn has none.
SPHERICAL_REFERENCE = 'scipy_spherical'
# kmeans_estimator_csr's fit on 1% of the rows: the fit's memory that does
# not grow with the data (TensorFlow running the step, the (k, d) state),
# the baseline of the goal's second reading (`add_tfidf_ratios`).
TFIDF_FIXED_COST = 'kmeans_estimator_csr_1pct'
TFIDF_BACKENDS = TFIDF_BASELINES + TFIDF_TF_BACKENDS + (
    TFIDF_FIXED_COST, TFIDF_REFERENCE, SPHERICAL_REFERENCE)
# Backends that minimise sum(1 - cos) rather than squared distances.
TFIDF_COSINE = ('kmeans_estimator_cosine', SPHERICAL_REFERENCE)
# Each kmeans_estimator backend's reference: the same iterations.
TFIDF_REFERENCE_OF = {'kmeans_estimator_csr': TFIDF_REFERENCE,
                      'kmeans_estimator_sparse_tensor': TFIDF_REFERENCE,
                      'kmeans_estimator_hamerly': TFIDF_REFERENCE,
                      'kmeans_estimator_yinyang': TFIDF_REFERENCE,
                      'kmeans_estimator_cosine': SPHERICAL_REFERENCE}
# The kmeans_estimator backends that run another algorithm than Lloyd (the
# same iterations, with distance bounds).
_TFIDF_ALGORITHMS = {'kmeans_estimator_hamerly': 'hamerly',
                     'kmeans_estimator_yinyang': 'yinyang'}
# Spread of the documents' lengths (sigma of a log-normal around the mean).
_TFIDF_LENGTH_SIGMA = 0.5


def _expected_distinct(popularity, tokens):
  """Expected distinct terms among each of `tokens` (m,) draws from
  `popularity` (d,): sum_j 1 - (1 - p_j)^L, float64 (m,)."""
  log_miss = np.log1p(-popularity)
  return np.array([float(np.sum(-np.expm1(t * log_miss))) for t in tokens])


def tfidf_counts(workload, seed):
  """A deterministic term-count matrix with Zipf-distributed columns.

  Each document draws its number of distinct terms from a log-normal
  (sigma 0.5) of mean `density * d`, at least 1 and at most d / 2; it
  then draws as many tokens as give that many distinct terms in
  expectation, each a term of Zipf popularity (p_r proportional to
  1 / r^zipf_exponent over ranks r = 1..d, the ranks spread over the
  columns by a seeded permutation). The counts are the tokens per (row,
  term). No document is empty.

  Returns:
    scipy.sparse.csr_matrix float64 (n, d) of counts, canonical.
  """
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  n, d = workload.n, workload.d
  popularity = 1.0 / np.arange(1, d + 1, dtype=np.float64) ** (
      workload.zipf_exponent)
  popularity /= popularity.sum()
  column_of_rank = rng.permutation(d)
  sigma = _TFIDF_LENGTH_SIGMA
  terms = rng.lognormal(np.log(workload.density * d) - sigma**2 / 2, sigma,
                        n)
  terms = np.clip(np.rint(terms), 1, max(1, d // 2))
  # Tokens per document: the least L on a geometric grid whose expected
  # distinct terms reach the document's.
  grid = np.unique(np.geomspace(1, 64 * d, 2000).astype(np.int64))
  distinct = _expected_distinct(popularity, grid)
  tokens = grid[np.minimum(np.searchsorted(distinct, terms), len(grid) - 1)]
  tokens = np.maximum(tokens, terms.astype(np.int64))
  cumulative = np.cumsum(popularity)
  cumulative[-1] = 1.0
  ranks = np.searchsorted(cumulative, rng.random(int(tokens.sum())),
                          side='right')
  columns = column_of_rank[np.minimum(ranks, d - 1)].astype(np.int32)
  rows = np.repeat(np.arange(n, dtype=np.int32), tokens)
  # COO -> CSR sums the repeated (row, term) pairs: the term counts.
  counts = sparse.coo_matrix(
      (np.ones(len(columns), np.float64), (rows, columns)),
      shape=(n, d)).tocsr()
  counts.sum_duplicates()
  counts.sort_indices()
  return counts


def tfidf_weights(counts):
  """`TfidfTransformer()`'s defaults on a count matrix, in float64, as
  float32: counts x idf, idf = ln((1 + n) / (1 + df)) + 1, each row
  scaled to unit L2 norm (a row without entries stays empty).

  Args:
    counts: canonical scipy.sparse.csr_matrix (n, d).

  Returns:
    scipy.sparse.csr_matrix float32 (n, d), int32 indices.
  """
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  n, d = counts.shape
  document_frequency = np.bincount(counts.indices, minlength=d)
  idf = np.log((1.0 + n) / (1.0 + document_frequency)) + 1.0
  values = counts.data.astype(np.float64) * idf[counts.indices]
  row_of = np.repeat(np.arange(n), np.diff(counts.indptr))
  norms = np.sqrt(np.bincount(row_of, weights=values**2, minlength=n))
  values /= norms[row_of]
  return sparse.csr_matrix(
      (values.astype(np.float32), counts.indices.astype(np.int32),
       counts.indptr.astype(np.int32)), shape=(n, d))


def make_tfidf(workload, seed):
  """A deterministic TF-IDF-like matrix, as `TfidfVectorizer` would give:
  `tfidf_weights` of `tfidf_counts`.

  Returns:
    scipy.sparse.csr_matrix float32 (n, d), canonical (sorted indices, no
    duplicates), int32 indices.
  """
  return tfidf_weights(tfidf_counts(workload, seed))


def csr_bytes(matrix):
  """Bytes of a CSR matrix's arrays: data + indices + indptr."""
  return int(matrix.data.nbytes + matrix.indices.nbytes +
             matrix.indptr.nbytes)


def tfidf_initial_centers(matrix, k, seed):
  """k distinct rows of `matrix` chosen by `seed`, densified: float32
  (k, d), the initial centers of every backend."""
  rows = np.sort(np.random.default_rng([seed, 1]).choice(
      matrix.shape[0], k, replace=False))
  return np.asarray(matrix[rows].toarray(), np.float32)


def sparse_inertia_and_labels(matrix, centers):
  """Sum over all rows of the squared distance to the nearest center, and
  each row's nearest center: float64 in row chunks, identical for every
  backend (never a backend's own figure).

  Returns:
    (inertia float, labels int64 (n,)).
  """
  centers = np.asarray(centers, np.float64)
  center_norms = np.einsum('kd,kd->k', centers, centers)
  rows = _chunk_rows(len(centers))
  total, labels = 0.0, []
  for start in range(0, matrix.shape[0], rows):
    chunk = matrix[start:start + rows].astype(np.float64)
    point_norms = np.asarray(chunk.multiply(chunk).sum(axis=1)).ravel()
    squared = (point_norms[:, None] - 2.0 * np.asarray(chunk @ centers.T) +
               center_norms[None, :])
    nearest = squared.argmin(axis=1)
    labels.append(nearest)
    total += float(np.maximum(
        squared[np.arange(len(nearest)), nearest], 0.0).sum())
  return total, np.concatenate(labels)


def unit_rows(centers):
  """`centers` with rows scaled to unit L2 norm; a zero row stays zero."""
  centers = np.asarray(centers, np.float64)
  norms = np.linalg.norm(centers, axis=1, keepdims=True)
  return np.divide(centers, norms, out=np.zeros_like(centers),
                   where=norms > 0)


def tfidf_objective_and_labels(matrix, centers, cosine):
  """`sparse_inertia_and_labels`, or under cosine sum(1 - cos) to the
  nearest center: for unit rows and unit centers |x - c|^2 = 2 (1 - cos),
  so the nearest centers are the same and the sum is half the inertia of
  the unit centers (a zero row would count 1/2: `make_tfidf` has none)."""
  if not cosine:
    return sparse_inertia_and_labels(matrix, centers)
  inertia, labels = sparse_inertia_and_labels(matrix, unit_rows(centers))
  return inertia / 2.0, labels


def spherical_lloyd(matrix, initial, max_iter, chunk_rows=4096):
  """Spherical k-means (Lloyd under the cosine metric) in scipy, the
  reference of kmeans_estimator's cosine metric on unit rows.

  Each iteration assigns every row to the center of largest x.c (chunks
  of `chunk_rows` rows), sums the rows of each cluster (a sparse (k, n)
  indicator times the matrix, float64) and scales each sum to unit length;
  a cluster without rows keeps its center (kmeans_estimator's policy).
  All `max_iter` iterations run (no tolerance).

  Args:
    matrix: scipy.sparse.csr_matrix (n, d) of unit rows.
    initial: float array (k, d), the initial centers (scaled to unit rows).
    max_iter: iterations.

  Returns:
    float32 centers (k, d).
  """
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  n = matrix.shape[0]
  centers = unit_rows(initial).astype(matrix.dtype)
  k = len(centers)
  for _ in range(max_iter):
    labels = np.concatenate([
        np.asarray(matrix[start:start + chunk_rows] @ centers.T).argmax(
            axis=1) for start in range(0, n, chunk_rows)])
    indicator = sparse.csr_matrix(
        (np.ones(n), (labels, np.arange(n))), shape=(k, n))
    sums = (indicator @ matrix.astype(np.float64)).toarray()
    counts = np.bincount(labels, minlength=k)
    centers = np.where((counts > 0)[:, None], unit_rows(sums),
                       centers).astype(matrix.dtype)
  return centers


def _sparse_tensor_of(matrix):
  """A CSR matrix as a row-major tf.SparseTensor (int64 indices)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64),
                   np.diff(matrix.indptr))
  indices = np.stack([rows, matrix.indices.astype(np.int64)], axis=1)
  return tf.SparseTensor(indices, matrix.data, matrix.shape)


def _current_rss_mb():
  """VmRSS of this process in MB (the peak so far where /proc is absent)."""
  kb = _rss_kb('VmRSS')
  return kb / 1024.0 if kb is not None else _peak_rss_mb()


def run_tfidf_backend(backend, data_file, config):
  """Runs one tfidf backend in this process; returns its result.

  The baselines import their libraries (and the CSR backends' scipy)
  and return. The others load the CSR matrix from `data_file`, take the
  initial centers (`tfidf_initial_centers`), warm their library up on a
  trivial call, and fit `max_iter` Lloyd iterations with tolerance 0.
  Peak RSS is the process's (`getrusage`), loading included; `fit_growth`
  is the peak during the fit over the RSS just before it, where Linux lets
  the peak be reset.

  Returns:
    dict of figures, with 'centers' (k, d) for the fitting backends.
  """
  if backend in TFIDF_BASELINES:
    if backend == 'tf_baseline':
      import kmeans_estimator  # pylint: disable=g-import-not-at-top,unused-import
      import tensorflow as tf  # pylint: disable=g-import-not-at-top,unused-import
    else:
      from sklearn import cluster  # pylint: disable=g-import-not-at-top,unused-import
    peak = _peak_rss_mb()
    # What loading the matrix's reader adds (the fitting backends import it).
    from scipy import sparse  # pylint: disable=g-import-not-at-top,unused-import,redefined-outer-name
    return {'peak_rss_mb': peak, 'rss_with_scipy_mb': _current_rss_mb()}
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  if backend not in TFIDF_BACKENDS:
    raise ValueError(f'`backend` must be one of {list(TFIDF_BACKENDS)}. '
                     f'Received: backend={backend!r}')
  k, max_iter, seed = config['k'], config['max_iter'], config['seed']
  matrix = sparse.load_npz(data_file).tocsr()
  initial = tfidf_initial_centers(matrix, k, seed)
  result = {'dtype': str(matrix.dtype),
            'matrix_mb': csr_bytes(matrix) / 2**20}
  if backend == TFIDF_REFERENCE:
    from sklearn import cluster  # pylint: disable=g-import-not-at-top
    _warm_up_library('sklearn_lloyd')
    result['rss_before_fit_mb'] = _current_rss_mb()
    peak_before_fit = _peak_rss_mb()
    reset = _reset_peak_rss()
    model, fit_s, fits = _timed_fits(
        lambda: cluster.KMeans(n_clusters=k, init=initial, n_init=1,
                               max_iter=max_iter, tol=0.0, algorithm='lloyd',
                               random_state=seed),
        matrix, config['repeats'])
    iterations = int(model.n_iter_)
    result.update(centers=model.cluster_centers_, iterations=iterations,
                  fit_s=fit_s, s_per_iter=fit_s / max(iterations, 1),
                  fit_repeats=fits, device='CPU',
                  center_dtype=str(model.cluster_centers_.dtype))
  elif backend == SPHERICAL_REFERENCE:
    result['rss_before_fit_mb'] = _current_rss_mb()
    peak_before_fit = _peak_rss_mb()
    reset = _reset_peak_rss()
    start = time.perf_counter()
    centers = spherical_lloyd(matrix, initial, max_iter)
    fit_s = time.perf_counter() - start
    result.update(centers=centers, iterations=max_iter, fit_s=fit_s,
                  s_per_iter=fit_s / max_iter, device='CPU')
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import kmeans_estimator  # pylint: disable=g-import-not-at-top
    _configure_tensorflow(config)
    _warm_up_library('kmeans_estimator')
    tf.sparse.sparse_dense_matmul(
        _sparse_tensor_of(matrix[:8]), tf.ones([matrix.shape[1], 2])).numpy()
    if backend == 'kmeans_estimator_sparse_tensor':
      # The points as a user holding a SparseTensor has them: the CSR
      # matrix is dropped before the fit.
      points = _sparse_tensor_of(matrix)
      del matrix
    elif backend == TFIDF_FIXED_COST:
      # 1% of the rows (at least k), copied; the whole matrix dropped.
      points = matrix[:max(k, matrix.shape[0] // 100)].copy()
      result['rows'] = points.shape[0]
      del matrix
    else:
      points = matrix
    result['rss_before_fit_mb'] = _current_rss_mb()
    peak_before_fit = _peak_rss_mb()
    reset = _reset_peak_rss()
    timer = _StepTimer()
    with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as model_dir:
      start = time.perf_counter()
      estimator = kmeans_estimator.KMeansClustering(
          num_clusters=k, model_dir=model_dir, initial_clusters=initial,
          use_mini_batch=False, seed=seed,
          algorithm=_TFIDF_ALGORITHMS.get(backend, 'lloyd'),
          distance_metric=(
              kmeans_estimator.KMeansClustering.COSINE_DISTANCE
              if backend in TFIDF_COSINE else
              kmeans_estimator.KMeansClustering.SQUARED_EUCLIDEAN_DISTANCE))
      estimator.train(points, hooks=[timer], steps=max_iter)
      fit_s = time.perf_counter() - start
      centers = estimator.cluster_centers()
      traces = _tracing_counts(estimator)
    steps = len(timer.step_times)
    iter_total = timer.step_times[-1] - timer.begin_time
    result.update(
        centers=centers, iterations=steps, fit_s=fit_s,
        init_s=timer.begin_time - start, iter_total_s=iter_total,
        s_per_iter=iter_total / steps,
        s_per_iter_steady=_steady(timer.step_times),
        cpu_s_per_iter_steady=_steady(timer.cpu_times),
        first_step_s=timer.step_times[0] - timer.begin_time,
        other_s=fit_s - (timer.begin_time - start) - iter_total,
        traces=traces, device=_tf_device(),
        tf_threads=[tf.config.threading.get_intra_op_parallelism_threads(),
                    tf.config.threading.get_inter_op_parallelism_threads()])
  fit_peak_kb = _rss_kb('VmHWM') if reset else None
  # (Resetting VmHWM may lower getrusage's peak to the fit's.)
  result['peak_rss_mb'] = max(peak_before_fit, _peak_rss_mb())
  result['fit_growth_mb'] = (
      max(0.0, fit_peak_kb / 1024.0 - result['rss_before_fit_mb'])
      if fit_peak_kb is not None else None)
  return result


def _run_tfidf_isolated(backend, data_file, config):
  """`run_tfidf_backend` in a fresh interpreter; its centers come back
  through a `.npy` beside its JSON."""
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_') as tmp:
    output = os.path.join(tmp, 'result.json')
    command = [sys.executable, os.path.abspath(__file__),
               f'--tfidf_worker={backend}', f'--data_file={data_file}',
               f'--tfidf_k={config["k"]}', f'--max_iter={config["max_iter"]}',
               f'--seed={config["seed"]}', f'--repeats={config["repeats"]}',
               f'--tf32={_tf32_name(config.get("tf32"))}',
               f'--worker_output={output}']
    start = time.perf_counter()
    result = _run_worker(command, output)
    wall = time.perf_counter() - start
    if os.path.exists(output + '.npy'):
      result['centers'] = np.load(output + '.npy')
  result['process_wall_s'] = wall
  return result


def tfidf_worker(backend, data_file, config, output):
  """--tfidf_worker: one backend's result to `output` (JSON), its centers
  to `output`.npy."""
  result = run_tfidf_backend(backend, data_file, config)
  centers = result.pop('centers', None)
  if centers is not None:
    np.save(output + '.npy', np.asarray(centers))
  with open(output, 'w') as f:
    json.dump(result, f)


def add_tfidf_ratios(results, matrix_mb):
  """Adds each kmeans_estimator backend's ratios to its reference
  (TFIDF_REFERENCE_OF: the same iterations) and to the memory goal: peak
  RSS at most 2 x the matrix's bytes plus TensorFlow's baseline. The
  issue's speed goal is s/iter at most scikit-learn's.

  The memory goal is read two ways. Literally, the baseline is
  `tf_baseline` (TensorFlow imported, nothing run): the peak must then
  also hold TensorFlow's running state and every (k, d) array of the fit
  (centers, sums) within 2 x the matrix. Per data, the baseline is
  TFIDF_FIXED_COST, the same fit on 1% of the rows: the RSS at the fit's
  peak above that one's (`peak_over_fixed_cost_mb`) is the memory that
  grows with the data, the loaded matrix included, and the goal is that
  it be at most 2 x the matrix (`over_fixed_cost_vs_matrix` <= 2)."""
  by_backend = {r['backend']: r for r in results if r.get('status') == 'ok'}
  baseline = by_backend.get('tf_baseline')
  fixed = by_backend.get(TFIDF_FIXED_COST)
  fixed_peak = (None if fixed is None or fixed.get('fit_growth_mb') is None
                else fixed['rss_before_fit_mb'] + fixed['fit_growth_mb'])
  for backend in TFIDF_TF_BACKENDS:
    result = by_backend.get(backend)
    if result is None:
      continue
    result['reference'] = TFIDF_REFERENCE_OF[backend]
    reference = by_backend.get(result['reference'])
    if reference is not None:
      result['s_per_iter_vs_reference'] = (result['s_per_iter'] /
                                           reference['s_per_iter'])
      if result.get('s_per_iter_steady') is not None:
        result['steady_vs_reference'] = (result['s_per_iter_steady'] /
                                         reference['s_per_iter'])
      result['fit_s_vs_reference'] = result['fit_s'] / reference['fit_s']
      result['objective_rel_diff_vs_reference'] = (
          abs(result['objective'] - reference['objective']) /
          reference['objective'])
    if baseline is not None:
      goal = 2.0 * matrix_mb + baseline['peak_rss_mb']
      result['rss_goal_mb'] = goal
      result['peak_rss_vs_goal'] = result['peak_rss_mb'] / goal
      result['peak_over_baseline_vs_matrix'] = (
          (result['peak_rss_mb'] - baseline['peak_rss_mb']) / matrix_mb)
    if fixed_peak is not None and result.get('fit_growth_mb') is not None:
      over = result['rss_before_fit_mb'] + result['fit_growth_mb'] - (
          fixed_peak)
      result['peak_over_fixed_cost_mb'] = over
      result['over_fixed_cost_vs_matrix'] = over / matrix_mb


def tfidf(workload=TFIDF_WORKLOAD, backends=TFIDF_BACKENDS, max_iter=10,
          seed=0, repeats=3, tf32=None, out_dir=None, isolate=True,
          verbose=True):
  """The sparse workload: a synthetic TF-IDF matrix (`make_tfidf`),
  clustered by kmeans_estimator and its references from the same centers.

  The parent process generates the CSR matrix once and writes it to a
  `.npz` (`scipy.sparse.save_npz`, uncompressed) in a temporary
  directory; each backend runs in a fresh process (`isolate`) that loads
  it (`run_tfidf_backend`). All start from the same k rows chosen by the
  seed (`tfidf_initial_centers`), run `max_iter` Lloyd iterations with
  tolerance 0, and report s/iter, fit time and peak RSS. The parent then
  computes every backend's objective, in float64, from its final centers
  (`tfidf_objective_and_labels`: the inertia, or sum(1 - cos) for the
  cosine backends), and the fraction of rows whose nearest center has the
  index of the reference's (TFIDF_REFERENCE_OF: scikit-learn's Lloyd for
  squared distances, `spherical_lloyd` for cosine). The data stay float32
  throughout: scikit-learn's KMeans keeps float32 CSR input float32.

  Args:
    workload: a `TfidfWorkload`.
    backends: of TFIDF_BACKENDS.
    max_iter: Lloyd iterations.
    seed: seed of the matrix and of the initial centers.
    repeats: scikit-learn fits (median) while under 2 s in total.
    tf32: as `run_benchmarks`' (GPUs only).
    out_dir: where `benchmark_tfidf.md` and `.json` go; None writes
      nothing.
    isolate: one process per backend (peak RSS per backend); False runs
      them all here (the peaks are then this process's so far).
    verbose: print progress and the table.

  Returns:
    dict with 'machine', 'config', 'date', 'total_wall_s', 'matrix'
    (shape, nnz, density, bytes), 'results' and 'markdown'.
  """
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  backends = list(backends)
  if not backends or any(b not in TFIDF_BACKENDS for b in backends):
    raise ValueError(f'`backends` must be among {list(TFIDF_BACKENDS)}. '
                     f'Received: backends={backends!r}')
  for name in ('n', 'd', 'k'):
    value = getattr(workload, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f'`workload.{name}` must be a positive integer. '
                       f'Received: workload.{name}={value!r}')
  if workload.k > workload.n:
    raise ValueError(f'`workload.k` must be at most workload.n: the initial '
                     f'centers are k distinct rows. Received: '
                     f'workload.k={workload.k}, workload.n={workload.n}')
  if not 0.0 < workload.density <= 0.5:
    raise ValueError('`workload.density` must be in (0, 0.5]. Received: '
                     f'workload.density={workload.density!r}')
  if isinstance(max_iter, bool) or not isinstance(max_iter, int) or (
      max_iter < 1):
    raise ValueError('`max_iter` must be a positive integer. Received: '
                     f'max_iter={max_iter!r}')
  have_sklearn = sklearn_available()
  config = {'workload': dataclasses.asdict(workload), 'backends': backends,
            'k': workload.k, 'max_iter': max_iter, 'seed': seed,
            'repeats': repeats, 'tf32': tf32, 'isolate': isolate}
  load_before = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
  start = time.perf_counter()
  results, labels = [], {}
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_tfidf_') as tmp:
    generate_start = time.perf_counter()
    matrix = make_tfidf(workload, seed)
    data_file = os.path.join(tmp, 'tfidf.npz')
    sparse.save_npz(data_file, matrix, compressed=False)
    matrix_info = {
        'shape': list(matrix.shape), 'nnz': int(matrix.nnz),
        'density': matrix.nnz / (matrix.shape[0] * matrix.shape[1]),
        'dtype': str(matrix.dtype), 'indices_dtype': str(
            matrix.indices.dtype),
        'bytes': csr_bytes(matrix), 'mb': csr_bytes(matrix) / 2**20,
        'terms_per_row_min_median_max': [
            int(x) for x in np.percentile(np.diff(matrix.indptr),
                                          [0, 50, 100])],
        'generate_s': time.perf_counter() - generate_start}
    if verbose:
      print(f'tfidf matrix {matrix.shape[0]:,} x {matrix.shape[1]:,}, '
            f'nnz {matrix.nnz:,} (density {matrix_info["density"]:.4%}), '
            f'{matrix_info["mb"]:.1f} MB', flush=True)
    for backend in backends:
      if backend in (TFIDF_REFERENCE, 'sklearn_baseline') and (
          not have_sklearn):
        result = {'status': 'skipped',
                  'message': 'scikit-learn is not installed'}
      else:
        try:
          result = (_run_tfidf_isolated(backend, data_file, config)
                    if isolate else run_tfidf_backend(backend, data_file,
                                                      config))
          result['status'] = 'ok'
        except Exception as error:  # pylint: disable=broad-except
          result = {'status': 'error',
                    'message': f'{type(error).__name__}: {error}'}
      result['backend'] = backend
      centers = result.pop('centers', None)
      if centers is not None and backend != TFIDF_FIXED_COST:
        result['objective'], labels[backend] = tfidf_objective_and_labels(
            matrix, centers, cosine=backend in TFIDF_COSINE)
      results.append(result)
      if verbose:
        print(_tfidf_line(result), flush=True)
  for result in results:
    reference = TFIDF_REFERENCE_OF.get(result['backend'])
    if result['backend'] in labels and reference in labels:
      result['labels_agree_with_reference'] = float(np.mean(
          labels[result['backend']] == labels[reference]))
  add_tfidf_ratios(results, matrix_info['mb'])
  machine = machine_description()
  machine['load_average_before'] = load_before
  report = {
      'machine': machine, 'config': config, 'matrix': matrix_info,
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'total_wall_s': time.perf_counter() - start, 'results': results}
  report['markdown'] = tfidf_markdown(report)
  _write_report(report, out_dir, 'benchmark_tfidf', verbose)
  return report


def _tfidf_line(result):
  name = f'  tfidf {result["backend"]:<31}'
  if result['status'] != 'ok':
    return f'{name} {result["status"]}: {result["message"]}'
  if 'fit_s' not in result:
    return f'{name} peak RSS {result["peak_rss_mb"]:.0f} MB'
  return (f'{name} {_fmt(result["s_per_iter"])} s/iter, '
          f'{result["iterations"]} iters, fit {_fmt(result["fit_s"])} s, '
          f'peak RSS {result["peak_rss_mb"]:.0f} MB, objective '
          f'{_fmt(result.get("objective"), ".8g")}')


def tfidf_markdown(report):
  """The tfidf report as markdown: settings, the matrix, one row per
  backend, and the goals."""
  machine, config, matrix = (report['machine'], report['config'],
                             report['matrix'])
  workload = config['workload']
  versions = ', '.join(f'{k} {v}' for k, v in machine['versions'].items()
                       if v)
  by_backend = {r['backend']: r for r in report['results']}
  baselines = ', '.join(
      f'{name} {by_backend[name]["peak_rss_mb"]:.0f} MB (with scipy.sparse '
      f'imported {by_backend[name]["rss_with_scipy_mb"]:.0f} MB)'
      for name in TFIDF_BASELINES
      if by_backend.get(name, {}).get('status') == 'ok')
  terms = matrix['terms_per_row_min_median_max']
  lines = [
      '# kmeans_estimator sparse (TF-IDF) benchmark',
      '',
      f'- machine: {machine["cpu"]}, {machine["usable_cores"]} usable of '
      f'{machine["cpu_count"]} cores, {machine["memory_gb"]} GB; '
      f'Python {machine["python"]}, {machine["platform"]}',
      f'- versions: {versions}; git {machine["git_commit"]}',
      f'- run: {report["date"]}, max_iter={config["max_iter"]}, tol=0, '
      f'seed={config["seed"]}, total {report["total_wall_s"]:.0f} s; load '
      f'average {_fmt_load(machine.get("load_average_before"))} before, '
      f'{_fmt_load(machine.get("load_average"))} after (other processes on '
      'the machine disturb the timings)',
      f'- matrix: {matrix["shape"][0]:,} x {matrix["shape"][1]:,} CSR '
      f'{matrix["dtype"]} ({matrix["indices_dtype"]} indices), nnz '
      f'{matrix["nnz"]:,} (density {matrix["density"]:.4%}; terms per row '
      f'min/median/max {terms[0]}/{terms[1]}/{terms[2]}), '
      f'{matrix["mb"]:.1f} MB (data + indices + indptr); Zipf exponent '
      f'{workload["zipf_exponent"]} over the columns, TfidfVectorizer '
      'weights (raw counts x smooth idf, rows L2-normalised); written once '
      'to an uncompressed .npz that each backend\'s process loads',
      f'- k={workload["k"]}; every backend starts from the same '
      f'{workload["k"]} rows chosen by the seed (densified) and runs '
      f'{config["max_iter"]} Lloyd iterations with tol=0: '
      '`KMeansClustering(initial_clusters=those, use_mini_batch=False, '
      'algorithm=\'lloyd\').train(points, steps=max_iter)` given the CSR '
      'matrix (kmeans_estimator_csr; kmeans_estimator_hamerly and _yinyang '
      'with `algorithm=\'hamerly\'` and `\'yinyang\'`, the same iterations '
      'with distance bounds; '
      'kmeans_estimator_cosine with `distance_metric=\'cosine\'`) or a '
      'row-major tf.SparseTensor built '
      'from it before the fit, the CSR dropped (kmeans_estimator_sparse_'
      'tensor), or given its first 1% of rows, copied, the whole matrix '
      f'dropped ({TFIDF_FIXED_COST}: what the fit holds that does not grow '
      'with the data); references: scikit-learn `KMeans(init=those, n_init=1, '
      'max_iter, tol=0, algorithm=\'lloyd\')` on the same float32 CSR (it '
      'keeps float32), and for cosine spherical k-means in scipy '
      '(`spherical_lloyd`: argmax x.c, sums by a sparse indicator product, '
      'unit centers; one thread)',
      '- s/iter: iteration time / iterations (kmeans_estimator: from the '
      'first step\'s start, tracing included; steady: median step after '
      'the first; references: fit / iterations, scikit-learn the median of '
      'fits under 2 s); fit s: the whole fit (kmeans_estimator: estimator '
      'built, centers in, checkpoints); objective: float64 over all rows '
      'from each backend\'s final centers, computed in the parent: the '
      'inertia, or sum(1 - cos) for the cosine backends; rel. diff and '
      'labels agree (fraction of rows whose nearest final center has the '
      'same index) are against the backend\'s reference: the correctness '
      'check',
      '- peak RSS: each backend in its own process, loading included; '
      + (f'baselines (processes that import and do nothing): {baselines}; '
         if baselines else '') +
      'fit growth: peak during the fit over the RSS just before it; goal: '
      'peak RSS <= 2 x matrix MB + tf_baseline; per data: the RSS at the '
      f'fit\'s peak over {TFIDF_FIXED_COST}\'s <= 2 x matrix MB',
      '',
      '| backend | s/iter | steady s/iter | iters | fit s | objective '
      '| reference | rel. diff | labels agree | peak RSS MB (before fit) '
      '| fit growth MB | s/iter / reference (steady) | fit / reference '
      '| peak RSS / goal |',
      '|' + ' --- |' * 14,
  ]
  for result in report['results']:
    name = result['backend']
    if result['status'] != 'ok':
      lines.append(f'| {name} | {result["status"]}: '
                   f'{result.get("message", "")[:80]} |' + ' |' * 12)
      continue
    if 'fit_s' not in result:
      lines.append(f'| {name} |' + ' - |' * 8 +
                   f' {result["peak_rss_mb"]:.0f} |' + ' - |' * 4)
      continue
    goal = result.get('rss_goal_mb')
    lines.append(
        f'| {name} | {_fmt(result["s_per_iter"])} '
        f'| {_fmt(result.get("s_per_iter_steady"))} '
        f'| {result["iterations"]} | {_fmt(result["fit_s"])} '
        f'| {_fmt(result.get("objective"), ".8g")} '
        f'| {result.get("reference", "-")} '
        f'| {_fmt(result.get("objective_rel_diff_vs_reference"), ".2e")} '
        f'| {_fmt(result.get("labels_agree_with_reference"), ".4f")} '
        f'| {result["peak_rss_mb"]:.0f} '
        f'({_fmt(result.get("rss_before_fit_mb"), ".0f")}) '
        f'| {_fmt(result.get("fit_growth_mb"), ".0f")} '
        f'| {_fmt(result.get("s_per_iter_vs_reference"))} '
        f'({_fmt(result.get("steady_vs_reference"))}) '
        f'| {_fmt(result.get("fit_s_vs_reference"))} '
        + (f'| {result["peak_rss_vs_goal"]:.2f} (goal {goal:.0f} MB) |'
           if goal is not None else '| - |'))
  lines += ['', *_tfidf_goal_lines(report)]
  return '\n'.join(lines)


def _tfidf_goal_lines(report):
  """Whether each kmeans_estimator backend met the issue's goals (speed
  against scikit-learn; the cosine backend's speed is only compared with
  its scipy reference)."""
  lines = []
  for result in report['results']:
    if result['status'] != 'ok' or result['backend'] not in TFIDF_TF_BACKENDS:
      continue
    parts = []
    reference = result.get('reference')
    speed = result.get('s_per_iter_vs_reference')
    if speed is not None:
      steady = result.get('steady_vs_reference')
      parts.append(
          f's/iter {speed:.2f}x {reference}\'s'
          + (f' (steady {steady:.2f}x)' if steady is not None else '') +
          ((': met' if speed <= 1.0 else ': not met')
           if reference == TFIDF_REFERENCE else ''))
    if result.get('rss_goal_mb') is not None:
      parts.append(
          f'peak RSS {result["peak_rss_mb"]:.0f} MB against the goal '
          f'{result["rss_goal_mb"]:.0f} MB (TF baseline + '
          f'{result["peak_over_baseline_vs_matrix"]:.1f} x the matrix): '
          + ('met' if result['peak_rss_vs_goal'] <= 1.0 else 'not met'))
    if result.get('over_fixed_cost_vs_matrix') is not None:
      parts.append(
          f'per data, the fit\'s peak is '
          f'{result["peak_over_fixed_cost_mb"]:.0f} MB above the same fit on '
          f'1% of the rows ({TFIDF_FIXED_COST}), '
          f'{result["over_fixed_cost_vs_matrix"]:.1f} x the matrix (goal 2): '
          + ('met' if result['over_fixed_cost_vs_matrix'] <= 2.0
             else 'not met'))
    if result.get('objective_rel_diff_vs_reference') is not None:
      parts.append(
          f'objective within '
          f'{result["objective_rel_diff_vs_reference"]:.1e} of {reference}'
          f'\'s, labels agree on '
          f'{result["labels_agree_with_reference"]:.2%} of the rows')
    if parts:
      lines.append(f'- {result["backend"]}: ' + '; '.join(parts))
  return lines


def sklearn_available():
  """Whether scikit-learn (an optional benchmark dependency) imports."""
  try:
    import sklearn.cluster  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def check_names(workloads, backends):
  """Raises ValueError naming the valid choices for unknown names."""
  if not workloads or any(w not in WORKLOADS for w in workloads):
    raise ValueError(f'`workloads` must be among {list(WORKLOADS)}. '
                     f'Received: workloads={list(workloads)!r}')
  if not backends or any(b not in BACKENDS for b in backends):
    raise ValueError(f'`backends` must be among {list(BACKENDS)}. '
                     f'Received: backends={list(backends)!r}')


def run_benchmarks(workloads=DEFAULT_WORKLOADS, backends=BACKENDS, max_iter=20,
                   out_dir=None, seed=0, spread=False, batch_size=1024,
                   repeats=5, kmeans_plus_plus_num_retries=None, isolate=True,
                   verbose=True, stream_points=None, stream_batch=STREAM_BATCH,
                   tf32=None):
  """Runs every backend on every workload; writes and returns the report.

  Args:
    workloads: names from WORKLOADS.
    backends: names from BACKENDS; scikit-learn ones are skipped (with a
      message) when scikit-learn is not installed.
    max_iter: Lloyd iterations (epochs for the mini-batch backends).
    out_dir: where `benchmark[_spread].md` and `.json` go; None writes nothing.
    seed: seed of the data and of every backend.
    spread: blob width 250 instead of 20.
    batch_size: mini-batch size.
    repeats: timed repeats for the floor and predict (at least).
    kmeans_plus_plus_num_retries: kmeans_estimator's k-means++ retries; None
      draws as many candidates per center as scikit-learn (1 + int(ln k)).
    isolate: one subprocess per (workload, backend).
    verbose: print progress and the table.
    stream_points: n of the streamed workload instead of its own (None).
    stream_batch: points per tf.data batch of the streamed workload.
    tf32: True or False forces TensorFloat-32 matrix products on or off on
      GPUs that have them; None leaves TensorFlow's default (on).

  Returns:
    dict with 'machine', 'config', 'date', 'total_wall_s', 'results' (one
    dict per (workload, backend)) and 'markdown'.
  """
  workloads, backends = list(workloads), list(backends)
  check_names(workloads, backends)
  if tf32 is not None and not isinstance(tf32, bool):
    raise ValueError('`tf32` must be True, False or None (TensorFlow\'s '
                     f'default). Received: tf32={tf32!r}')
  have_sklearn = sklearn_available()
  if not have_sklearn and any(b in SKLEARN_BACKENDS for b in backends):
    print('scikit-learn is not installed: skipping '
          f'{[b for b in backends if b in SKLEARN_BACKENDS]} '
          "(pip install 'kmeans_estimator[benchmark]').")
  config = {'workloads': workloads, 'backends': backends,
            'max_iter': max_iter, 'seed': seed, 'spread': spread,
            'batch_size': batch_size, 'repeats': repeats,
            'kmeans_plus_plus_num_retries': kmeans_plus_plus_num_retries,
            'isolate': isolate, 'stream_points': stream_points,
            'stream_batch': stream_batch, 'tf32': tf32}
  results = []
  load_before = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
  start = time.perf_counter()
  # Streamed workloads are written once, block by block, and read by every
  # backend's process from this directory.
  with tempfile.TemporaryDirectory(prefix='kmeans_benchmark_data_') as tmp:
    for name in workloads:
      workload = workload_of(name, config)
      data_file = None
      if workload.streamed:
        data_file = os.path.join(tmp, f'{name}.npy')
        write_blobs(workload, seed, spread, data_file)
      for backend in backends:
        result = _run_one(name, backend, config, data_file, have_sklearn,
                          verbose)
        results.append(result)
  add_ratios(results)
  machine = machine_description()
  machine['load_average_before'] = load_before
  report = {
      'machine': machine,
      'config': config,
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'total_wall_s': time.perf_counter() - start,
      'results': results,
  }
  report['markdown'] = markdown_report(report)
  _write_report(report, out_dir,
                'benchmark_spread' if spread else 'benchmark', verbose)
  return report


def _write_report(report, out_dir, name, verbose):
  """Writes `report` to out_dir/name.json (all but its markdown) and
  out_dir/name.md (when out_dir is not None), and prints the markdown
  when `verbose`."""
  if out_dir is not None:
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, name)
    with open(stem + '.json', 'w') as f:
      json.dump({k: v for k, v in report.items() if k != 'markdown'}, f,
                indent=1, sort_keys=True)
      f.write('\n')
    with open(stem + '.md', 'w') as f:
      f.write(report['markdown'] + '\n')
    if verbose:
      print(f'\nWrote {stem}.md and {stem}.json')
  if verbose:
    print('\n' + report['markdown'])


def _run_one(name, backend, config, data_file, have_sklearn, verbose):
  """One (workload, backend) of `run_benchmarks`: its result, never raising."""
  if backend in SKLEARN_BACKENDS and not have_sklearn:
    return {'workload': name, 'backend': backend, 'status': 'skipped',
            'message': 'scikit-learn is not installed'}
  if backend == IN_MEMORY and data_file is None:
    return {'workload': name, 'backend': backend, 'status': 'skipped',
            'message': 'an in-memory workload: kmeans_estimator reads it in '
                       'memory already'}
  try:
    result = (_run_isolated(name, backend, config, data_file)
              if config['isolate'] else
              run_backend(name, backend, config, data_file))
  except Exception as error:  # pylint: disable=broad-except
    result = {'workload': name, 'backend': backend, 'status': 'error',
              'message': f'{type(error).__name__}: {error}'}
  if verbose:
    if result['status'] == 'ok':
      print(f'{name:>7} {backend:<27} {result["s_per_iter"]:.3g} s/iter, '
            f'{_fmt_iters(result)} iters, fit {result["fit_s"]:.3g} s, '
            f'inertia {result["inertia"]:.6g}', flush=True)
    else:
      print(f'{name:>7} {backend:<27} {result["status"]}: '
            f'{result["message"]}', flush=True)
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = dict(max_iter=FLAGS.max_iter, seed=FLAGS.seed, spread=FLAGS.spread,
                batch_size=FLAGS.batch_size, repeats=FLAGS.repeats,
                kmeans_plus_plus_num_retries=(
                    FLAGS.kmeans_plus_plus_num_retries),
                stream_points=FLAGS.stream_points,
                stream_batch=FLAGS.stream_batch,
                tf32=TF32_SETTINGS[FLAGS.tf32])
  for name in ('max_iter', 'batch_size', 'repeats', 'stream_batch'):
    if config[name] < 1:
      raise app.UsageError(f'--{name} must be a positive integer. '
                           f'Received: --{name}={config[name]}')
  if config['stream_points'] is not None and config['stream_points'] < 1:
    raise app.UsageError('--stream_points must be a positive integer. '
                         f'Received: --stream_points={config["stream_points"]}')
  if FLAGS.latency_worker:
    result = latency_worker(FLAGS.latency_worker,
                            json.loads(FLAGS.latency_config))
    print(json.dumps(result), flush=True)
    return
  if FLAGS.tfidf_worker:
    tfidf_worker(FLAGS.tfidf_worker, FLAGS.data_file,
                 dict(config, k=FLAGS.tfidf_k), FLAGS.worker_output)
    return
  if FLAGS.rss_worker:
    result = measure_call(FLAGS.rss_worker, FLAGS.data_file, FLAGS.model_dir,
                          FLAGS.rss_k)
    with open(FLAGS.worker_output, 'w') as f:
      json.dump(result, f)
    return
  if FLAGS.call_memory:
    try:
      points = [int(n) for n in FLAGS.rss_points]
    except ValueError:
      points = []
    if not points or min(points) < 1:
      raise app.UsageError('--rss_points must be positive integers. '
                           f'Received: --rss_points={FLAGS.rss_points}')
    try:
      call_memory(points, FLAGS.rss_calls, d=FLAGS.rss_d, k=FLAGS.rss_k,
                  seed=FLAGS.seed, out_dir=FLAGS.out_dir,
                  isolate=FLAGS.isolate)
    except ValueError as error:
      raise app.UsageError(str(error)) from None
    return
  if FLAGS.worker_output:
    if len(FLAGS.workloads) != 1 or len(FLAGS.backends) != 1:
      raise app.UsageError('--worker_output runs exactly one workload and '
                           'one backend.')
    result = run_backend(FLAGS.workloads[0], FLAGS.backends[0], config,
                         FLAGS.data_file)
    with open(FLAGS.worker_output, 'w') as f:
      json.dump(result, f)
    return
  unknown = [w for w in FLAGS.workloads if w not in WORKLOADS and
             w not in (LATENCY, TFIDF)]
  if unknown or not FLAGS.workloads:
    raise app.UsageError(f'--workloads must be among '
                         f'{list(WORKLOADS) + [LATENCY, TFIDF]}. Received: '
                         f'--workloads={",".join(FLAGS.workloads)}')
  workloads = [w for w in FLAGS.workloads if w not in (LATENCY, TFIDF)]
  if workloads:
    try:
      check_names(workloads, FLAGS.backends)
    except ValueError as error:
      raise app.UsageError(str(error)) from None
    run_benchmarks(workloads, FLAGS.backends, out_dir=FLAGS.out_dir,
                   isolate=FLAGS.isolate, **config)
  if LATENCY in FLAGS.workloads:
    try:
      latency(steps=FLAGS.latency_steps,
              long_steps=FLAGS.latency_long_steps,
              repeats=FLAGS.latency_repeats, seed=FLAGS.seed,
              kmeans_plus_plus_num_retries=(
                  FLAGS.kmeans_plus_plus_num_retries),
              legacy_python=FLAGS.legacy_python,
              sklearn_threads=FLAGS.latency_sklearn_threads,
              out_dir=FLAGS.out_dir)
    except ValueError as error:
      raise app.UsageError(str(error)) from None
  if TFIDF in FLAGS.workloads:
    workload = TfidfWorkload(n=FLAGS.tfidf_rows, d=FLAGS.tfidf_columns,
                             k=FLAGS.tfidf_k, density=FLAGS.tfidf_density)
    try:
      tfidf(workload, FLAGS.tfidf_backends, max_iter=FLAGS.max_iter,
            seed=FLAGS.seed, repeats=FLAGS.repeats, tf32=config['tf32'],
            out_dir=FLAGS.out_dir, isolate=FLAGS.isolate)
    except ValueError as error:
      raise app.UsageError(str(error)) from None


if __name__ == '__main__':
  _define_flags()
  app.run(main)
