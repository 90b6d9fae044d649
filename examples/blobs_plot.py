"""k-means on 2-D blobs, with the centers it finds and the true ones drawn.

Points are drawn around `--num_clusters` random blob centers (a normal
distribution of width `--blob_width` around each, centers uniform in
[-10, 10]^2), then clustered by full-batch k-means with k-means++
initialisation. The script prints every center found with the size of its
cluster and its distance to the nearest true blob center, and writes a
scatter plot: points coloured by their cluster, the k-means centers as discs
of their cluster's colour, the true blob centers as black crosses.

Needs matplotlib (the `examples` extra):

  pip install 'kmeans_estimator[examples]'
  python examples/blobs_plot.py --output blobs.png
"""

import sys

from absl import app
from absl import flags
import numpy as np

_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None,
    'Directory for the checkpoints; a fresh temporary directory if unset. An '
    'existing model there is trained further.')
_OUTPUT = flags.DEFINE_string('output', 'blobs.png',
                              'Where to write the PNG.')
_DPI = flags.DEFINE_integer(
    'dpi', 100, 'Resolution of the PNG: it is 8 x 6 inches, so 800 x 600 '
    'pixels at 100 dpi.')
_POINTS_OUTPUT = flags.DEFINE_string(
    'points_output', None,
    'If set, also save the points, their true blob, their cluster and the '
    'centers to this .npz file (arrays points, blob, cluster_index, '
    'centers, true_centers).')
_NUM_POINTS = flags.DEFINE_integer('num_points', 1200, 'Number of points.')
_NUM_CLUSTERS = flags.DEFINE_integer(
    'num_clusters', 6, 'Number of blobs, and of clusters (at most 10).')
_BLOB_WIDTH = flags.DEFINE_float(
    'blob_width', 1.2, 'Standard deviation of each blob around its center.')
_STEPS = flags.DEFINE_integer(
    'steps', 50, 'Most full-batch Lloyd steps; training stops earlier once '
    'the loss stops changing.')
_SEED = flags.DEFINE_integer('seed', 0,
                             'Seed of the data and of the initialisation.')

# The figure's size in inches; the PNG is this times --dpi pixels.
FIGURE_INCHES = (8, 6)
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def make_blobs(num_points, num_blobs, width, seed):
  """Gaussian blobs in the plane.

  Args:
    num_points: n.
    num_blobs: number of blobs.
    width: standard deviation of each blob around its center.
    seed: seed of `np.random.default_rng`.

  Returns:
    points: float32 array of shape (n, 2).
    blob: int array of shape (n,), the blob each point was drawn from.
    true_centers: float32 array of shape (num_blobs, 2).
  """
  rng = np.random.default_rng(seed)
  true_centers = rng.uniform(-10, 10, (num_blobs, 2)).astype(np.float32)
  blob = rng.integers(num_blobs, size=num_points)
  points = true_centers[blob] + width * rng.normal(size=(num_points, 2))
  return points.astype(np.float32), blob, true_centers


def draw(points, cluster_index, centers, true_centers, title, path, dpi):
  """Writes the scatter plot to a PNG; returns its (width, height) in pixels.

  Points and k-means centers take the colour of their cluster (matplotlib's
  'tab10', so at most 10 clusters); the true centers are black crosses with
  a white edge, drawn last so that they show on top of the discs.
  """
  # pylint: disable=g-import-not-at-top
  from matplotlib import colormaps
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from matplotlib.lines import Line2D
  # pylint: enable=g-import-not-at-top
  colours = colormaps['tab10'].colors
  figure = Figure(figsize=FIGURE_INCHES, layout='constrained')
  FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  axes.scatter(points[:, 0], points[:, 1],
               c=[colours[i] for i in cluster_index], s=7, alpha=0.45,
               linewidths=0)
  axes.scatter(centers[:, 0], centers[:, 1], s=400,
               c=[colours[i] for i in range(len(centers))],
               edgecolors='black', linewidths=1.5, zorder=3)
  axes.scatter(true_centers[:, 0], true_centers[:, 1], marker='X', s=120,
               c='black', edgecolors='white', linewidths=1.2, zorder=4)
  axes.set_aspect('equal', adjustable='datalim')
  axes.set_xlabel('feature 0')
  axes.set_ylabel('feature 1')
  figure.suptitle(title)
  axes.grid(alpha=0.25)
  legend = [
      Line2D([], [], linestyle='', marker='o', markersize=4, color='grey',
             alpha=0.6, label='points, coloured by cluster'),
      Line2D([], [], linestyle='', marker='o', markersize=13,
             markerfacecolor='lightgrey', markeredgecolor='black',
             markeredgewidth=1.5, label='k-means centers (colour of '
             'their cluster)'),
      Line2D([], [], linestyle='', marker='X', markersize=11,
             markerfacecolor='black', markeredgecolor='white',
             markeredgewidth=1.2, label='true blob centers'),
  ]
  axes.legend(handles=legend, loc='best', framealpha=0.9, labelspacing=1.0,
              borderpad=0.8)
  figure.savefig(path, dpi=dpi)
  return tuple(round(inches * dpi) for inches in FIGURE_INCHES)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    sys.exit("examples/blobs_plot.py needs matplotlib: pip install "
             "'kmeans_estimator[examples]'")
  k = _NUM_CLUSTERS.value
  if not 1 <= k <= 10:
    raise app.UsageError(f'--num_clusters must be in 1..10 (one colour each).'
                         f' Received: --num_clusters={k}')
  # Imported here, after the flags, so that --help does not load TensorFlow.
  from kmeans_estimator import KMeansClustering  # pylint: disable=g-import-not-at-top

  points, blob, true_centers = make_blobs(_NUM_POINTS.value, k,
                                          _BLOB_WIDTH.value, _SEED.value)
  kmeans = KMeansClustering(
      num_clusters=k, model_dir=_MODEL_DIR.value, use_mini_batch=False,
      initial_clusters=KMeansClustering.KMEANS_PLUS_PLUS_INIT,
      seed=_SEED.value, relative_tolerance=1e-6)

  def input_fn():
    return points

  kmeans.train(input_fn, steps=_STEPS.value)
  centers = kmeans.cluster_centers()
  cluster_index = np.fromiter(kmeans.predict_cluster_index(input_fn),
                              np.int64, len(points))
  metrics = kmeans.evaluate(input_fn)

  print(f'Clustered {len(points)} 2-D points from {k} blobs into {k} '
        f'clusters: {metrics["global_step"]} full-batch steps, inertia '
        f'{metrics["inertia"]:.3f}.')
  print(f'model_dir: {kmeans.model_dir}')
  print('cluster  center              size  distance to nearest true center')
  for cluster, center in enumerate(centers):
    size = int(np.sum(cluster_index == cluster))
    gap = np.min(np.linalg.norm(true_centers - center, axis=1))
    print(f'{cluster:7d}  ({center[0]:7.3f}, {center[1]:7.3f})  {size:5d}  '
          f'{gap:.3f}')
  if _POINTS_OUTPUT.value:
    np.savez(_POINTS_OUTPUT.value, points=points, blob=blob,
             cluster_index=cluster_index, centers=centers,
             true_centers=true_centers)
    print(f'wrote {_POINTS_OUTPUT.value}')
  title = (f'k-means++ then full-batch Lloyd: k={k}, {len(points)} points, '
           f'{metrics["global_step"]} steps, inertia '
           f'{metrics["inertia"]:.0f}')
  width, height = draw(points, cluster_index, centers, true_centers, title,
                       _OUTPUT.value, _DPI.value)
  print(f'wrote {_OUTPUT.value} ({width}x{height} pixels)')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
