"""Choosing a model's initial centers: per method, per restart, checked.

`ops.initializers` holds the maths of each method (random draws, k-means++,
k-mc2, k-means|| sampling and reduction). This module holds what `KMeans`
decides around it: which method runs on a batch or over a dataset, the
checks that the data has the points the method needs, the checks of what a
callable `initial_clusters` returned, one draw per restart from seeds
derived from one base seed, and where the chosen centers go among those
chosen so far (initialisation may span several batches).

The functions are pure: they take Tensors and Python values and return
Tensors (or a `choose(seed)` function of the centers of one draw). The
`KMeans` module reads its variables, calls them and assigns what comes
back, so that initialisation runs eagerly and under `tf.function` alike.
"""

from typing import Any, NamedTuple

import tensorflow as tf

from kmeans_estimator import config as config_lib
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator import statistics
from kmeans_estimator.ops import initializers
from kmeans_estimator.ops import numerics
from kmeans_estimator.ops import sparse as sparse_lib

# The messages of the checks of what a callable initial_clusters returned
# (their op errors translate to `errors.InitialClustersError`).
CALLABLE_NON_FINITE_MESSAGE = (
    '`initial_clusters` (a callable) returned NaN or Inf values; make it '
    'return finite centers')
CALLABLE_WIDTH_MESSAGE = (
    '`initial_clusters` (a callable) must return centers of shape')
CALLABLE_OVERFLOW_MESSAGE = (
    '`initial_clusters` (a callable) returned values of magnitude')

# Folded into the seed of restarts r > 0 (see `seed`), so that their seeds
# differ from every seed path of num_restarts=1.
RESTART_SALT = 0x7273


class Options(NamedTuple):
  """The model's options that initialisation reads.

  Attributes:
    num_clusters: k, a Python int, or in a `KMeans.view` whose graph does
      not need it as an int, a scalar int32 Tensor.
    num_features: d, a Python int.
    initial_clusters: the option of that name (a method name, an array or
      a callable).
    distance_metric: 'squared_euclidean' or 'cosine'.
    dtype: the float dtype of the centers.
    chunk_elements: the most point-to-center distances held at once.
    num_restarts: R.
    kmeans_plus_plus_num_retries, kmc2_chain_length, kmeans_parallel_rounds:
      the options of those names.
    kmeans_parallel_per_round: the candidates 'kmeans_parallel' draws per
      round (`KMeansConfig.kmeans_parallel_per_round`).
  """
  num_clusters: Any
  num_features: int
  initial_clusters: Any
  distance_metric: str
  dtype: Any
  chunk_elements: int
  num_restarts: int
  kmeans_plus_plus_num_retries: int
  kmc2_chain_length: int
  kmeans_parallel_rounds: int
  kmeans_parallel_per_round: int

  @classmethod
  def of(cls, config, num_clusters, num_features):
    """The options of `config` (a `KMeansConfig`), with k and d as the
    model has them (a view's k may be a Tensor)."""
    return cls(num_clusters, num_features, config.initial_clusters,
               config.distance_metric, config.dtype, config.chunk_elements,
               config.num_restarts, config.kmeans_plus_plus_num_retries,
               config.kmc2_chain_length, config.kmeans_parallel_rounds,
               config.kmeans_parallel_per_round)


def seed(base, path, restart=0):
  """The seed at `path` (ints or int Tensors) under `base` (int64 (2,));
  restart r > 0 (a Python int or an int scalar Tensor) folds
  `RESTART_SALT` and r in first, so restart 0 draws exactly what
  num_restarts=1 draws."""
  if isinstance(restart, tf.Tensor):
    base = tf.where(restart > 0,
                    initializers.fold_seed(base, RESTART_SALT, restart), base)
  elif restart:
    base = initializers.fold_seed(base, RESTART_SALT, restart)
  return initializers.fold_seed(base, *path)


def choose_per_restart(choose, base, path, num_restarts, dtype):
  """`choose(seed)`'s centers, once per restart.

  Restart r draws with the seed at `path` folded with r (see `seed`). With
  restarts, `choose` is traced once, in the body of a `tf.while_loop` over
  the restart index (a Tensor r), so the graph of the initialisation has
  one copy of it whatever num_restarts is; the draws are those of calling
  `choose(seed(base, path, r))` for r = 0, ..., R - 1 (eagerly the loop is
  a Python loop over them). At most R restarts are in flight at once, as
  when each had its own copy.

  Args:
    choose: function of a seed returning centers (m, d) of `dtype`; m must
      be the same for every restart.
    base, path: as `seed`.
    num_restarts: R, a Python int.
    dtype: the centers' dtype.

  Returns:
    (new, None): the centers (m, d), with num_restarts=1; else (None,
    restarts), every restart's centers stacked, (R, m, d).
  """
  if num_restarts == 1:
    return choose(seed(base, path)), None

  def body(r, chosen):
    return r + 1, chosen.write(r, choose(seed(base, path, r)))

  _, chosen = tf.while_loop(
      lambda r, _: r < num_restarts, body,
      (tf.constant(0), tf.TensorArray(dtype, size=num_restarts,
                                      infer_shape=False)),
      parallel_iterations=num_restarts)
  return None, chosen.stack()


def append(clusters, start, new, num_clusters, restart_clusters=None,
           restarts=None):
  """The centers with `new` (m, d) written after the `start` chosen so far,
  up to k (the rows beyond are dropped).

  With restarts, `restarts` (R, m, d) holds every restart's new centers
  (`new` is then ignored): they go to `restart_clusters` (R, k, d), and
  restart 0's to `clusters` (k, d).

  Returns:
    (clusters (k, d), restart_clusters (R, k, d) or None, total): total is
    the number of centers now chosen (an int32 scalar).
  """
  if restarts is not None:
    restarts = restarts[:, :num_clusters - start]
    new = restarts[0]
  else:
    new = new[:num_clusters - start]
  count = tf.shape(new)[0]
  indices = start + tf.range(count)
  clusters = tf.tensor_scatter_nd_update(clusters, indices[:, tf.newaxis],
                                         new)
  if restarts is not None:
    # Scattered along k: (k, R, d) views of both.
    restart_clusters = tf.transpose(tf.tensor_scatter_nd_update(
        tf.transpose(restart_clusters, [1, 0, 2]), indices[:, tf.newaxis],
        tf.transpose(restarts, [1, 0, 2])), [1, 0, 2])
  return clusters, restart_clusters, start + count


def batch_chooser(points, weights, wanted, options, prepare):
  """`choose(seed)`: the new centers (m, d) from one batch, per the method.

  'random' draws `wanted` distinct points (in proportion to weight, with
  weights); a callable is called as f(points, k), its result checked
  (`callable_centers`) and `prepare`d; 'kmeans_plus_plus' and
  'kmeans_parallel' need at least k points (of positive weight, with
  weights: points of weight 0 are never chosen), 'kmc2' at least one. A
  batch with too few fails an `errors.graph_check` (an
  `errors.InvalidInputError` of kind 'too_few_points') before the first
  draw, so that nothing is written.

  Args:
    points: prepared float Tensor (n, d).
    weights: None, or float Tensor (n,) of the model's dtype.
    wanted: how many centers are still to choose (int32 scalar).
    options: `Options`.
    prepare: callable casting and normalising points as the model does.
  """
  method, k = options.initial_clusters, options.num_clusters
  if callable(method):
    return lambda unused_seed: prepare(callable_centers(method(points, k),
                                                        options))
  if method == constants.RANDOM_INIT:
    return lambda seed: initializers.random_points(points, wanted, seed,
                                                   weights)
  # With weights, only points of positive weight can become centers.
  n = (sparse_lib.num_rows(points) if weights is None else
       tf.reduce_sum(tf.cast(weights > 0, tf.int32)))
  positive = '' if weights is None else ' of positive weight'
  if method == constants.KMEANS_PARALLEL_INIT:
    check = _too_few_points_check(
        n >= k, f'kmeans_parallel needs at least num_clusters points'
        f'{positive}; give more data or lower num_clusters')
  elif method == constants.KMEANS_PLUS_PLUS_INIT:
    check = _too_few_points_check(
        n >= k, f'kmeans_plus_plus needs at least num_clusters points'
        f"{positive} in its first batch; use bigger batches or "
        "initial_clusters='random'")
  else:
    check = _too_few_points_check(
        n > 0, 'kmc2 needs at least one point in its first batch')
  # Inside tf.function an Assert is not ordered before the variable
  # writes; a data dependency makes a failed check write nothing.
  with tf.control_dependencies([check]):
    points = tf.identity(points)
  if method == constants.KMEANS_PARALLEL_INIT:
    def choose(seed):
      candidates, candidate_weights = initializers.kmeans_parallel_candidates(
          points, seed, options.kmeans_parallel_rounds,
          options.kmeans_parallel_per_round, options.distance_metric,
          options.chunk_elements, weights)
      return reduce_candidates(candidates, candidate_weights, seed, options)
    return choose
  if method == constants.KMEANS_PLUS_PLUS_INIT:
    return lambda seed: initializers.kmeans_plus_plus(
        points, k, seed, options.kmeans_plus_plus_num_retries,
        options.distance_metric, weights=weights)
  return lambda seed: initializers.kmc2(
      points, k, seed, options.kmc2_chain_length, options.distance_metric)


def dataset_chooser(dataset, options, prepare):
  """`choose(seed)`: the k centers of k-means|| over all batches of a finite
  `dataset` (of points, or of (points, weights) pairs), rounds + 2 passes
  per call (see `ops.initializers.kmeans_parallel_streamed`); with
  restarts, each restart samples the dataset on its own."""
  weighted = statistics.is_weighted(dataset)

  def choose(seed):
    candidates, weights, count = initializers.kmeans_parallel_streamed(
        dataset, prepare, options.num_features, options.dtype, seed,
        options.kmeans_parallel_rounds, options.kmeans_parallel_per_round,
        options.distance_metric, options.chunk_elements, weighted)
    return reduce_counted(candidates, weights, count, seed, options,
                          weighted)

  return choose


def streamed_sampler(options, seed):
  """The k-means|| settings as an `initializers.StreamedSampler` drawing
  with `seed`, for drivers that pass over batches themselves."""
  return initializers.StreamedSampler(
      options.num_features, options.dtype, seed,
      options.kmeans_parallel_rounds, options.kmeans_parallel_per_round,
      options.distance_metric, options.chunk_elements)


def reduce_candidates(candidates, weights, seed, options):
  """The k centers (k, d) from k-means|| candidates and their weights
  (`initializers.reduce_candidates`, seeded after the rounds' seeds)."""
  return initializers.reduce_candidates(
      candidates, weights, options.num_clusters,
      initializers.fold_seed(seed, options.kmeans_parallel_rounds + 1),
      options.distance_metric)


def reduce_counted(candidates, weights, count, seed, options, weighted):
  """`reduce_candidates` of candidates sampled from `count` points, after
  an `errors.graph_check` that these are at least k (of positive weight,
  when `weighted`); a failed check writes nothing."""
  positive = ' of positive weight' if weighted else ''
  check = _too_few_points_check(
      count >= tf.cast(options.num_clusters, count.dtype),
      f'kmeans_parallel needs at least num_clusters points{positive} in '
      'the input; give more data or lower num_clusters')
  with tf.control_dependencies([check]):
    candidates = tf.identity(candidates)
  return reduce_candidates(candidates, weights, seed, options)


def callable_centers(centers, options):
  """What a callable `initial_clusters` returned, checked and cast to the
  model's dtype (not yet prepared).

  It must be a numeric (integer or float) array or Tensor of shape (m, d),
  d the points' width; m may be below k (the callable is called again on
  the next batches) or above (the first rows are taken). Its values must
  be finite: NaN or Inf fails with an InvalidArgumentError carrying
  `CALLABLE_NON_FINITE_MESSAGE`, before any center is written; and below
  `numerics.overflow_limit(dtype)` in magnitude (their squared distances
  would overflow and fail the first step as if the points did): larger
  fail likewise with `CALLABLE_OVERFLOW_MESSAGE`. Given arrays are held
  to the same two rules when the model is made. The checks are
  `errors.graph_check`s: `errors.translate` turns their op errors into
  `errors.InitialClustersError`s.

  Raises:
    errors.InvalidArgumentTypeError: not numeric (strings, bools, complex,
      objects).
    errors.InitialClustersError: not of shape (m, d).
  """
  d, dtype = options.num_features, options.dtype
  fix = ('make it return up to num_clusters centers as rows like the '
         f'points, a float array or Tensor of shape (m, {d})')
  try:
    centers = tf.convert_to_tensor(centers)
  except (TypeError, ValueError):
    raise errors.InvalidArgumentTypeError(
        '`initial_clusters` (a callable) must return a numeric array or '
        f'Tensor; {fix}. Received: {type(centers).__name__} '
        f'{_shown(centers)}', 'initial_clusters') from None
  if not (centers.dtype.is_floating or centers.dtype.is_integer):
    raise errors.InvalidArgumentTypeError(
        '`initial_clusters` (a callable) must return numeric centers; '
        f'{fix}. Received: centers of dtype {centers.dtype.name}',
        'initial_clusters')
  width = centers.shape[1] if centers.shape.rank == 2 else None
  wrong_width = (
      f'{CALLABLE_WIDTH_MESSAGE} (m, {d}), m <= '
      f'num_clusters={options.num_clusters}, as wide as the points; {fix}. '
      'Received: centers of shape ')
  if centers.shape.rank != 2 or (width is not None and width != d):
    raise errors.InitialClustersError(f'{wrong_width}{tuple(centers.shape)}')
  centers = tf.cast(centers, dtype)
  checks = [_callable_check(
      tf.reduce_all(tf.math.is_finite(centers)),
      CALLABLE_NON_FINITE_MESSAGE)]
  # Values whose squares overflow would fail the first step as if the
  # points overflowed (NaN and Inf fail the check above first).
  checks.append(_callable_check(
      tf.reduce_all((tf.abs(centers) < numerics.overflow_limit(dtype))
                    | ~tf.math.is_finite(centers)),
      f'{CALLABLE_OVERFLOW_MESSAGE} {config_lib.overflow_text(dtype)}'))
  if width is None:
    # Known only when the step runs (the points' width is not static
    # inside the compiled step): the message gives the returned shape too.
    shape = tf.strings.as_string(tf.shape(centers, out_type=tf.int64))
    checks.append(_callable_check(
        tf.equal(tf.shape(centers)[1], d),
        [wrong_width, '(', shape[0], ', ', shape[1], ')']))
  # A data dependency: a failed check writes nothing (see `batch_chooser`).
  with tf.control_dependencies(checks):
    return tf.identity(centers)


def _callable_check(condition, message):
  """A `graph_check` of a callable initial_clusters' centers: it stands for
  an `errors.InitialClustersError` with `message` and a period."""
  return errors.graph_check(condition, errors.InitialClustersError, message,
                            suffix='.')


def _too_few_points_check(condition, message):
  """A `graph_check` that an initialisation has the points it needs: it
  stands for an `errors.InvalidInputError` of kind 'too_few_points'."""
  return errors.graph_check(condition, errors.InvalidInputError, message,
                            suffix=' (found while reading the input_fn).',
                            kind='too_few_points')


def _shown(value):
  """A short one-line repr of `value`, for error messages."""
  shown = ' '.join(repr(value).split())
  return shown if len(shown) <= 60 else shown[:57] + '...'
