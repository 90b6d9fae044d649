"""k-means on 2-D blobs, with the centers drawn over the points in a PNG.

Points are drawn around `--num_clusters` random blob centers (a normal
distribution of width 1 around each, centers uniform in [-10, 10]^2), then
clustered by full-batch k-means with k-means++ initialisation. The script
prints every center found with the size of its cluster and its distance to
the nearest true blob center, and writes a scatter plot: points coloured by
their cluster, found centers as black crosses, true centers as circles.

Needs matplotlib (the `examples` extra):

  pip install 'kmeans_estimator[examples]'
  python examples/blobs_plot.py --output blobs.png
"""

import sys

from absl import app
from absl import flags
import numpy as np

from kmeans_estimator import KMeansClustering

try:
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
except ImportError:
  Figure = None

_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None,
    'Directory for the checkpoints; a fresh temporary directory if unset. An '
    'existing model there is trained further.')
_OUTPUT = flags.DEFINE_string('output', 'blobs.png',
                              'Where to write the PNG.')
_DPI = flags.DEFINE_integer(
    'dpi', 100, 'Resolution of the PNG: it is 6 x 6 inches, so 600 x 600 '
    'pixels at 100 dpi.')
_POINTS_OUTPUT = flags.DEFINE_string(
    'points_output', None,
    'If set, also save the points, their true blob, their cluster and the '
    'centers to this .npz file (arrays points, blob, cluster_index, '
    'centers, true_centers).')
_NUM_POINTS = flags.DEFINE_integer('num_points', 600, 'Number of points.')
_NUM_CLUSTERS = flags.DEFINE_integer(
    'num_clusters', 4, 'Number of blobs, and of clusters (at most 10).')
_STEPS = flags.DEFINE_integer(
    'steps', 50, 'Most full-batch Lloyd steps; training stops earlier once '
    'the loss stops changing.')
_SEED = flags.DEFINE_integer('seed', 0,
                             'Seed of the data and of the initialisation.')

# The figure's size in inches; the PNG is this times --dpi pixels.
FIGURE_INCHES = (6, 6)


def make_blobs(num_points, num_blobs, seed):
  """Gaussian blobs in the plane.

  Args:
    num_points: n.
    num_blobs: number of blobs.
    seed: seed of `np.random.default_rng`.

  Returns:
    points: float32 array of shape (n, 2).
    blob: int array of shape (n,), the blob each point was drawn from.
    true_centers: float32 array of shape (num_blobs, 2).
  """
  rng = np.random.default_rng(seed)
  true_centers = rng.uniform(-10, 10, (num_blobs, 2)).astype(np.float32)
  blob = rng.integers(num_blobs, size=num_points)
  points = true_centers[blob] + rng.normal(size=(num_points, 2))
  return points.astype(np.float32), blob, true_centers


def draw(points, cluster_index, centers, true_centers, title, path, dpi):
  """Writes the scatter plot to a PNG; returns its (width, height) in pixels."""
  figure = Figure(figsize=FIGURE_INCHES, layout='constrained')
  FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  axes.scatter(points[:, 0], points[:, 1], c=cluster_index, cmap='tab10',
               vmin=0, vmax=9, s=8, alpha=0.6)
  axes.scatter(true_centers[:, 0], true_centers[:, 1], s=160,
               facecolors='none', edgecolors='grey', linewidths=1.5,
               label='true blob centers')
  axes.scatter(centers[:, 0], centers[:, 1], marker='X', s=140, c='black',
               edgecolors='white', linewidths=1, label='k-means centers')
  axes.set_aspect('equal', adjustable='datalim')
  axes.legend(loc='best', fontsize=8)
  axes.set_title(title, fontsize=10)
  figure.savefig(path, dpi=dpi)
  return tuple(round(inches * dpi) for inches in FIGURE_INCHES)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if Figure is None:
    sys.exit("examples/blobs_plot.py needs matplotlib: pip install "
             "'kmeans_estimator[examples]'")
  k = _NUM_CLUSTERS.value
  if not 1 <= k <= 10:
    raise app.UsageError(f'--num_clusters must be in 1..10 (one colour each).'
                         f' Received: --num_clusters={k}')
  points, blob, true_centers = make_blobs(_NUM_POINTS.value, k, _SEED.value)
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
  title = (f'k-means, k={k}, on {len(points)} points '
           f'(inertia {metrics["inertia"]:.1f})')
  width, height = draw(points, cluster_index, centers, true_centers, title,
                       _OUTPUT.value, _DPI.value)
  print(f'wrote {_OUTPUT.value} ({width}x{height} pixels)')


if __name__ == '__main__':
  app.run(main)
