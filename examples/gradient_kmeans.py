"""k-means by gradient descent, beside Lloyd's algorithm on the same data.

The method of the blog post this project grew from ("K-means in
TensorFlow", nxn.se, 2015): the k prototypes w are Variables, the cost is
Bottou and Bengio's (1995)

    E(w) = sum_i min_k |x_i - w_k|^2

(`kmeans_estimator.keras.kmeans_loss`), and a Keras optimizer (plain
gradient descent, `keras.optimizers.SGD`) minimises it. On the post's
data, `make_blobs(500, random_state=1111)` with k=3, it runs 100 steps and
prints the cost every 10; the post reached 940.45 and stayed there. The
same initial centers are then given to Lloyd's algorithm
(`KMeansLayer.from_centers(...).adapt`), whose result is printed beside.

The gradient of E with respect to w_k is 2 sum_{i in C_k} (w_k - x_i): a
step of learning rate lr moves each prototype 2 lr |C_k| of the way to the
mean of its cluster, where Lloyd's step moves it all the way. The default
lr = 0.001 = 1 / (2 n) moves it |C_k| / n of the way (a third, for three
equal blobs): plain gradient descent on the sum converges for
lr < 1 / max |C_k| and oscillates beyond.

The post drew its three initial prototypes at random from the data
(`--init=random`, unseeded there); here they come from this library's
initialiser, k-means++ by default, with `--seed`.

Needs scikit-learn (the data) and, for `--output`, matplotlib (the
`examples` extra):

  pip install 'kmeans_estimator[examples]'
  python examples/gradient_kmeans.py --output gradient_kmeans.png
"""

import importlib.util
import sys

from absl import app
from absl import flags
import numpy as np

_NUM_POINTS = flags.DEFINE_integer('num_points', 500,
                                   'Points of make_blobs (the post: 500).')
_DATA_SEED = flags.DEFINE_integer(
    'data_seed', 1111, 'random_state of make_blobs (the post: 1111).')
_NUM_CLUSTERS = flags.DEFINE_integer('num_clusters', 3,
                                     'k, the prototypes (the post: 3).')
_STEPS = flags.DEFINE_integer('steps', 100,
                              'Gradient descent steps (the post: 100).')
_LEARNING_RATE = flags.DEFINE_float(
    'learning_rate', 0.001,
    'Learning rate of plain gradient descent on the sum E(w); converges '
    'below 1 / (largest cluster size).')
_INIT = flags.DEFINE_enum(
    'init', 'kmeans_plus_plus', ['kmeans_plus_plus', 'random'],
    'How the initial prototypes are chosen from the data: k-means++, or '
    'k distinct points at random (the post).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the initial prototypes.')
_OUTPUT = flags.DEFINE_string(
    'output', None, 'If set, write the scatter plot of the points and the '
    'learned prototypes to this PNG.')
_DPI = flags.DEFINE_integer('dpi', 100, 'Resolution of the PNG (6 x 5 '
                            'inches).')

FIGURE_INCHES = (6, 5)
# Print the cost every this many steps, as the post did.
PRINT_EVERY = 10
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def initial_prototypes(points, k, method, seed):
  """k initial prototypes (k, 2) chosen from `points` by the library's
  initialiser (`KMeans.initialize`)."""
  from kmeans_estimator import KMeans  # pylint: disable=g-import-not-at-top
  core = KMeans(num_clusters=k, initial_clusters=method, random_seed=seed)
  core.initialize(points)
  return core.clusters.numpy()


def gradient_descent(points, initial, steps, learning_rate):
  """Plain gradient descent on E(w) from `initial`.

  Returns:
    (prototypes (k, d), costs): the costs E(w) before each step, then after
    the last (steps + 1 values).
  """
  # pylint: disable=g-import-not-at-top
  import keras
  import tensorflow as tf
  from kmeans_estimator.keras import kmeans_loss
  # pylint: enable=g-import-not-at-top
  prototypes = keras.Variable(initial, name='prototypes')
  optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
  points = tf.constant(points)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      cost = kmeans_loss(points, prototypes.value)
    optimizer.apply_gradients([(tape.gradient(cost, prototypes.value),
                                prototypes)])
    return cost

  costs = [float(step()) for _ in range(steps)]
  costs.append(float(kmeans_loss(points, prototypes.value)))
  return prototypes.numpy(), costs


def draw(points, labels, prototypes, lloyd_centers, title, path, dpi):
  """Writes the scatter plot; returns its (width, height) in pixels."""
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top
  figure = Figure(figsize=FIGURE_INCHES, layout='constrained')
  FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  axes.scatter(points[:, 0], points[:, 1], c=labels, cmap='tab10', vmin=0,
               vmax=9, s=8, alpha=0.6, label='points (by prototype)')
  axes.scatter(lloyd_centers[:, 0], lloyd_centers[:, 1], s=180,
               facecolors='none', edgecolors='grey', linewidths=1.5,
               label="Lloyd's centers")
  axes.scatter(prototypes[:, 0], prototypes[:, 1], marker='X', s=140,
               c='black', edgecolors='white', linewidths=1,
               label='prototypes learned by gradient descent')
  axes.set_xlabel('x[0]')
  axes.set_ylabel('x[1]')
  axes.legend(loc='best', fontsize=8)
  axes.set_title(title, fontsize=10)
  figure.savefig(path, dpi=dpi)
  return tuple(round(inches * dpi) for inches in FIGURE_INCHES)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if importlib.util.find_spec('sklearn') is None:
    sys.exit('examples/gradient_kmeans.py needs scikit-learn: pip install '
             "'kmeans_estimator[examples]'")
  if _OUTPUT.value and importlib.util.find_spec('matplotlib') is None:
    sys.exit('--output needs matplotlib: pip install '
             "'kmeans_estimator[examples]'")
  k = _NUM_CLUSTERS.value
  if not 1 <= k <= 10:
    raise app.UsageError('--num_clusters must be in 1..10 (one colour each).'
                         f' Received: --num_clusters={k}')
  # pylint: disable=g-import-not-at-top
  from sklearn import datasets
  from kmeans_estimator.keras import KMeansLayer
  from kmeans_estimator.keras import kmeans_loss
  # pylint: enable=g-import-not-at-top
  points, _ = datasets.make_blobs(_NUM_POINTS.value,
                                  random_state=_DATA_SEED.value)
  points = points.astype(np.float32)
  initial = initial_prototypes(points, k, _INIT.value, _SEED.value)

  prototypes, costs = gradient_descent(points, initial, _STEPS.value,
                                       _LEARNING_RATE.value)
  print(f'k-means by gradient descent: {len(points)} points, k={k}, '
        f'{_STEPS.value} steps of lr={_LEARNING_RATE.value:g} from '
        f'{_INIT.value} prototypes (seed {_SEED.value})')
  for i in range(0, _STEPS.value, PRINT_EVERY):
    print(f'step {i:4d}  cost {costs[i]:.2f}')
  print(f'final cost (after {_STEPS.value} steps): {costs[-1]:.2f}')

  lloyd = KMeansLayer.from_centers(initial, max_steps=_STEPS.value)
  lloyd.adapt(points)
  lloyd_centers = lloyd.cluster_centers
  lloyd_cost = float(kmeans_loss(points, lloyd_centers))
  summary = lloyd.adapt_summary
  print(f"Lloyd's algorithm from the same prototypes: cost "
        f'{lloyd_cost:.2f} after {summary.steps} steps '
        f"({'converged' if summary.converged else 'not converged'})")
  print('prototype  gradient descent        Lloyd')
  for j in range(k):
    g, c = prototypes[j], lloyd_centers[j]
    print(f'{j:9d}  ({g[0]:8.3f}, {g[1]:8.3f})  ({c[0]:8.3f}, {c[1]:8.3f})')
  gap = float(np.max(np.abs(prototypes - lloyd_centers)))
  print(f'largest difference of a coordinate: {gap:.2e}')

  if _OUTPUT.value:
    labels = KMeansLayer.from_centers(prototypes)(points).numpy()
    title = (f'k-means by gradient descent, k={k}: cost {costs[-1]:.2f} '
             f"(Lloyd's {lloyd_cost:.2f})")
    width, height = draw(points, labels, prototypes, lloyd_centers, title,
                         _OUTPUT.value, _DPI.value)
    print(f'wrote {_OUTPUT.value} ({width}x{height} pixels)')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
