"""How fast k-means converges, read back from the TensorBoard summaries.

Training writes the loss of its steps to `model_dir` as TensorBoard scalars
(tag 'loss', every `RunConfig.save_summary_steps` steps; here every step).
This script trains four models on the same blobs, each in its own model_dir:

  - full-batch Lloyd from random initial centers;
  - full-batch Lloyd from k-means++ initial centers;
  - full-batch Hamerly from the same k-means++ centers: an exact
    acceleration, so it follows Lloyd's path step for step;
  - mini-batch k-means, `--batch_size` points a step, from k-means++ centers.

Then it reads the losses back from the event files with
`tf.data.TFRecordDataset` and `tf.compat.v1.Event`, checks them against the losses a hook
saw during training, and plots them: the mean squared distance to the
nearest center (a step's loss divided by the points it saw) against the
passes over the data (a full-batch step is one pass; a mini-batch step is
batch_size / num_points of one), with a dashed line at the true blob
centers. The y axis is logarithmic: random centers start far off.

Needs matplotlib (the `examples` extra):

  pip install 'kmeans_estimator[examples]'
  python examples/convergence_plot.py --output convergence.png

The same curves are in TensorBoard: `tensorboard --logdir <model_dir>`.
"""

import glob
import os
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None,
    'Directory under which each model gets its own model_dir (lloyd_random/, '
    'lloyd_kmeans_plus_plus/, hamerly_kmeans_plus_plus/, mini_batch/); a '
    'fresh temporary directory if unset.')
_OUTPUT = flags.DEFINE_string('output', 'convergence.png',
                              'Where to write the PNG.')
_DPI = flags.DEFINE_integer(
    'dpi', 100, 'Resolution of the PNG: it is 8 x 6 inches, so 800 x 600 '
    'pixels at 100 dpi.')
_DATA_OUTPUT = flags.DEFINE_string(
    'data_output', None,
    'If set, also save what is plotted to this .npz file: for each model '
    'NAME, NAME_steps and NAME_losses (read from the summaries) and '
    'NAME_hook_losses (seen by the hook), and the points.')
_NUM_POINTS = flags.DEFINE_integer('num_points', 4000, 'Number of points.')
_NUM_FEATURES = flags.DEFINE_integer('num_features', 5,
                                     'Dimension of the points.')
_NUM_CLUSTERS = flags.DEFINE_integer('num_clusters', 20,
                                     'Number of blobs, and of clusters.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 100,
                                   'Points per mini-batch step.')
_STEPS = flags.DEFINE_integer(
    'steps', 30, 'Most full-batch steps; training stops earlier once the '
    'loss stops changing.')
_MINI_BATCH_PASSES = flags.DEFINE_integer(
    'mini_batch_passes', 4, 'Passes over the data of the mini-batch run.')
_SEED = flags.DEFINE_integer('seed', 0,
                             'Seed of the data and of the initialisations.')

# The figure's size in inches; the PNG is this times --dpi pixels.
FIGURE_INCHES = (8, 6)
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})
# The TensorBoard tag of the per-step loss (kmeans_estimator.io.summaries).
LOSS_TAG = 'loss'
# The runs: (name, label, options of KMeansClustering).
RUNS = (
    ('lloyd_random', 'Lloyd, random init',
     dict(use_mini_batch=False, initial_clusters='random')),
    ('lloyd_kmeans_plus_plus', 'Lloyd, k-means++ init',
     dict(use_mini_batch=False, initial_clusters='kmeans_plus_plus')),
    ('hamerly_kmeans_plus_plus', 'Hamerly, k-means++ init',
     dict(use_mini_batch=False, initial_clusters='kmeans_plus_plus',
          algorithm='hamerly')),
    ('mini_batch', 'mini-batch, k-means++ init',
     dict(use_mini_batch=True, initial_clusters='kmeans_plus_plus')),
)


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def make_blobs(num_points, num_features, num_blobs, seed):
  """Gaussian blobs of width 1, centers uniform in [-10, 10]^d.

  Returns:
    points: float32 array of shape (n, d).
    true_centers: float32 array of shape (num_blobs, d).
  """
  rng = np.random.default_rng(seed)
  true_centers = rng.uniform(-10, 10, (num_blobs, num_features))
  blob = rng.integers(num_blobs, size=num_points)
  points = true_centers[blob] + rng.normal(size=(num_points, num_features))
  return points.astype(np.float32), true_centers.astype(np.float32)


def read_losses(model_dir):
  """The per-step losses in the TensorBoard event files of `model_dir`.

  Reads every event file (one per `train` call) in name order, which is the
  order they were written in; a step written twice keeps its last value.

  Returns:
    steps: int64 array of the summarised steps, increasing.
    losses: float64 array of their losses.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  found = {}
  for path in sorted(glob.glob(os.path.join(model_dir,
                                            'events.out.tfevents.*'))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == LOSS_TAG:
          found[event.step] = float(tf.make_ndarray(value.tensor))
  steps = np.array(sorted(found), np.int64)
  return steps, np.array([found[s] for s in steps], np.float64)


def train(name, options, points, model_dir):
  """Trains one model, a summary every step; returns (kmeans, hook losses)."""
  # pylint: disable=g-import-not-at-top
  from kmeans_estimator import KMeansClustering
  from kmeans_estimator import RunConfig
  from kmeans_estimator import SessionRunArgs
  from kmeans_estimator import SessionRunHook
  # pylint: enable=g-import-not-at-top

  class LossHook(SessionRunHook):
    """Records the loss of every step (the legacy hook protocol)."""

    def __init__(self):
      self.losses = []

    def before_run(self, run_context):  # pylint: disable=unused-argument
      return SessionRunArgs('loss')

    def after_run(self, run_context, run_values):  # pylint: disable=unused-argument
      self.losses.append(float(run_values.results))

  mini_batch = options['use_mini_batch']
  # The loss of a mini-batch step is its batch's: too noisy for a tolerance.
  kmeans = KMeansClustering(
      num_clusters=_NUM_CLUSTERS.value, model_dir=os.path.join(model_dir,
                                                               name),
      seed=_SEED.value, config=RunConfig(save_summary_steps=1),
      relative_tolerance=None if mini_batch else 1e-6, **options)
  hook = LossHook()
  if mini_batch:
    batch_size = _BATCH_SIZE.value
    kmeans.train(points, hooks=[hook], batch_size=batch_size,
                 steps=_MINI_BATCH_PASSES.value * len(points) // batch_size)
  else:
    kmeans.train(points, hooks=[hook], steps=_STEPS.value)
  return kmeans, hook.losses


def draw(curves, reference, title, path, dpi):
  """Writes the plot to a PNG; returns its (width, height) in pixels.

  Args:
    curves: list of (label, passes, mean losses, style dict) to plot.
    reference: the mean loss at the true centers (a dashed line).
    title: the figure's title.
    path: where to write.
    dpi: resolution.
  """
  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top
  figure = Figure(figsize=FIGURE_INCHES, layout='constrained')
  FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  for label, passes, losses, style in curves:
    axes.plot(passes, losses, label=label, **style)
  axes.axhline(reference, color='black', linestyle='--', linewidth=1,
               label='at the true blob centers')
  # Both axes logarithmic, ticked at 1, 2, 5 times powers of ten in plain
  # numbers.
  for axis, scale in ((axes.xaxis, axes.set_xscale),
                      (axes.yaxis, axes.set_yscale)):
    scale('log')
    axis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
    axis.set_major_formatter(ticker.FormatStrFormatter('%g'))
    axis.set_minor_formatter(ticker.NullFormatter())
  axes.set_xlabel('passes over the data (a full-batch step is one pass)')
  axes.set_ylabel('mean squared distance to the nearest center\n'
                  "(the step's loss / the points it saw)")
  axes.grid(which='major', alpha=0.3)
  axes.legend(loc='upper left', fontsize=9, framealpha=0.9)
  figure.suptitle(title)
  figure.savefig(path, dpi=dpi)
  return tuple(round(inches * dpi) for inches in FIGURE_INCHES)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    sys.exit("examples/convergence_plot.py needs matplotlib: pip install "
             "'kmeans_estimator[examples]'")
  n, b = _NUM_POINTS.value, _BATCH_SIZE.value
  if not 0 < b <= n:
    raise app.UsageError(f'--batch_size must be in 1..--num_points={n}. '
                         f'Received: --batch_size={b}')
  points, true_centers = make_blobs(n, _NUM_FEATURES.value,
                                    _NUM_CLUSTERS.value, _SEED.value)
  model_dir = _MODEL_DIR.value or tempfile.mkdtemp(prefix='kmeans_runs_')
  squared = ((points[:, None, :] - true_centers[None]) ** 2).sum(axis=2)
  reference = float(squared.min(axis=1).mean())

  styles = {
      'lloyd_random': dict(color='tab:red', marker='.', linewidth=1.5),
      'lloyd_kmeans_plus_plus': dict(color='tab:blue', marker='.',
                                     linewidth=1.5),
      'hamerly_kmeans_plus_plus': dict(color='tab:blue', marker='o',
                                       markersize=9, fillstyle='none',
                                       linestyle=''),
      'mini_batch': dict(color='tab:green', linewidth=0.6, alpha=0.5),
      'mini_batch_mean': dict(color='darkgreen', marker='s', markersize=4,
                              linewidth=1.5),
  }
  data, curves = {'points': points}, []
  print(f'{n} points of dimension {points.shape[1]} from '
        f'{_NUM_CLUSTERS.value} blobs; mean squared distance to the true '
        f'centers {reference:.4f}.')
  print('model                     steps  stopped by          last loss'
        '      inertia')
  for name, label, options in RUNS:
    kmeans, hook_losses = train(name, options, points, model_dir)
    steps, losses = read_losses(kmeans.model_dir)
    # Every step was summarised: the event files hold what the run saw.
    if not np.array_equal(steps, np.arange(1, len(hook_losses) + 1)) or (
        not np.allclose(losses, hook_losses, rtol=1e-6)):
      raise SystemExit(f'{name}: the summaries differ from the losses the '
                       'hook saw.')
    summary = kmeans.training_summary
    inertia = kmeans.evaluate(points)['inertia']
    print(f'{name:24s}  {summary.global_step:5d}  {summary.stopped_by:18s} '
          f'{summary.loss:10.3f}  {inertia:11.3f}')
    per_step = b if options['use_mini_batch'] else n
    what = (f'{len(steps)} steps of {per_step} points' if
            options['use_mini_batch'] else f'{len(steps)} full-batch steps')
    curves.append((f'{label} ({what})',
                   steps * per_step / n, losses / per_step, styles[name]))
    if options['use_mini_batch']:
      # The batches' losses are noisy: also their mean over each pass.
      per_pass = n // per_step
      whole = len(losses) // per_pass * per_pass
      curves.append(('mini-batch: mean over each pass',
                     np.arange(1, whole // per_pass + 1),
                     losses[:whole].reshape(-1, per_pass).mean(axis=1) /
                     per_step, styles[name + '_mean']))
    data.update({f'{name}_steps': steps, f'{name}_losses': losses,
                 f'{name}_hook_losses': np.array(hook_losses)})
  print(f'model_dir: {model_dir}')
  print('The losses read from the TensorBoard summaries equal those the '
        'hooks saw.')
  if _DATA_OUTPUT.value:
    np.savez(_DATA_OUTPUT.value, **data)
    print(f'wrote {_DATA_OUTPUT.value}')
  title = (f'k-means loss per step, read back from the TensorBoard '
           f'summaries\n{n} points in {points.shape[1]} dimensions from '
           f'{_NUM_CLUSTERS.value} blobs, k={_NUM_CLUSTERS.value}')
  width, height = draw(curves, reference, title, _OUTPUT.value, _DPI.value)
  print(f'wrote {_OUTPUT.value} ({width}x{height} pixels)')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
