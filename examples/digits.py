"""k-means on scikit-learn's 8x8 handwritten digits, as people do with MNIST.

The 1797 digit images that ship with scikit-learn (no download) are clustered
into 10 clusters by full-batch k-means, without looking at the labels: 10
restarts from k-means++ centers side by side, the one of lowest inertia
kept (scikit-learn's `n_init`), which makes the result depend little on the
seed. Then
the labels are used to judge the clusters: for each cluster the script prints
its size, its three most common true digits and its purity (the share of its
images that show its most common digit), then the overall purity (the share
of all images that show the most common digit of their cluster). It writes
the 10 centers, drawn as 8x8 images, to a PNG.

Needs the `examples` extra (scikit-learn and matplotlib):

  pip install 'kmeans_estimator[examples]'
  python examples/digits.py --output digits.png

With the default flags the overall purity is 0.79: about four images in
five show the most common digit of their cluster.

The centers are also in the checkpoint, under the legacy variable name:
`tf.train.load_variable(model_dir, 'clusters')`.
"""

import sys

from absl import app
from absl import flags
import numpy as np

_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None,
    'Directory for the checkpoints; a fresh temporary directory if unset. An '
    'existing model there is trained further.')
_OUTPUT = flags.DEFINE_string('output', 'digits.png',
                              'Where to write the PNG of the 10 centers.')
_DPI = flags.DEFINE_integer(
    'dpi', 100, 'Resolution of the PNG: it is 8 x 4 inches, so 800 x 400 '
    'pixels at 100 dpi.')
_NUM_CLUSTERS = flags.DEFINE_integer('num_clusters', 10, 'Number of clusters.')
_NUM_RESTARTS = flags.DEFINE_integer(
    'num_restarts', 10, 'k-means runs side by side (each from its own '
    'k-means++ centers); the one of lowest inertia is kept.')
_STEPS = flags.DEFINE_integer(
    'steps', 100, 'Most full-batch Lloyd steps; training stops earlier once '
    'the loss stops changing.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the k-means++ initialisation.')

# The figure's size in inches; the PNG is this times --dpi pixels.
FIGURE_INCHES = (8, 4)
# How many of each cluster's most common digits to print.
TOP = 3
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def load_digits():
  """The digits as (points, labels).

  Returns:
    points: float32 array of shape (1797, 64), pixel intensities scaled from
      0..16 to 0..1, row by row.
    labels: int array of shape (1797,), the true digit of each image.
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  return (digits.data / 16.0).astype(np.float32), digits.target


def cluster_report(labels, cluster_index, num_clusters):
  """What each cluster holds, judged by the true labels.

  Args:
    labels: int array of shape (n,), the true digits.
    cluster_index: int array of shape (n,), each image's cluster.
    num_clusters: k.

  Returns:
    (rows, purity): for each cluster a tuple (size, top, purity) where top
    lists up to `TOP` (digit, count) pairs, most common first (ties to the
    smaller digit) and purity is the share of the cluster showing its most
    common digit (0 for an empty cluster); and the overall purity.
  """
  rows, majority_total = [], 0
  for cluster in range(num_clusters):
    counts = np.bincount(labels[cluster_index == cluster], minlength=10)
    size = int(counts.sum())
    order = np.argsort(-counts, kind='stable')
    top = [(int(d), int(counts[d])) for d in order[:TOP] if counts[d] > 0]
    majority_total += int(counts.max())
    rows.append((size, top, counts.max() / size if size else 0.0))
  return rows, majority_total / len(labels)


def draw_centers(centers, rows, purity, path, dpi):
  """Writes the centers as 8x8 grey images, in two rows, to a PNG; returns
  its (width, height) in pixels."""
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top
  figure = Figure(figsize=FIGURE_INCHES, layout='constrained')
  FigureCanvasAgg(figure)
  columns = (len(centers) + 1) // 2
  for cluster, (center, (size, top, share)) in enumerate(zip(centers, rows)):
    axes = figure.add_subplot(2, columns, cluster + 1)
    axes.imshow(center.reshape(8, 8), cmap='gray_r', vmin=0, vmax=1,
                interpolation='nearest')
    title = (f'cluster {cluster}: mostly {top[0][0]}\n{share:.0%} of {size}'
             if top else f'cluster {cluster}\nempty')
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
  figure.suptitle(
      f'k-means centers of the 8x8 digits; over each, the most common true '
      f'digit\nof its cluster and its share (overall purity {purity:.2f})',
      fontsize=11)
  figure.savefig(path, dpi=dpi)
  width, height = (round(inches * dpi) for inches in FIGURE_INCHES)
  return width, height


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top,unused-import
    import sklearn  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    sys.exit("examples/digits.py needs scikit-learn and matplotlib: pip "
             "install 'kmeans_estimator[examples]'")
  # Imported here, after the flags, so that --help does not load TensorFlow.
  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top

  points, labels = load_digits()
  k = _NUM_CLUSTERS.value
  kmeans = KMeansClustering(
      num_clusters=k, model_dir=_MODEL_DIR.value, use_mini_batch=False,
      initial_clusters=KMeansClustering.KMEANS_PLUS_PLUS_INIT,
      seed=_SEED.value, relative_tolerance=1e-6,
      num_restarts=_NUM_RESTARTS.value)

  def input_fn():
    return points  # All 1797 images: one exact Lloyd iteration per step.

  kmeans.train(input_fn, steps=_STEPS.value)
  metrics = kmeans.evaluate(input_fn)
  cluster_index = np.fromiter(kmeans.predict_cluster_index(input_fn),
                              np.int64, len(points))
  rows, purity = cluster_report(labels, cluster_index, k)

  print(f'Clustered {len(points)} digits ({points.shape[1]} pixels each) '
        f'into {k} clusters: {metrics["global_step"]} full-batch steps of '
        f'{_NUM_RESTARTS.value} restarts, the best kept, inertia '
        f'{metrics["inertia"]:.2f}.')
  print(f'model_dir: {kmeans.model_dir}')
  print('cluster   size  top digits (count)            purity')
  for cluster, (size, top, cluster_purity) in enumerate(rows):
    digits = '  '.join(f'{digit} ({count})' for digit, count in top)
    print(f'{cluster:7d}  {size:5d}  {digits:28s}  {cluster_purity:.3f}')
  majority = round(purity * len(points))
  print(f'overall purity: {purity:.4f} ({majority} of {len(points)} images '
        'show the most common digit of their cluster)')
  width, height = draw_centers(kmeans.cluster_centers(), rows, purity,
                               _OUTPUT.value, _DPI.value)
  print(f'wrote {_OUTPUT.value} ({width}x{height} pixels)')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
