"""The training steps of `KMeans`: methods that read its variables, call a
pure function and assign what comes back.

A full-batch step sums the per-cluster statistics of all the data
(`statistics`: a Tensor, or a dataset's batches) and moves the centers once
(`algorithms.base.update_centers`); with restarts, every restart from one
pass (`algorithms.restarts`). The steps that carry state over the same
in-memory points (`carried_state`/`carried_step` for any registered variant;
`lloyd_step` and `hamerly_step` name two of them) and the mini-batch step (`train_step`) call their variant's pure `step` in
`algorithms`. None of the maths is here: this is the shell that holds the
variables, as Keras's `Trainer` is the part of `Model` that trains.

`TrainingSteps` is a mixin of `KMeans` (see there for the model and its
options); it holds no state of its own.
"""

from __future__ import annotations

from typing import Any, Optional, TYPE_CHECKING, Union

import tensorflow as tf

from kmeans_estimator import algorithms as algorithms_lib
from kmeans_estimator.algorithms import base as algorithms_base
from kmeans_estimator.algorithms import lloyd as lloyd_lib
from kmeans_estimator.algorithms import minibatch as minibatch_lib
from kmeans_estimator.algorithms import restarts as restarts_lib
from kmeans_estimator import config as options
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator import statistics as statistics_lib
from kmeans_estimator.ops import bounds as bounds_lib
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator import typing as ke_typing


class TrainingSteps:
  """The statistics and training steps of `KMeans` (a mixin: `self` is a
  `KMeans`, whose variables, options and `_prepare` these use).

  `full_batch_step` is one exact Lloyd iteration over all the data (a
  Tensor or a dataset of batches), `train_step` one mini-batch step, and
  `step` either, as use_mini_batch says. Many steps over the same Tensor
  of points run cheaper with state carried from step to step:
  `lloyd_step` (the same Lloyd step, with the points' |x|^2 computed once
  and the per-cluster sums updated by the points that changed cluster,
  exactly: see `carried`) and `hamerly_step` (which also skips the
  distances its bounds rule out), started by `lloyd_state` and
  `hamerly_state`; `carried_state`/`carried_step` run any variant of the
  registry (`algorithms.REGISTRY`, e.g. 'yinyang') the same way.
  """

  if TYPE_CHECKING:
    # What `KMeans` provides (its options, variables and point preparation);
    # a variable is None where the options need none.
    clusters: Any
    restart_clusters: Any
    cluster_counts: Any
    clusters_updated: Any
    update_in_steps: Any
    num_features: Optional[int]
    num_restarts: int
    distance_metric: str
    chunk_elements: int
    empty_cluster: str
    use_mini_batch: bool
    weighted: bool
    dtype: Any

    def _prepare(self, points: ke_typing.ArrayLike) -> tf.Tensor:
      ...

    def step_options(self) -> algorithms_base.Options:
      ...

  def point_norms(self, points: ke_typing.ArrayLike) -> Optional[tf.Tensor]:
    """|x|^2 of every point, computed once for the steps of `lloyd_step`.

    Many full-batch steps over the same Tensor of points then skip a pass
    over the data each (scikit-learn's Lloyd does the same). None under the
    cosine metric, whose steps do not use it.

    Args:
      points: Tensor of shape (n, d).

    Returns:
      float Tensor (n,), or None.
    """
    if self.distance_metric == constants.COSINE_DISTANCE:
      return None
    return distances_lib.squared_norms_in_chunks(self._prepare(points),
                                                 self.chunk_elements)

  def _check_weights(self, data, weights):
    """Whether the step is weighted; refuses what has no weighted form."""
    if weights is not None and isinstance(data, tf.data.Dataset):
      raise errors.InvalidArgumentError(
          '`weights` goes with a Tensor of points; a dataset carries its '
          'weights in its elements, as (points, weights) pairs.', 'weights')
    weighted = weights is not None or statistics_lib.is_weighted(data)
    if weighted:
      options.check_sample_weights(self.empty_cluster)
    return weighted

  def statistics(
      self,
      data: ke_typing.PointsOrDataset,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-cluster statistics of `data` under the current centers.

    Args:
      data: Tensor of shape (n, d), or a finite `tf.data.Dataset` of such
        Tensors (batches) or of (points, weights) pairs, whose statistics
        are summed.
      weights: optional float Tensor (n,) of sample weights, with a Tensor
        `data`.

    Returns:
      (sums (k, d), counts (k,), loss scalar), as in
      `distances.cluster_statistics` (weighted, with weights); sums over
      batches add up exactly. With num_restarts > 1, those of `clusters`
      (the kept restart); `restart_statistics` gives every restart's.
    """
    self._check_weights(data, weights)
    return statistics_lib.cluster_statistics(
        data, weights, self.clusters.read_value(), self.step_options(),
        self.num_features, self._prepare)

  def restart_statistics(
      self,
      data: ke_typing.PointsOrDataset,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`statistics` of every restart (num_restarts > 1), in one pass.

    Each batch is scored against all R k centers in one matrix product (see
    `distances.restart_statistics`), so R restarts cost one pass over the
    data, not R.

    Args:
      data: Tensor of shape (n, d), or a finite `tf.data.Dataset` of such
        Tensors (batches) or of (points, weights) pairs, whose statistics
        are summed.
      weights: optional float Tensor (n,) of sample weights, with a Tensor
        `data`.

    Returns:
      (sums (R, k, d), counts (R, k), loss (R,)): restart r's as
      `statistics` gives them for the centers `restart_clusters[r]`.
    """
    self._check_weights(data, weights)
    if self.num_restarts == 1:
      return tf.nest.map_structure(lambda t: t[tf.newaxis],
                                   self.statistics(data, weights))
    prepare = self._prepare
    if not isinstance(data, tf.data.Dataset):
      # Prepared first: that builds the model on first use.
      data, prepare = self._prepare(data), lambda points: points
    return statistics_lib.restart_statistics(
        data, weights, self.restart_clusters.read_value(),
        self.step_options(), self.num_features, prepare)

  def apply_full_batch(
      self,
      sums: tf.Tensor,
      counts: tf.Tensor,
      loss: tf.Tensor,
      data: Optional[ke_typing.PointsOrDataset] = None,
      weighted: bool = False,
  ) -> dict[str, tf.Tensor]:
    """Moves the centers by one Lloyd update from summed statistics.

    Inside `strategy.run` the statistics are first summed over all replicas
    (one all-reduce), so every replica moves the centers identically.

    Args:
      sums: float Tensor (k, d), the per-cluster sums of `statistics(data)`
        under the current centers.
      counts: Tensor (k,), the per-cluster counts (or weights) of the same.
      loss: scalar Tensor, the loss of the same.
      data: the data the statistics came from (a Tensor (n, d) or a finite
        dataset of batches), needed only by empty_cluster='farthest_point'
        to find the far points (one more pass, only when a cluster is
        empty); without it empty clusters keep their centers.
      weighted: whether the statistics are weighted (see `_stats`).

    Returns:
      dict with 'loss', 'num_points' (int64), 'empty_clusters' (int32, the
      clusters the assignment left empty), 'relocated_clusters' (int32, how
      many of them moved to a far point) and 'cluster_sizes' (int64 (k,),
      the points each center's update used), over all replicas; when
      `weighted`, also 'total_weight' (see `_stats`).
    """
    if self.num_restarts > 1:
      raise ValueError(
          f'apply_full_batch moves `clusters` alone, but this KMeans has '
          f'num_restarts={self.num_restarts}; use full_batch_step, which '
          'moves every restart.')
    self._check_relocation_replicas()
    centers = self.clusters.read_value()
    new_centers, stats = algorithms_base.update_centers(
        centers, sums, counts, loss, self.step_options(),
        None if data is None else
        lambda: statistics_lib.farthest_candidates(
            data, centers, self.step_options(), self.num_features,
            self._prepare), weighted)
    self.clusters.assign(new_centers)
    return stats

  def _check_relocation_replicas(self):
    """Refuses empty_cluster='farthest_point' inside `strategy.run` with
    several replicas (`options.check_replicas`): the far points would have
    to be gathered from every replica."""
    context = tf.distribute.get_replica_context()
    if context is not None and (
        self.empty_cluster == constants.FARTHEST_POINT):
      options.check_replicas(self.empty_cluster, self.num_restarts,
                             context.num_replicas_in_sync)

  def full_batch_step(
      self,
      data: ke_typing.PointsOrDataset,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> dict[str, tf.Tensor]:
    """One exact Lloyd iteration over all of `data`.

    Statistics are accumulated over every batch with the current centers, then
    the centers move once: a finite dataset of batches gives exactly the step
    that the concatenated tensor would. An empty cluster keeps its center, or
    with empty_cluster='farthest_point' moves to a far point (a dataset is
    then read a second time, in steps that left a cluster empty; it must
    yield the same points each time).
    Inside `strategy.run` each replica passes its own share of the data and
    the step covers their union.

    With sample weights each center moves to the weighted mean of its
    points (sum of w x / sum of w); a cluster whose points all have weight 0
    keeps its center, like an empty one.

    Args:
      data: Tensor of shape (n, d) (all the data), or a finite
        `tf.data.Dataset` whose elements are such Tensors (batches), or
        (points, weights) pairs.
      weights: optional float Tensor (n,) of sample weights, with a Tensor
        `data`.

    With num_restarts R > 1 the step moves all R restarts by one Lloyd
    update each, from one pass over `data` (`restart_statistics`), and
    `clusters` becomes the updated centers of the restart whose loss before
    the update is the lowest (ties to the lower restart). That choice is
    provisional (an update can change the restarts' order): after the last
    step, `keep_best_restart(data)` keeps the restart whose updated centers
    score lowest.

    Returns:
      dict with 'loss' (sum of distances to the nearest center before the
      update), 'num_points' (int64), 'empty_clusters' (int32),
      'relocated_clusters' (int32) and 'cluster_sizes' (int64 (k,)), as
      `apply_full_batch` describes them; weighted, with weights (see
      `_stats`). With R > 1 these are the kept restart's, and the dict adds
      'restart_losses' (R,), every restart's loss before the update, and
      'best_restart' (int32), the kept restart.
    """
    weighted = self._check_weights(data, weights)
    if self.num_restarts > 1:
      return self._restarts_step(data, weights, weighted)
    return self.apply_full_batch(*self.statistics(data, weights), data,
                                 weighted)

  def _restarts_step(self, data, weights, weighted):
    """`full_batch_step` with num_restarts > 1 (see there)."""
    context = tf.distribute.get_replica_context()
    if context is not None:
      options.check_replicas(self.empty_cluster, self.num_restarts,
                             context.num_replicas_in_sync)
    sums, counts, losses = self.restart_statistics(data, weights)
    new, kept, stats = restarts_lib.step(
        self.restart_clusters.read_value(), sums, counts, losses,
        self.step_options(), weighted)
    self.restart_clusters.assign(new)
    # Provisional: the losses of `new` are known only after another pass
    # (`keep_best_restart`).
    self.clusters.assign(kept)
    return stats

  def keep_best_restart(
      self,
      data: ke_typing.PointsOrDataset,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> dict[str, tf.Tensor]:
    """Makes `clusters` the restart whose current centers score lowest.

    A `full_batch_step` knows each restart's loss before its update only,
    and a restart that was behind may overtake the others in that update;
    so the step's choice of `clusters` is provisional. This scores every
    restart's centers as they are now (`restart_clusters`) in one pass over
    `data` (all R restarts in one matrix product, as in a step) and keeps
    the lowest, ties to the lower restart: `clusters` is then, among the R
    restarts' own centers, those of lowest loss over `data`. The estimator
    calls it before every checkpoint it writes, with the data of the last
    step. With num_restarts=1 it changes nothing.

    Args:
      data: what `full_batch_step` takes: a Tensor of shape (n, d), or a
        finite dataset of such batches or of (points, weights) pairs.
      weights: optional float Tensor (n,) of sample weights, with a Tensor
        `data`.

    Returns:
      dict with 'loss' (the kept centers' loss over `data`),
      'restart_losses' (R,) and 'best_restart' (int32).
    """
    stats = restarts_lib.best(self.restart_statistics(data, weights)[2])
    if self.num_restarts > 1:
      self.clusters.assign(tf.gather(self.restart_clusters.read_value(),
                                     stats['best_restart']))
    return stats

  def _state_inputs(self, points, weights):
    points = self._prepare(points)
    return points, None if weights is None else tf.cast(weights, self.dtype)

  def _carried_step_inputs(self, name, points, weights):
    """(weighted, points, weights) of a step carrying state over the same
    points; refuses what it cannot do."""
    if self.num_restarts > 1:
      raise ValueError(
          f'{name} does not support num_restarts={self.num_restarts}; '
          'use full_batch_step, or num_restarts=1.')
    weighted = self._check_weights(points, weights)
    return (weighted, *self._state_inputs(points, weights))

  def carried_state(
      self,
      algorithm: Union[str, algorithms_base.Algorithm],
      points: ke_typing.ArrayLike,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> Any:
    """The starting state of `carried_step` for these points (and weights).

    Args:
      algorithm: a registered variant that carries its state over the same
        in-memory points (a name of `algorithms.REGISTRY`, e.g. 'lloyd',
        'hamerly', 'yinyang', or its `Algorithm`).
      points: Tensor of shape (n, d), all the data.
      weights: optional float Tensor (n,) of sample weights.

    Returns:
      the variant's state (a NamedTuple of Tensors).
    """
    algorithm = _registered(algorithm)
    points, weights = self._state_inputs(points, weights)
    return algorithm.init_state(points, self.clusters.read_value(), weights,
                                self.step_options())

  def carried_step(
      self,
      algorithm: Union[str, algorithms_base.Algorithm],
      points: ke_typing.ArrayLike,
      state: Any,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> tuple[dict[str, tf.Tensor], Any]:
    """One step of `algorithm` with its state carried over: reads the
    centers, calls the variant's pure step, assigns the new centers.

    `points` (and `weights`) must be those given to `carried_state`, in the
    same order, at every step that shares the state.

    Returns:
      (stats, state): `full_batch_step`'s dict (plus the variant's own
      figures), and the state for the next step.
    """
    algorithm = _registered(algorithm)
    _, points, weights = self._carried_step_inputs(
        f'{algorithm.name}_step', points, weights)
    self._check_relocation_replicas()
    new_centers, state, stats = algorithm.step(
        points, self.clusters.read_value(), state, weights,
        self.step_options())
    self.clusters.assign(new_centers)
    return stats, state

  # Steps that carry their state over the same in-memory points: the
  # starting state for these points (and weights), and one exact Lloyd
  # step from a state. `points` (and `weights`) must be the same, in the
  # same order, at every step that shares a state. Each returns (stats,
  # state): `full_batch_step`'s dict (plus the variant's own figures), and
  # the state for the next step. The maths, and what each variant keeps
  # and skips, is in its module of `algorithms`.
  def lloyd_state(
      self,
      points: ke_typing.ArrayLike,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> lloyd_lib.LloydState:
    """`LloydState` for `lloyd_step`: no assignments yet, and the points'
    |x|^2 (`point_norms`), computed once for all the steps."""
    return self.carried_state('lloyd', points, weights)

  def lloyd_step(
      self,
      points: ke_typing.ArrayLike,
      state: lloyd_lib.LloydState,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> tuple[dict[str, tf.Tensor], lloyd_lib.LloydState]:
    """`full_batch_step` on a Tensor of points, with state carried over
    (`algorithms.lloyd`): |x|^2 computed once, and the per-cluster sums
    changed by the points that changed cluster, exactly (`carried`), so
    a run resumed from a checkpoint gives the same centers, bit for bit,
    as one that was not interrupted."""
    return self.carried_step('lloyd', points, state, weights)

  def hamerly_state(
      self,
      points: ke_typing.ArrayLike,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> bounds_lib.HamerlyState:
    """`bounds.HamerlyState` for `hamerly_step`: bounds that prove nothing
    yet (the first step compares every point with every center), no sums
    yet, and the points' total squared norm."""
    return self.carried_state('hamerly', points, weights)

  def hamerly_step(
      self,
      points: ke_typing.ArrayLike,
      state: bounds_lib.HamerlyState,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> tuple[dict[str, tf.Tensor], bounds_lib.HamerlyState]:
    """One exact Lloyd step that skips the work bounds rule out (Hamerly's
    algorithm, `algorithms.hamerly`; squared Euclidean distance): the
    result is `full_batch_step`'s, and the stats add 'recomputed' (points
    compared with every center). Weights weight the statistics (the
    bounds are per point and do not depend on them)."""
    return self.carried_step('hamerly', points, state, weights)

  def train_step(
      self,
      points: ke_typing.ArrayLike,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> dict[str, tf.Tensor]:
    """One mini-batch step on `points` (Tensor of shape (n, d)).

    The maths is `algorithms.minibatch.step` (its module gives the rule,
    the two-copy scheme of mini_batch_steps_per_iteration N > 1, and which
    clusters empty_cluster='farthest_point' relocates); this reads the
    variables (`clusters`, the counts 'Variable', and with N > 1
    `clusters_updated` and `update_in_steps`), calls it and assigns what
    comes back. Inside `strategy.run` the step uses the global batch (the
    union of the replicas' batches). With `weights` (float Tensor (n,),
    non-negative; the model must be built with `weighted=True`) a point of
    integer weight w moves the centers as w copies of it would.

    Returns:
      dict with 'loss' (sum of distances to the nearest center for this
      batch, before the update), 'num_points', 'empty_clusters' (clusters
      with no point of this batch), 'relocated_clusters' and 'cluster_sizes'
      (int64 (k,), this batch's points per cluster, after any relocation);
      weighted, with weights (see `_stats`).

    Raises:
      ValueError: `weights` given to a model built without `weighted=True`.
    """
    weighted = self._check_weights(points, weights)
    if weighted and not self.weighted:
      raise ValueError(
          'train_step got `weights` but this KMeans was built with '
          'weighted=False, whose mini-batch counts are integers; build it '
          'with weighted=True.')
    points, weights = self._state_inputs(points, weights)
    self._check_relocation_replicas()
    two_copies = self.update_in_steps is not None
    state = minibatch_lib.MiniBatchState(
        self.cluster_counts.read_value(),
        self.clusters_updated.read_value() if two_copies else None,
        self.update_in_steps.read_value() if two_copies else None)
    new_centers, state, stats = minibatch_lib.step(
        points, self.clusters.read_value(), state, weights,
        self.step_options())
    self.clusters.assign(new_centers)
    self.cluster_counts.assign(state.counts)
    if two_copies:
      self.clusters_updated.assign(state.updated)
      self.update_in_steps.assign(state.update_in_steps)
    return stats

  def step(
      self,
      data: ke_typing.PointsOrDataset,
      weights: Optional[ke_typing.ArrayLike] = None,
  ) -> dict[str, tf.Tensor]:
    """`train_step` or `full_batch_step`, as `use_mini_batch` says."""
    if self.use_mini_batch:
      return self.train_step(data, weights)
    return self.full_batch_step(data, weights)

  # The step's figures (see `algorithms.base.step_stats`).
  _stats = staticmethod(algorithms_base.step_stats)


def _registered(
    algorithm: Union[str, algorithms_base.Algorithm],
) -> algorithms_base.Algorithm:
  """The `Algorithm` named `algorithm` (or `algorithm` itself)."""
  if isinstance(algorithm, str):
    return algorithms_lib.get(algorithm)
  return algorithm
