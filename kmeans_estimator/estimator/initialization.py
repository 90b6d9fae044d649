"""Choosing the initial centers from the training input, before the first
step of a fresh model.

The initialisers themselves are `ops.initializers` (run by the `KMeans`
core); this module decides what data they see: the first batch
('kmeans_plus_plus', 'kmc2'), batches in turn until k centers are chosen
('random', a callable), or one pass over all the data ('kmeans_parallel'),
and raises the errors of input too small for num_clusters, with a hint when
the data look transposed.
"""

from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.data import inputs
from kmeans_estimator.estimator import model_fn as model_fn_lib
from kmeans_estimator.estimator import training


def one_pass_to_initialize(core, read, input_fn, points):
  """What `initialize_centers` reads: `points`, or one pass over the data
  when they were given directly and are cycled through.

  Mini-batch training with `steps` or `max_steps` reads an array, Tensor
  or dict given with `batch_size` as an endless cycle of its slices; the
  initialisers that pass over all the data ('kmeans_parallel') then take
  one pass over the slices from the first row, as training without steps
  does, so the data given directly get the same initial centers however
  long the run. A Dataset or an input_fn is read as the user made it.

  Args:
    core: the `KMeans` core.
    read: `read(input_fn, mode)` -> `inputs.Points` (the estimator's).
    input_fn: the training input_fn.
    points: the training input, as read for the steps.
  """
  method = core.initial_clusters
  if (points.endless and isinstance(input_fn, inputs.DirectData) and
      input_fn.batch_size is not None and isinstance(method, str) and
      method == constants.KMEANS_PARALLEL_INIT and
      not bool(core.initialized)):
    return read(inputs.DirectData(input_fn.data, input_fn.batch_size),
                model_fn_lib.ModeKeys.TRAIN)
  return points


def initialize_centers(core, points, initialize, initialize_from_dataset,
                       weight_column):
  """Initialises the centers of `core` (unless it is) from `points`.

  Args:
    core: the `KMeans` core.
    points: the `inputs.Points` to choose from.
    initialize: `initialize(batch)` -> whether k centers are now chosen.
    initialize_from_dataset: `initialize_from_dataset(dataset)` chooses
      all k centers from one pass ('kmeans_parallel').
    weight_column: the weight feature's name (for messages), or None.

  Policy: fewer than k points is reported by `raise_too_few_points` for
  every initialisation, 'kmeans_parallel' over a dataset included (whose
  in-graph check does not know the count: the few points are then counted).

  Raises:
    ValueError: no points, fewer than k (of positive weight), a first batch
      smaller than k for 'kmeans_plus_plus', an endless dataset for
      'kmeans_parallel', or a callable that chose fewer than k centers.
  """
  num_clusters = core.num_clusters
  if bool(core.initialized):
    return
  if (core.initial_clusters == constants.KMEANS_PARALLEL_INIT and
      not points.whole):
    if points.endless:
      raise errors.InvalidInputError(
          "initial_clusters='kmeans_parallel' passes over all the data, "
          'but the input_fn returns an endless dataset; give a finite one '
          "(or use initial_clusters='kmeans_plus_plus', which uses the "
          'first batch).', kind='endless')
    try:
      with errors.translated():
        initialize_from_dataset(points.dataset)
    except errors.InvalidInputError as error:
      if error.kind != 'too_few_points' or points.weighted:
        raise
      # Fewer than k points: counted (a pass over so few is cheap) for the
      # message the other initialisations give, with its transposed hint.
      seen = sum(batch.num_points for batch in points.batches())
      raise_too_few_points(num_clusters, weight_column, seen, points)
    return
  seen = 0
  for batch in points.batches():
    n = batch.num_points
    if n == 0:
      continue
    if seen == 0:
      core.check_sizes(points.num_features, n)
    if (core.initial_clusters == constants.KMEANS_PLUS_PLUS_INIT
        and seen == 0 and n < num_clusters):
      raise errors.InvalidInputError(
          f'The first batch has {n} points but num_clusters='
          f'{num_clusters}; kmeans_plus_plus needs at least '
          'num_clusters points in its first batch, or use '
          "initial_clusters='random'." + (
              transposed_hint(num_clusters, n, points) if points.whole
              else ''),
          kind='too_few_points')
    seen += n
    if (core.initial_clusters == constants.KMEANS_PARALLEL_INIT and
        n < num_clusters):
      break  # All the data, and too few points.
    if initialize(batch):
      return
  if not seen:
    raise errors.InvalidInputError(training.NO_TRAINING_DATA, kind='empty')
  if callable(core.initial_clusters):
    raise errors.InitialClustersError(
        f'`initial_clusters` (a callable) returned '
        f'{int(core.num_initialized)} centers over all {seen} '
        f'points of the input, but num_clusters={num_clusters}; make '
        'it return num_clusters centers (it is called on each batch in '
        'turn until num_clusters are chosen), or lower num_clusters.')
  raise_too_few_points(num_clusters, weight_column, seen, points)


def raise_too_few_points(num_clusters, weight_column, num_points, points):
  """The error for input with fewer than k points (of positive weight).

  When the input has fewer points than features, and would have enough
  points the other way round, the message says it may be transposed:
  (d, n) data read as d points of n features.
  """
  if points.weighted:
    raise errors.InvalidInputError(
        f'The input has fewer than num_clusters={num_clusters} points '
        f'of positive weight (`weight_column`={weight_column!r}); '
        'give more points a positive weight, or lower num_clusters.',
        kind='too_few_points')
  raise errors.InvalidInputError(
      f'The input has only {num_points} points but num_clusters='
      f'{num_clusters}; give at least num_clusters points, or lower '
      'num_clusters.' + transposed_hint(num_clusters, num_points, points),
      kind='too_few_points')


def transposed_hint(num_clusters, num_points, points):
  """' The input has n points of d features: ... pass the transpose' when
  the n < k points of the input have at least k features, else ''."""
  if num_points < points.num_features and (
      points.num_features >= num_clusters):
    return (f' The input has {num_points} points of {points.num_features} '
            'features: points are rows, so if each column is a point, '
            'pass the transpose (array.T).')
  return ''
