"""k-means on several machines with tf.distribute.MultiWorkerMirroredStrategy.

On two machines, run the same command on each, with its own --task_index:

  # machine A (the chief):
  python examples/multi_worker.py --workers=hostA:12345,hostB:12345 \
      --task_index=0 --model_dir=/shared/kmeans
  # machine B:
  python examples/multi_worker.py --workers=hostA:12345,hostB:12345 \
      --task_index=1 --model_dir=/shared/kmeans

Each sets TF_CONFIG = {"cluster": {"worker": [workers]}, "task": {"type":
"worker", "index": task_index}} before TensorFlow starts. Only the chief
(task 0) writes checkpoints; model_dir should be on storage that every
worker can read (a shared filesystem or a bucket), so that a restart resumes
on all of them.

If a worker dies: the others raise `kmeans_estimator.distribute.
WorkerFailedError` within a bounded time (TensorFlow's heartbeats; --timeout
also bounds each collective), naming the lost worker and the chief's last
checkpoint. Restart every worker with the same command, the survivors too:
they resume from that checkpoint, and since --steps is a max_steps, the
restarted run ends where an uninterrupted one would. See "When a worker
dies" in the README.

On one machine, --local starts both workers as processes on 127.0.0.1 (on
free ports), waits for them, then trains the same model in this process and
prints both results side by side: this is how the distributed run is
verified without a cluster.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

_WORKERS = flags.DEFINE_list('workers', None,
                             'host:port of every worker, in task order.')
_TASK_INDEX = flags.DEFINE_integer('task_index', 0, 'This worker\'s index.')
_MODEL_DIR = flags.DEFINE_string('model_dir', None, 'Shared model directory.')
_LOCAL = flags.DEFINE_boolean(
    'local', False, 'Run two workers on this machine and compare them with '
    'one process.')
_STEPS = flags.DEFINE_integer(
    'steps', 5, 'Train until this many Lloyd steps are done (max_steps, so '
    'that a restarted run finishes the same run).')
_TIMEOUT = flags.DEFINE_integer(
    'timeout', 60, 'Seconds a collective waits for a peer before failing; '
    'longer than the longest pause between two steps on any worker.')

_K = 5
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def make_points():
  """Deterministic blobs: 2000 points in 4 dimensions around 5 centers."""
  rng = np.random.default_rng(0)
  centers = rng.uniform(0, 100, size=(_K, 4))
  return (centers[rng.integers(_K, size=2000)] +
          rng.normal(0, 5, size=(2000, 4))).astype(np.float32)


def input_fn(input_context=None):
  """Batches of the data; each worker reads its own shard of the batches."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dataset = tf.data.Dataset.from_tensor_slices(make_points()).batch(100)
  if input_context is not None:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
  return dataset


def train(model_dir, strategy=None):
  """Trains full-batch k-means (k-means++ on the first batch); returns it."""
  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import RunConfig  # pylint: disable=g-import-not-at-top
  kmeans = KMeansClustering(
      num_clusters=_K, model_dir=model_dir, use_mini_batch=False, seed=1,
      initial_clusters=KMeansClustering.KMEANS_PLUS_PLUS_INIT,
      config=RunConfig(train_distribute=strategy))
  kmeans.train(input_fn, max_steps=_STEPS.value)
  return kmeans


def run_worker():
  os.environ['TF_CONFIG'] = json.dumps({
      'cluster': {'worker': _WORKERS.value},
      'task': {'type': 'worker', 'index': _TASK_INDEX.value}})
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  strategy = tf.distribute.MultiWorkerMirroredStrategy(
      communication_options=tf.distribute.experimental.CommunicationOptions(
          timeout_seconds=_TIMEOUT.value))
  from kmeans_estimator import distribute  # pylint: disable=g-import-not-at-top
  try:
    train(_MODEL_DIR.value, strategy)
  except distribute.WorkerFailedError as error:
    # Another worker is gone: this one cannot go on either. The message says
    # which, and where the restart resumes.
    raise SystemExit(f'worker {_TASK_INDEX.value}: {error}') from error
  print(f'worker {_TASK_INDEX.value} done')


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def run_local():
  root = _MODEL_DIR.value or tempfile.mkdtemp()
  model_dir = os.path.join(root, 'distributed')
  workers = ','.join(f'127.0.0.1:{free_port()}' for _ in range(2))
  processes = [subprocess.Popen(
      [sys.executable, __file__, f'--workers={workers}',
       f'--task_index={index}', f'--model_dir={model_dir}',
       f'--steps={_STEPS.value}', f'--timeout={_TIMEOUT.value}'])
               for index in range(2)]
  codes = [process.wait(timeout=600) for process in processes]
  if codes != [0, 0]:
    raise SystemExit(f'A worker failed (exit codes {codes}).')

  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top
  single = train(os.path.join(root, 'single'))
  distributed = KMeansClustering(num_clusters=_K, model_dir=model_dir)
  points = make_points()
  for name, kmeans in (('two workers', distributed),
                       ('one process', single)):
    figures = kmeans.evaluate(lambda: points)
    print(f"{name:12s} global_step={figures['global_step']} "
          f"inertia={figures['inertia']:.3f}")
  difference = np.abs(distributed.cluster_centers() -
                      single.cluster_centers()).max()
  print(f'largest difference between the centers: {difference:.3g}')
  if difference > 1e-3:
    raise SystemExit('The distributed centers differ from one process.')
  print('OK: two workers give the centers of one process.')


def main(argv):
  del argv
  if _LOCAL.value:
    run_local()
  elif _WORKERS.value:
    run_worker()
  else:
    raise app.UsageError('Give --workers and --task_index (one machine of a '
                         'cluster), or --local (two workers on this one).')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
