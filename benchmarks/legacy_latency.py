r"""The latency workload on the legacy TF 2.15 KMeans estimator.

Run by `benchmark.py --workloads=latency --legacy_python=PATH` as
`PATH legacy_latency.py CONFIG_JSON`, once per data size, in an interpreter
with TensorFlow 2.15 and tensorflow-estimator 2.15 (the last release that has
`tf.compat.v1.estimator.experimental.KMeans`); see benchmarks/README.md for
that virtual environment. It imports only the standard library, numpy and
TensorFlow, and prints one line of JSON on stdout (TensorFlow logs to stderr).

CONFIG_JSON keys:
  data: `.npy` file of the float32 points (n, d), written by benchmark.py.
  k: clusters of the first fit, the second fits and predict.
  steps: `train(input_fn, steps)` of every fit.
  long_steps: steps of the per-step measurement; 0 skips it.
  choose_k: the k of the choose-k loop's fresh estimators.
  predict_points: the first this many points are predicted.
  repeats: timed repeats of each in-process measurement (median).
  seed: the estimators' seed.
  kmeans_plus_plus_num_retries: as kmeans_estimator's.

The measurements mirror benchmark.py's for kmeans_estimator:
  first_fit_s: constructing the process's first estimator and its
    `train(input_fn, steps)`, TensorFlow imported and the data loaded before.
  second_fit_s: median over fresh estimators (each a new model_dir) fitted
    the same way, after that first one.
  choose_k_s: median over loops of fresh estimators, one per k of choose_k.
  predict_s: median of `list(predict_cluster_index(input_fn))` over the
    first fit's model_dir, each on a new estimator (constructed untimed),
    after one warm-up call.
  per_step_s: a fresh estimator fitted with `steps`, then the median of its
    `train(input_fn, steps=long_steps)` over long_steps (None when skipped).
Medians are over at least `repeats` calls, fast ones repeated for 0.2 s.

Training reads the whole array at every step (a `tf.data` dataset of the one
array, repeated): full-batch Lloyd steps, as `train(x, steps)` given the
array does in kmeans_estimator. Prediction reads it once.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf


def _median(times):
  return float(np.median(times))


def _repeat_times(fn, repeats, min_total_s=0.2, max_calls=1000):
  """As benchmark.py's: at least `repeats` calls of `fn` (returning the
  seconds it measured), fast ones repeated until `min_total_s` has passed."""
  times = []
  while len(times) < repeats or (sum(times) < min_total_s and
                                 len(times) < max_calls):
    times.append(float(fn()))
  return times


def _timed(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def _estimator(k, model_dir, config):
  kmeans = tf.compat.v1.estimator.experimental.KMeans
  return kmeans(
      num_clusters=k, model_dir=model_dir,
      initial_clusters=kmeans.KMEANS_PLUS_PLUS_INIT, use_mini_batch=False,
      seed=config['seed'],
      kmeans_plus_plus_num_retries=config['kmeans_plus_plus_num_retries'])


def measure(config):
  """The measurements of the module docstring, as a dict."""
  points = np.load(config['data'], allow_pickle=False)
  predict_points = points[:config['predict_points']]
  steps, repeats, k = config['steps'], config['repeats'], config['k']

  def train_input_fn():
    return tf.data.Dataset.from_tensors(points).repeat()

  def predict_input_fn():
    return tf.data.Dataset.from_tensors(predict_points)

  with tempfile.TemporaryDirectory(prefix='kmeans_legacy_latency_') as tmp:
    counter = iter(range(1 << 30))

    def fit(num_clusters):
      model_dir = os.path.join(tmp, f'model_{next(counter)}')
      estimator = _estimator(num_clusters, model_dir, config)
      estimator.train(train_input_fn, steps=steps)
      return model_dir

    start = time.perf_counter()
    trained_dir = fit(k)
    first_fit_s = time.perf_counter() - start
    second = _repeat_times(lambda: _timed(lambda: fit(k)), repeats)
    choose_k = _repeat_times(
        lambda: _timed(lambda: [fit(j) for j in config['choose_k']]),
        repeats)

    def predict_once():
      estimator = _estimator(k, trained_dir, config)
      start = time.perf_counter()
      indices = list(estimator.predict_cluster_index(predict_input_fn))
      seconds = time.perf_counter() - start
      if len(indices) != len(predict_points):
        raise RuntimeError(f'predict_cluster_index gave {len(indices)} '
                           f'indices for {len(predict_points)} points')
      return seconds

    predict_once()  # Warm-up.
    predict = _repeat_times(predict_once, repeats)

    per_step = []
    if config['long_steps']:
      estimator = _estimator(k, os.path.join(tmp, 'per_step'), config)
      estimator.train(train_input_fn, steps=steps)
      # Whole calls are repeated, then each divided by its steps.
      per_step = [seconds / config['long_steps'] for seconds in _repeat_times(
          lambda: _timed(lambda: estimator.train(
              train_input_fn, steps=config['long_steps'])), repeats)]

  return {
      'tensorflow': tf.__version__,
      'numpy': np.__version__,
      'python': sys.version.split()[0],
      'first_fit_s': first_fit_s,
      'second_fit_s': _median(second),
      'choose_k_s': _median(choose_k),
      'predict_s': _median(predict),
      'per_step_s': _median(per_step) if per_step else None,
      'times': {'second_fit_s': second, 'choose_k_s': choose_k,
                'predict_s': predict, 'per_step_s': per_step},
  }


def main(argv):
  if len(argv) != 2:
    raise SystemExit(f'usage: {argv[0]} CONFIG_JSON')
  if not hasattr(tf.compat.v1, 'estimator'):
    raise SystemExit(
        f'TensorFlow {tf.__version__} has no tf.compat.v1.estimator: run '
        'this with TensorFlow 2.15 and tensorflow-estimator 2.15 (see '
        'benchmarks/README.md).')
  tf.get_logger().setLevel('ERROR')
  print(json.dumps(measure(json.loads(argv[1]))), flush=True)


if __name__ == '__main__':
  main(sys.argv)
