"""What every k-means variant provides, and the pieces they share.

A variant is an `Algorithm`: a pair of pure functions over a NamedTuple
state (optax's `GradientTransformation`, scikit-learn's
`_kmeans_single_*`),

    state = init_state(points, centers, weights, options)
    new_centers, state, stats = step(points, centers, state, weights,
                                     options)

plus what it needs of the data and the options, which `config` checks and
the estimator reads to choose the step (`algorithms.choose`). The functions
create no `tf.Variable`: the `KMeans` module owns the variables, reads them,
calls the function and assigns what comes back, so every variant runs
eagerly and under `tf.function` alike.

Full-batch variants end with the same update (`update_centers`): the
statistics summed over the replicas, the empty clusters relocated when the
policy says so, and Lloyd's update.
"""

import functools
from typing import Any, Callable, NamedTuple, Optional

import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import updates


class Options(NamedTuple):
  """The model's options that the steps read (Python values).

  Attributes:
    num_clusters: k.
    distance_metric: 'squared_euclidean' or 'cosine'.
    chunk_elements: the most point-to-center distances held at once.
    empty_cluster: 'keep' or 'farthest_point'.
    mini_batch_steps_per_iteration: N of the mini-batch two-copy scheme.
    dtype: the float dtype of the centers and the computation.
  """
  num_clusters: int
  distance_metric: str = constants.SQUARED_EUCLIDEAN_DISTANCE
  chunk_elements: int = constants.DEFAULT_CHUNK_ELEMENTS
  empty_cluster: str = constants.KEEP_EMPTY
  mini_batch_steps_per_iteration: int = 1
  dtype: Any = tf.float32


class Algorithm(NamedTuple):
  """One k-means variant: its functions and what it needs.

  Attributes:
    name: the value of the `algorithm` option that selects it (the
      mini-batch step is selected by use_mini_batch=True instead).
    init_state: callable(points, centers, weights, options) -> state.
    step: callable(points, centers, state, weights, options) ->
      (new_centers, state, stats dict).
    needs_whole_data: whether its state is per point, so that every step
      must see the same points in the same order (in-memory data); over a
      dataset of batches the estimator runs `fallback` instead.
    metrics: the distance metrics it supports.
    mini_batch: True for the mini-batch rule, False for exact full-batch
      (Lloyd) steps.
    full_batch_only: whether it refuses use_mini_batch=True ('lloyd' is
      the default `algorithm`, and with use_mini_batch=True the mini-batch
      step runs).
    supports_restarts: whether num_restarts > 1 may train with it.
    supports_weights: whether it takes sample weights.
    fallback: the variant run when the data are not in memory.
    supports_sparse: whether its steps take sparse points
      (`ops.sparse.CsrPoints`); `algorithms.choose` refuses the
      others for sparse data.
  """
  name: str
  init_state: Callable
  step: Callable
  needs_whole_data: bool
  metrics: tuple
  mini_batch: bool = False
  full_batch_only: bool = True
  supports_restarts: bool = False
  supports_weights: bool = True
  fallback: Optional[str] = None
  supports_sparse: bool = False

  def make_step(self, core):
    """(start, step) that run this variant with its state carried from step
    to step over the same points, through the model's generic
    `carried_state`/`carried_step` (no method of its own on the model).

    With a `KMeans` instance `core`: `start(points, weights)` and
    `step(points, state, weights)`; with the class (for functions compiled
    once and run on many models): `start(km, points, weights)` and
    `step(km, points, state, weights)`.
    """
    if isinstance(core, type):
      return (_Carried(self, 'carried_state'), _Carried(self, 'carried_step'))
    return (functools.partial(core.carried_state, self),
            functools.partial(core.carried_step, self))


class _Carried:
  """`km.<method>(algorithm, *args)` as a callable of (km, *args)."""

  def __init__(self, algorithm, method):
    self._algorithm = algorithm
    self._method = method

  def __call__(self, km, *args):
    return getattr(km, self._method)(self._algorithm, *args)


def sum_over_replicas(values):
  """`values` summed over the replicas of the current tf.distribute strategy.

  Identity outside `strategy.run` or with one replica; one all-reduce of the
  whole structure otherwise.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return values
  # Op outputs carry the replica's device, which a multi-worker all-reduce
  # needs (a function's inputs have none).
  return context.all_reduce(tf.distribute.ReduceOp.SUM,
                            tf.nest.map_structure(tf.identity, values))


def step_stats(loss, counts, sizes=None, relocated=None, weighted=False):
  """A step's figures; `sizes` are the counts after any relocation.

  Returns:
    dict with 'loss', 'num_points' (int64), 'empty_clusters' (int32),
    'relocated_clusters' (int32) and 'cluster_sizes' (int64 (k,)).
    Weighted, 'num_points' and 'cluster_sizes' are weights (rounded to
    integers: with integer weights, the counts that repeated rows give),
    'empty_clusters' counts the clusters of total weight 0, and
    'total_weight' is the exact float sum of the weights.
  """
  if sizes is None:
    sizes = counts
  stats = {
      'loss': loss,
      'num_points': tf.cast(tf.reduce_sum(counts), tf.int64),
      'empty_clusters': tf.reduce_sum(tf.cast(counts == 0, tf.int32)),
      'relocated_clusters': (tf.constant(0, tf.int32) if relocated is None
                             else relocated),
      'cluster_sizes': tf.cast(sizes, tf.int64),
  }
  if weighted:
    stats['total_weight'] = tf.reduce_sum(counts)
    stats['num_points'] = tf.cast(tf.round(stats['total_weight']), tf.int64)
    stats['cluster_sizes'] = tf.cast(tf.round(sizes), tf.int64)
  return stats


def farthest_candidates(points, centers, options):
  """The k points of `points` (prepared, (n, d)) farthest from their
  nearest `centers`, as `updates.farthest_candidates` gives them."""
  index, distance = distances_lib.nearest_centers(
      points, centers, options.distance_metric, options.chunk_elements)
  return updates.farthest_candidates(points, index, distance,
                                     options.num_clusters)


def relocate(sums, counts, empty, candidates_fn):
  """`updates.relocate_empty_clusters` when a cluster is `empty`.

  `candidates_fn()` finds the far points (one more pass over the data); it
  runs only in steps that left a cluster empty.

  The far points would have to be gathered from every replica: the shell
  refuses relocation inside `strategy.run` with several replicas
  (`config.check_replicas`) before it calls a step.

  Returns:
    (sums, sizes, relocated int32).
  """

  def relocated():
    return updates.relocate_empty_clusters(sums, counts, empty,
                                           candidates_fn())

  return tf.cond(tf.reduce_any(empty), relocated,
                 lambda: (sums, counts, tf.constant(0, tf.int32)))


def update_centers(centers, sums, counts, loss, options, candidates_fn=None,
                   weighted=False):
  """One Lloyd update from summed statistics: the end of every full-batch
  step.

  Inside `strategy.run` the statistics are first summed over all replicas
  (one all-reduce), so every replica moves the centers identically. With
  empty_cluster='farthest_point' and `candidates_fn` (see `relocate`), the
  clusters the assignment left empty move to far points; without it they
  keep their centers.

  Args:
    centers: float Tensor (k, d), the centers the statistics were taken
      under.
    sums, counts, loss: their statistics, (k, d), (k,) and scalar.
    options: `Options`.
    candidates_fn: None, or a callable returning the far points.
    weighted: whether the statistics are weighted (see `step_stats`).

  Returns:
    (new_centers (k, d), stats): stats as `step_stats` gives them, over
    all replicas.
  """
  sums, counts, loss = sum_over_replicas((sums, counts, loss))
  sizes, relocated = counts, None
  if (candidates_fn is not None and
      options.empty_cluster == constants.FARTHEST_POINT):
    sums, sizes, relocated = relocate(sums, counts, counts == 0,
                                      candidates_fn)
  # x_j <- (sum of the points nearest to x_j) / (their number); an empty
  # cluster keeps its center.
  new_centers = updates.lloyd_update(centers, sums, sizes,
                                     options.distance_metric)
  return new_centers, step_stats(loss, counts, sizes, relocated, weighted)
