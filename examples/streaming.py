"""Full-batch k-means over TFRecord shards, read back batch by batch.

With `use_mini_batch=False`, one training step is one exact Lloyd iteration
over all the data. When `input_fn` returns a finite `tf.data.Dataset` of
batches, each step streams the whole dataset once: every batch adds its
points to per-cluster sums and counts computed with the current centers, and
the centers move once, at the end of the pass. So the data need not fit in
memory, and the result is the one you get from the same points held in
memory as one array.

This script shows it: it writes points to TFRecord shards (one `tf.Example`
per point, feature 'x'), trains one estimator on the shards read back in
batches and another on the same points as an in-memory array, from the same
initial centers, and prints both losses at every step, the largest
difference between the two sets of centers, and whether every point gets
the same cluster. The two agree to float32 rounding (sums over batches are
added in another order than sums over one array) and the script fails if
they do not.

Both estimators get the same initial centers, given as an array (here
chosen by k-means++ over the first batch with the core `KMeans` module): the
'random' and 'kmeans_plus_plus' initialisations draw their centers from the
first batch, and the first batch of the shards is not all the data, so
without the array the two would start from different centers.

  python examples/streaming.py --num_points=20000 --batch_size=1000
"""

import glob
import os
import tempfile

from absl import app
from absl import flags
import numpy as np

_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Directory for the TFRecord shards; a fresh temporary '
    'directory if unset. Existing shards there are replaced.')
_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None, 'Directory under which the two models go (streamed/ '
    'and in_memory/); a fresh temporary directory if unset. Models already '
    'there are trained further.')
_NUM_POINTS = flags.DEFINE_integer('num_points', 4000, 'Number of points.')
_NUM_FEATURES = flags.DEFINE_integer('num_features', 8,
                                     'Dimension of the points.')
_NUM_CLUSTERS = flags.DEFINE_integer('num_clusters', 5, 'Number of clusters.')
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 4,
                                   'Number of TFRecord files.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 500,
                                   'Points per batch read from the shards.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Full-batch Lloyd steps.')
_SEED = flags.DEFINE_integer('seed', 0,
                             'Seed of the data and of the initial centers.')

FEATURE = 'x'
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def make_points(num_points, num_features, num_blobs, seed):
  """Overlapping Gaussian blobs (width 2, centers uniform in [-3, 3]^d).

  Returns:
    float32 array of shape (num_points, num_features).
  """
  rng = np.random.default_rng(seed)
  blob_centers = rng.uniform(-3, 3, (num_blobs, num_features))
  blob = rng.integers(num_blobs, size=num_points)
  points = blob_centers[blob] + 2 * rng.normal(size=(num_points,
                                                      num_features))
  return points.astype(np.float32)


def write_shards(points, data_dir, num_shards):
  """Writes `points` to TFRecord files, consecutive rows in each shard.

  Returns:
    The shard paths, in the order of the rows they hold.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  os.makedirs(data_dir, exist_ok=True)
  for old in glob.glob(os.path.join(data_dir, 'points-*.tfrecord')):
    os.remove(old)
  paths = []
  for shard, rows in enumerate(np.array_split(points, num_shards)):
    path = os.path.join(data_dir,
                        f'points-{shard:05d}-of-{num_shards:05d}.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
      for row in rows:
        example = tf.train.Example(features=tf.train.Features(feature={
            FEATURE: tf.train.Feature(
                float_list=tf.train.FloatList(value=row))}))
        writer.write(example.SerializeToString())
    paths.append(path)
  return paths


def shards_input_fn(paths, num_features, batch_size):
  """An input_fn reading the shards in order, `batch_size` records a batch.

  The dataset yields dicts {'x': float32 Tensor of shape (b, d)}, as an
  Estimator input pipeline would; the estimator concatenates dict features.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  spec = {FEATURE: tf.io.FixedLenFeature([num_features], tf.float32)}

  def input_fn():
    records = tf.data.TFRecordDataset(paths)
    return records.batch(batch_size).map(
        lambda serialized: tf.io.parse_example(serialized, spec))

  return input_fn


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  # Imported here, after the flags, so that --help does not load TensorFlow.
  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import KMeans
  from kmeans_estimator import KMeansClustering
  from kmeans_estimator import SessionRunArgs
  from kmeans_estimator import SessionRunHook
  # pylint: enable=g-import-not-at-top

  class LossHook(SessionRunHook):
    """Records the loss of every training step (the legacy hook protocol)."""

    def __init__(self):
      self.losses = []

    def before_run(self, run_context):
      return SessionRunArgs('loss')

    def after_run(self, run_context, run_values):
      self.losses.append(float(run_values.results))

  n, d, k = _NUM_POINTS.value, _NUM_FEATURES.value, _NUM_CLUSTERS.value
  data_dir = _DATA_DIR.value or tempfile.mkdtemp(prefix='kmeans_shards_')
  model_dir = _MODEL_DIR.value or tempfile.mkdtemp(prefix='kmeans_models_')

  points = make_points(n, d, k, _SEED.value)
  paths = write_shards(points, data_dir, _NUM_SHARDS.value)
  streamed_fn = shards_input_fn(paths, d, _BATCH_SIZE.value)
  num_batches = sum(1 for _ in streamed_fn())
  print(f'Wrote {n} points of dimension {d} to {len(paths)} TFRecord shards '
        f'in {data_dir}; read back as {num_batches} batches of at most '
        f'{_BATCH_SIZE.value}.')

  # Same initial centers for both, given as an array: k-means++ over the
  # first batch (a sample that fits in memory), by the core KMeans module.
  first_batch = next(iter(streamed_fn()))[FEATURE]
  chooser = KMeans(num_clusters=k,
                   initial_clusters=KMeans.KMEANS_PLUS_PLUS_INIT,
                   random_seed=_SEED.value)
  chooser.initialize(first_batch)
  initial_centers = chooser.clusters.numpy()
  os.makedirs(model_dir, exist_ok=True)
  np.save(os.path.join(model_dir, 'initial_centers.npy'), initial_centers)
  print(f'initial centers: k-means++ over the first batch, saved to '
        f'{os.path.join(model_dir, "initial_centers.npy")}')

  def estimator(name):
    return KMeansClustering(
        num_clusters=k, model_dir=os.path.join(model_dir, name),
        initial_clusters=initial_centers, use_mini_batch=False,
        seed=_SEED.value)

  def in_memory_fn():
    return points

  results = {}
  for name, input_fn in (('streamed', streamed_fn),
                         ('in_memory', in_memory_fn)):
    kmeans, hook = estimator(name), LossHook()
    kmeans.train(input_fn, hooks=[hook], steps=_STEPS.value)
    results[name] = {
        'kmeans': kmeans,
        'losses': hook.losses,
        'centers': kmeans.cluster_centers(),
        'cluster_index': np.fromiter(kmeans.predict_cluster_index(input_fn),
                                     np.int64, n),
        'inertia': kmeans.evaluate(input_fn)['inertia'],
    }
  streamed, in_memory = results['streamed'], results['in_memory']

  print('step  streamed loss    in-memory loss   relative difference')
  for step, (a, b) in enumerate(zip(streamed['losses'],
                                    in_memory['losses']), 1):
    print(f'{step:4d}  {a:15.4f}  {b:15.4f}  '
          f'{abs(a - b) / max(abs(b), 1e-30):.1e}')
  print(f'inertia after training: streamed {streamed["inertia"]:.4f}, '
        f'in memory {in_memory["inertia"]:.4f}')

  difference = np.abs(streamed['centers'] - in_memory['centers']).max()
  scale = np.abs(in_memory['centers']).max()
  same_clusters = int(np.sum(streamed['cluster_index'] ==
                             in_memory['cluster_index']))
  print(f'max |streamed center - in-memory center|: {difference:.3g} '
        f'(largest |coordinate| {scale:.3g})')
  print(f'points in the same cluster: {same_clusters} of {n}')
  equal = (np.allclose(streamed['centers'], in_memory['centers'],
                       rtol=1e-5, atol=1e-5 * scale)
           and same_clusters == n)
  if not equal:
    raise SystemExit('The streamed and in-memory results differ.')
  print('The streamed and in-memory centers are equal (to float32 rounding), '
        'and so are the clusters.')
  print(f'model_dirs: {streamed["kmeans"].model_dir} '
        f'{in_memory["kmeans"].model_dir}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
