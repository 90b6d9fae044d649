"""`KMeans`: the k-means model as a `tf.Module`, the TF 2 form of the legacy
graph-level `clustering_ops.KMeans`.

The legacy class built a graph (`training_graph()` returned all_scores,
cluster_idx, scores, cluster_centers_initialized, init_op and training_op).
Here the same pieces are methods over fixed-shape variables:
`initialize` (init_op), `train_step` / `full_batch_step` (training_op) and
`infer` (all_scores, cluster_idx, scores). Every method works eagerly and
inside a user's `tf.function`, so k-means can sit inside a larger model.
The module performs no I/O: the estimator shell owns checkpoints and input.

`KMeans` owns the variables (build, restore, reset, views over given
variables) and reads, calls and assigns: the maths is in pure functions
(`initialization` for the initial centers, `algorithms` for the steps,
`ops.distances` for inference), and its training steps are the methods of
its mixin `training_steps.TrainingSteps`.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf

from kmeans_estimator.algorithms import base as algorithms_base
from kmeans_estimator.algorithms import lloyd as lloyd_lib
from kmeans_estimator.algorithms import minibatch as minibatch_lib
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator import initialization
from kmeans_estimator import sizes
from kmeans_estimator import training_steps
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import initializers as initializers_lib
from kmeans_estimator.ops import numerics
from kmeans_estimator.ops import sparse as sparse_lib
from kmeans_estimator import config as options
from kmeans_estimator import typing as ke_typing


def _option(name: str) -> Any:
  """A read-only attribute of `KMeans` that mirrors its config's `name`."""

  def get(self: KMeans) -> Any:
    return getattr(self.config, name)

  return property(get, doc=f'The option `{name}` (see `KMeansConfig`).')


class KMeans(training_steps.TrainingSteps, tf.Module):
  """k-means clustering state and steps over fixed-shape variables.

  Centers live in the variable `clusters` of shape (k, d). Points given to
  any method are float Tensors of shape (n, d) (other numeric dtypes are cast
  to `dtype`); under the cosine metric they are L2-normalised first (a zero
  vector stays zero and is at distance 1 from every center).

  Example:

  ```python
  km = KMeans(num_clusters=3, num_features=2, use_mini_batch=False,
              random_seed=0)
  km.initialize(points)             # may take several calls for small batches
  for _ in range(10):
    stats = km.full_batch_step(points)   # one Lloyd iteration
  index, distance = km.nearest(points)
  ```

  The training steps (`full_batch_step`, `train_step`, and the steps that
  carry state over the same points, `carried_step` for any registered
  variant, `lloyd_step` and `hamerly_step`) are described in
  `training_steps.TrainingSteps`.

  Sample weights: `initialize`, `statistics`, `full_batch_step`,
  `lloyd_step`, `hamerly_step`, `train_step` (with `weighted=True`) and
  `loss` take an optional float Tensor `weights` of shape (n,),
  non-negative, beside the points; a point of weight w counts as w copies
  of it (integer weights give the result of repeated rows, weights of 1
  that of no weights). A `tf.data.Dataset` of batches carries them in its
  elements: each element is then a `(points (m, d), weights (m,))` pair.
  Weights are not checked here (the estimator checks them); None adds no
  work.

  Args:
    num_clusters: positive int k.
    num_features: int d, or None to take it from the first points seen.
    initial_clusters: 'random', 'kmeans_plus_plus', 'kmc2',
      'kmeans_parallel', an array of shape (k, d), or a callable
      f(points, k) returning up to k centers.
    distance_metric: 'squared_euclidean' or 'cosine'.
    use_mini_batch: False for exact Lloyd steps (`full_batch_step`), True
      for mini-batch steps (`train_step`).
    mini_batch_steps_per_iteration: refresh the assignment centers every
      this many mini-batch steps (the legacy two-copy scheme).
    random_seed: int driving all randomness (stateless ops).
    kmeans_plus_plus_num_retries: extra candidates per k-means++ center;
      negative means 2 + log(k).
    kmc2_chain_length: Markov chain length per center for 'kmc2'.
    dtype: tf.float32 or tf.float64, the dtype of the centers and the
      computation.
    chunk_elements: the most point-to-center distances held at once when
      only the nearest center is needed (the memory bound).
    kmeans_parallel_rounds: sampling rounds of 'kmeans_parallel'.
    kmeans_parallel_oversampling: candidates drawn per round of
      'kmeans_parallel', as a multiple of num_clusters.
    empty_cluster: 'keep' or 'farthest_point': what a step does with a
      cluster that no point is nearest to.
    weighted: whether mini-batch steps (`train_step`) get sample weights.
    num_restarts: positive int R: R restarts kept as one model, `clusters`
      the best one's.
    name: module name.

  The options are checked (each one, and every rule between them) into a
  frozen `kmeans_estimator.config.KMeansConfig` (whose docstring describes
  each in full), kept in `config`; the attributes named after the arguments read it. `KMeans.from_config` builds
  a model from a config made beforehand (the estimator's).
  """

  SQUARED_EUCLIDEAN_DISTANCE = constants.SQUARED_EUCLIDEAN_DISTANCE
  COSINE_DISTANCE = constants.COSINE_DISTANCE
  RANDOM_INIT = constants.RANDOM_INIT
  KMEANS_PLUS_PLUS_INIT = constants.KMEANS_PLUS_PLUS_INIT
  KMC2_INIT = constants.KMC2_INIT
  KMEANS_PARALLEL_INIT = constants.KMEANS_PARALLEL_INIT
  KEEP_EMPTY = constants.KEEP_EMPTY
  FARTHEST_POINT = constants.FARTHEST_POINT

  def __init__(self,
               num_clusters: int,
               num_features: Optional[int] = None,
               initial_clusters: ke_typing.InitialClusters = (
                   constants.RANDOM_INIT),
               distance_metric: str = constants.SQUARED_EUCLIDEAN_DISTANCE,
               use_mini_batch: bool = False,
               mini_batch_steps_per_iteration: int = 1,
               random_seed: int = 0,
               kmeans_plus_plus_num_retries: int = 2,
               kmc2_chain_length: int = 200,
               dtype: ke_typing.DTypeLike = tf.float32,
               chunk_elements: int = constants.DEFAULT_CHUNK_ELEMENTS,
               kmeans_parallel_rounds: int = 5,
               kmeans_parallel_oversampling: float = 0.5,
               empty_cluster: str = constants.KEEP_EMPTY,
               weighted: bool = False,
               num_restarts: int = 1,
               name: Optional[str] = None) -> None:
    self._init(options.KMeansConfig(
        num_clusters=num_clusters,
        num_features=num_features,
        initial_clusters=initial_clusters,
        distance_metric=distance_metric,
        use_mini_batch=use_mini_batch,
        mini_batch_steps_per_iteration=mini_batch_steps_per_iteration,
        random_seed=random_seed,
        kmeans_plus_plus_num_retries=kmeans_plus_plus_num_retries,
        kmc2_chain_length=kmc2_chain_length,
        dtype=dtype,
        chunk_elements=chunk_elements,
        kmeans_parallel_rounds=kmeans_parallel_rounds,
        kmeans_parallel_oversampling=kmeans_parallel_oversampling,
        empty_cluster=empty_cluster,
        weighted=weighted,
        num_restarts=num_restarts), name)

  @classmethod
  def from_config(cls, config: options.KMeansConfig,
                  name: Optional[str] = None) -> KMeans:
    """A `KMeans` with the options of `config`, a `KMeansConfig` (or an
    `EstimatorConfig`) from `kmeans_estimator.config`, which checked them
    when it was made: nothing is checked again."""
    if not isinstance(config, options.KMeansConfig):
      raise errors.InvalidArgumentTypeError(
          f'`config` must be a KMeansConfig. Received: config={config!r}',
          'config', config)
    km = cls.__new__(cls)
    km._init(config, name)  # pylint: disable=protected-access
    return km

  def _init(self, config, name):
    super().__init__(name=name)
    self._config = config
    self._seed_argument = None
    self.num_features = None
    if config.known_num_features is not None:
      self.build(config.known_num_features)

  @property
  def config(self) -> options.KMeansConfig:
    """The options, a frozen `kmeans_estimator.config.KMeansConfig`."""
    return self._config

  num_clusters = _option('num_clusters')
  initial_clusters = _option('initial_clusters')
  distance_metric = _option('distance_metric')
  use_mini_batch = _option('use_mini_batch')
  mini_batch_steps_per_iteration = _option('mini_batch_steps_per_iteration')
  random_seed = _option('random_seed')
  kmeans_plus_plus_num_retries = _option('kmeans_plus_plus_num_retries')
  kmc2_chain_length = _option('kmc2_chain_length')
  kmeans_parallel_rounds = _option('kmeans_parallel_rounds')
  kmeans_parallel_oversampling = _option('kmeans_parallel_oversampling')
  dtype = _option('dtype')
  chunk_elements = _option('chunk_elements')
  empty_cluster = _option('empty_cluster')
  weighted = _option('weighted')
  num_restarts = _option('num_restarts')

  # Whether the variables have a dynamic first dimension k (shapes (None, d),
  # (None,) and (R, None, d)), so that one traced function serves models of
  # every num_clusters (see `view` and `estimator.compiled`).
  _DYNAMIC_NUM_CLUSTERS = False

  def graph_options(self,
                    initializes: bool = True) -> tuple[tuple[str, Any], ...]:
    """What the graph of a method depends on, besides the variables' shapes
    and the arguments: a hashable tuple of (name, value) pairs.

    `config.graph_key`, the number of features, and num_clusters where the
    graph needs it as a Python int: a callable `initial_clusters` (called
    with k), 'kmeans_parallel' (oversampling x k candidates per round) and
    'kmeans_plus_plus' with negative `kmeans_plus_plus_num_retries`
    (2 + log k candidates); elsewhere a view takes k from the `clusters`
    variable (see `view`). The seed is left out: views take it as an
    argument (`seed_argument`).

    Args:
      initializes: False for a method that chooses no initial centers
        (steps, evaluation, prediction): the initialiser's options
        (`config.INITIALIZER_FIELDS`) are then left out, so that models
        that differ only in how they start (say, a choose-k loop whose
        k-means++ retries grow with k) share those graphs.
    """
    key = self.config.graph_key
    if not initializes:
      return tuple(item for item in key
                   if item[0] not in options.INITIALIZER_FIELDS) + (
                       ('num_features', self.num_features),)
    method = self.initial_clusters
    static_k = callable(method) or (isinstance(method, str) and (
        method == constants.KMEANS_PARALLEL_INIT or (
            method == constants.KMEANS_PLUS_PLUS_INIT and
            self.kmeans_plus_plus_num_retries < 0)))
    return key + (
        ('num_clusters', self.num_clusters if static_k else None),
        ('num_features', self.num_features))

  def state_variables(self) -> dict[str, tf.Variable]:
    """The model's variables by attribute name (those it has), for `view`."""
    names = ('clusters', 'initialized', 'num_initialized', 'cluster_counts',
             'clusters_updated', 'update_in_steps', 'restart_clusters')
    return {name: getattr(self, name) for name in names
            if getattr(self, name) is not None}

  def seed_argument(self) -> tf.Tensor:
    """The base seed as an int64 Tensor (2,), for `view` (made once)."""
    if self._seed_argument is None:
      with tf.init_scope():
        self._seed_argument = tf.constant(
            [self.random_seed & 0x7FFFFFFF, 0x6B6D], tf.int64)
    return self._seed_argument

  @staticmethod
  def view(config: options.KMeansConfig,
           graph_options: tuple[tuple[str, Any], ...],
           variables: Mapping[str, tf.Variable], seed: tf.Tensor) -> KMeans:
    """A `KMeans` over given variables, making none of its own.

    For functions traced once for every model of the same `graph_options`
    (see `estimator.compiled`): the variables and the seed are the traced
    function's arguments, so its graph holds no model of its own. The view
    reads its options from `config` (any config of these graph_options)
    except num_clusters: the Python int of `graph_options` when there is
    one, else the Tensor `tf.shape(clusters)[0]`.

    Args:
      config: a `KMeansConfig` whose model has these `graph_options`.
      graph_options: what `graph_options()` returned.
      variables: what `state_variables()` returned.
      seed: int64 Tensor (2,), what `seed_argument()` returned.
    """
    view = _KMeansView.__new__(_KMeansView)
    tf.Module.__init__(view, name='kmeans')
    settings = dict(graph_options)
    view._config = config
    view._seed_argument = seed
    view.num_features = settings['num_features']
    for name in ('cluster_counts', 'clusters_updated', 'update_in_steps',
                 'restart_clusters'):
      setattr(view, name, variables.get(name))
    view.clusters = variables['clusters']
    view.initialized = variables['initialized']
    view.num_initialized = variables['num_initialized']
    view.num_clusters = settings.get('num_clusters')
    if view.num_clusters is None:
      view.num_clusters = tf.shape(view.clusters)[0]
    return view

  # ---------------------------------------------------------------- state
  @property
  def built(self) -> bool:
    return self.num_features is not None

  def build(self, num_features: int) -> None:
    """Creates the variables for points of `num_features` dimensions."""
    if self.built:
      return
    k, d = self.num_clusters, int(num_features)
    self.check_sizes(d)
    self.num_features = d
    # The shape the variables declare: k left dynamic when traces are shared.
    dynamic = None if self._DYNAMIC_NUM_CLUSTERS else k

    def variable(initial, name, dtype=None, shape=None):
      # Under a tf.distribute strategy every replica computes the same new
      # value (statistics are all-reduced first); the first replica's is kept.
      return tf.Variable(initial, dtype=dtype, trainable=False, name=name,
                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                         shape=shape)

    with self.name_scope:
      self.clusters = variable(tf.zeros([k, d], self.dtype),
                               constants.CLUSTER_CENTERS_VAR_NAME,
                               shape=tf.TensorShape([dynamic, d]))
      self.initialized = variable(False, constants.INITIALIZED_VAR_NAME)
      # Centers chosen so far; initialisation may span several batches.
      self.num_initialized = variable(0, 'num_initialized', tf.int32)
      self.cluster_counts = None
      self.clusters_updated = None
      self.update_in_steps = None
      self.restart_clusters = None
      if self.num_restarts > 1:
        self.restart_clusters = variable(
            tf.zeros([self.num_restarts, k, d], self.dtype),
            constants.RESTART_CLUSTERS_VAR_NAME,
            shape=tf.TensorShape([self.num_restarts, dynamic, d]))
      if self.use_mini_batch:
        self.cluster_counts = variable(
            self._fresh_counts(self.dtype if self.weighted else tf.int64),
            constants.CLUSTER_COUNTS_VAR_NAME,
            shape=tf.TensorShape([dynamic]))
        if self.mini_batch_steps_per_iteration > 1:
          self.clusters_updated = variable(
              tf.zeros([k, d], self.dtype),
              constants.UPDATED_CLUSTERS_VAR_NAME,
              shape=tf.TensorShape([dynamic, d]))
          self.update_in_steps = variable(
              self.mini_batch_steps_per_iteration,
              constants.UPDATE_IN_STEPS_VAR_NAME, tf.int64)
    if self._config.given_centers is not None:
      self._append_centers(self._prepare(self._config.given_centers))

  def _fresh_counts(self, dtype):
    """The mini-batch counts of a fresh model (k,): the legacy rule, 1 with
    mini_batch_steps_per_iteration=1, else 0 (see the class docstring)."""
    return minibatch_lib.fresh_counts(self.step_options(), dtype)

  def step_options(self) -> algorithms_base.Options:
    """This model's options as the algorithms' steps read them."""
    return algorithms_base.Options(
        num_clusters=self.num_clusters,
        distance_metric=self.distance_metric,
        chunk_elements=self.chunk_elements,
        empty_cluster=self.empty_cluster,
        mini_batch_steps_per_iteration=self.mini_batch_steps_per_iteration,
        dtype=self.dtype)

  def check_sizes(self, num_features: int,
                  num_points: Optional[int] = None) -> None:
    """Raises `options.SizeError` if this model's tensors for points of
    `num_features` dimensions (and a first batch of `num_points` points,
    when known) would not fit in the memory this process may use; what is
    counted is listed in `sizes.check_sizes`."""
    sizes.check_sizes(self._config, num_features, num_points)

  def checkpoint_variables(self) -> dict[str, tf.Variable]:
    """The variables to save, by their legacy checkpoint names."""
    named = {
        constants.CLUSTER_CENTERS_VAR_NAME: self.clusters,
        constants.INITIALIZED_VAR_NAME: self.initialized,
    }
    for variable, name in ((self.cluster_counts,
                            constants.CLUSTER_COUNTS_VAR_NAME),
                           (self.clusters_updated,
                            constants.UPDATED_CLUSTERS_VAR_NAME),
                           (self.update_in_steps,
                            constants.UPDATE_IN_STEPS_VAR_NAME),
                           (self.restart_clusters,
                            constants.RESTART_CLUSTERS_VAR_NAME)):
      if variable is not None:
        named[name] = variable
    return named

  def reset(self) -> None:
    """Returns to the untrained state (given initial centers are re-applied)."""
    self.clusters.assign(tf.zeros_like(self.clusters))
    self.initialized.assign(False)
    self.num_initialized.assign(0)
    if self.cluster_counts is not None:
      self.cluster_counts.assign(self._fresh_counts(self.cluster_counts.dtype))
    if self.update_in_steps is not None:
      self.update_in_steps.assign(self.mini_batch_steps_per_iteration)
    if self.clusters_updated is not None:  # Made with update_in_steps.
      self.clusters_updated.assign(tf.zeros_like(self.clusters_updated))
    if self.restart_clusters is not None:
      self.restart_clusters.assign(tf.zeros_like(self.restart_clusters))
    if self._config.given_centers is not None:
      self._append_centers(self._prepare(self._config.given_centers))

  def restore(self, values: Mapping[str, Any]) -> None:
    """Assigns saved values (legacy name -> array) to the variables.

    Names this model does not use are ignored, and a mini-batch state missing
    from `values` (say, a full-batch checkpoint) starts fresh. A checkpoint
    taken before initialisation finished restarts initialisation. With
    num_restarts R > 1, values without 'restart_clusters' (a legacy model,
    or one trained with num_restarts=1) start every restart from the saved
    `clusters`.

    Raises:
      ValueError: 'restart_clusters' of another shape than (R, k, d).
    """
    self.build(np.shape(values[constants.CLUSTER_CENTERS_VAR_NAME])[1])
    restarts = values.get(constants.RESTART_CLUSTERS_VAR_NAME)
    if self.restart_clusters is not None and restarts is not None and (
        tuple(np.shape(restarts)) != (self.num_restarts, self.num_clusters,
                                      self.num_features)):
      raise ValueError(
          f'The saved restart_clusters have shape {tuple(np.shape(restarts))}'
          f' but this KMeans has num_restarts={self.num_restarts}, '
          f'num_clusters={self.num_clusters}, num_features='
          f'{self.num_features}; restore values saved by a model with the '
          'same options.')
    for name, variable in self.checkpoint_variables().items():
      if name in values:
        variable.assign(tf.cast(values[name], variable.dtype))
    if constants.CLUSTER_COUNTS_VAR_NAME not in values and (
        self.cluster_counts is not None):
      self.cluster_counts.assign(self._fresh_counts(self.cluster_counts.dtype))
    if constants.UPDATED_CLUSTERS_VAR_NAME not in values and (
        self.clusters_updated is not None):
      self.clusters_updated.assign(self.clusters)
    if self.restart_clusters is not None and restarts is None:
      self.restart_clusters.assign(tf.tile(
          self.clusters.read_value()[tf.newaxis], [self.num_restarts, 1, 1]))
    initialized = bool(np.asarray(values.get(constants.INITIALIZED_VAR_NAME,
                                             True)))
    self.initialized.assign(initialized)
    self.num_initialized.assign(self.num_clusters if initialized else 0)

  def prepare(self, points: ke_typing.ArrayLike) -> tf.Tensor:
    """`points` as this model computes with them: cast to `dtype`, and
    L2-normalised under the cosine metric."""
    return self._prepare(points)

  def _prepare(self, points):
    if isinstance(points, tf.SparseTensor):
      # A direct caller's SparseTensor: put in row-major order and held in
      # CSR form (`ops.sparse.CsrPoints`), as the adapters do once.
      width = points.shape[1]
      if width is None and self.built:
        width = self.num_features
      if width is None:
        raise errors.InvalidArgumentError(
            '`points` must have a known static shape (n, d) the first time '
            'KMeans sees them, or pass num_features. Received: shape '
            f'{points.shape}', 'points')
      points = sparse_lib.from_row_major(tf.sparse.reorder(points), width)
    if sparse_lib.is_sparse(points):
      # Sparse points stay sparse (`ops.sparse`).
      points = sparse_lib.cast(points, self.dtype)
    else:
      points = tf.cast(tf.convert_to_tensor(points), self.dtype)
    if not self.built:
      if points.shape.rank != 2 or points.shape[1] is None:
        raise errors.InvalidArgumentError(
            '`points` must have a known static shape (n, d) the first time '
            'KMeans sees them, or pass num_features. Received: shape '
            f'{points.shape}', 'points')
      self.build(points.shape[1])
    if self.distance_metric == constants.COSINE_DISTANCE:
      points = (sparse_lib.l2_normalize_rows(points)
                if sparse_lib.is_sparse(points)
                else numerics.safe_l2_normalize(points))
    return points

  def _seed(self, *path):
    """The seed at `path` (`initialization.seed`)."""
    return initialization.seed(self.seed_argument(), path)

  # -------------------------------------------------------- initialisation
  def _init_options(self):
    """This model's options as `initialization` reads them."""
    return initialization.Options.of(self._config, self.num_clusters,
                                     self.num_features)

  def _append_centers(self, new, restarts=None):
    """Writes `new` (m, d) centers (with restarts, every restart's (R, m,
    d)) after those chosen so far, up to k (`initialization.append`)."""
    clusters, restart_clusters, total = initialization.append(
        self.clusters.read_value(), self.num_initialized.read_value(), new,
        self.num_clusters,
        None if restarts is None else self.restart_clusters.read_value(),
        restarts)
    self.clusters.assign(clusters)
    if restarts is not None:
      self.restart_clusters.assign(restart_clusters)
    self.num_initialized.assign(total)
    if self.clusters_updated is not None:
      self.clusters_updated.assign(self.clusters)
    done = total >= self.num_clusters
    self.initialized.assign(done)
    return done

  def _append_chosen(self, choose, *path):
    """Appends `choose(seed)`'s centers, drawn once per restart with the
    seed at `path` (`initialization.choose_per_restart`)."""
    return self._append_centers(*initialization.choose_per_restart(
        choose, self.seed_argument(), path, self.num_restarts, self.dtype))

  def _choose_centers(self, points, weights):
    wanted = self.num_clusters - self.num_initialized
    return self._append_chosen(initialization.batch_chooser(
        points, weights, wanted, self._init_options(), self._prepare),
                               1, self.num_initialized)

  def initialize(self, points: ke_typing.ArrayLike,
                 weights: Optional[ke_typing.ArrayLike] = None) -> tf.Tensor:
    """Chooses initial centers from `points` unless already initialized.

    'random' takes distinct points of the batch, and takes the rest from later
    calls when the batch has fewer than k points; a callable is likewise
    called on successive batches until k centers exist. 'kmeans_plus_plus'
    (which needs at least k points) and 'kmc2' choose all k from one batch;
    so does 'kmeans_parallel', treating the batch as all the data (see
    `initialize_from_dataset` for data in batches).

    With `weights`, 'random' draws in proportion to weight, and
    'kmeans_plus_plus' and 'kmeans_parallel' are their weighted forms (a
    point of weight w counts as w copies); points of weight 0 are never
    chosen, so they need at least k points of positive weight. A callable
    gets the points without their weights; 'kmc2' has no weighted form.

    Args:
      points: Tensor of shape (n, d).
      weights: optional float Tensor of shape (n,), non-negative.

    Returns:
      bool scalar Tensor: whether all k centers are now chosen.

    A callable must return a numeric array or Tensor of shape (m, d) with
    finite values (see `initialization.callable_centers`).

    Raises:
      ValueError: `weights` with initial_clusters='kmc2'; a callable
        initial_clusters that returned centers of another shape than (m, d).
      TypeError: a callable initial_clusters that returned no numeric array.
      tf.errors.InvalidArgumentError: a callable initial_clusters that
        returned NaN or Inf (`CALLABLE_NON_FINITE_MESSAGE`), or too few
        points for the initialisation; nothing is written.
        `errors.translate` gives its typed error.
    """
    points = self._prepare(points)
    if weights is not None:
      # A string test first: given centers are an array.
      if (isinstance(self.initial_clusters, str) and
          self.initial_clusters == constants.KMC2_INIT):
        raise ValueError(
            "initial_clusters='kmc2' does not support sample weights; use "
            "'kmeans_plus_plus', 'kmeans_parallel' or 'random' with "
            'weights.')
      weights = tf.cast(weights, self.dtype)
    return tf.cond(self.initialized.read_value(),
                   lambda: tf.constant(True),
                   lambda: self._choose_centers(points, weights))

  def initialize_from_dataset(self, dataset: tf.data.Dataset) -> tf.Tensor:
    """k-means|| over all batches of a finite dataset (a bounded number of
    passes: one to draw the first center and count the points,
    `kmeans_parallel_rounds` to draw candidates, one to weigh them).

    Each round keeps, across batches, the candidates with the largest
    sampling keys (a reservoir of fixed size), so memory holds one batch, the
    candidates, and a chunk of distances, whatever the size of the data.
    Batches must come in the same order on every pass for the result to be
    reproducible. Already-initialized models are left as they are.

    Args:
      dataset: a finite `tf.data.Dataset` of float Tensors (batches) of shape
        (m, d), or of (points (m, d), weights (m,)) pairs: points are then
        drawn in proportion to weight and weigh the candidates by it.

    Returns:
      bool scalar Tensor: True (all k centers are chosen).
    """
    if self.initial_clusters != constants.KMEANS_PARALLEL_INIT:
      raise ValueError('initialize_from_dataset is for '
                       "initial_clusters='kmeans_parallel'; use initialize() "
                       'batch by batch for the others.')
    return tf.cond(self.initialized.read_value(),
                   lambda: tf.constant(True),
                   lambda: self._append_chosen(initialization.dataset_chooser(
                       dataset, self._init_options(), self._prepare), 1, 0))

  def streamed_sampler(self) -> initializers_lib.StreamedSampler:
    """This model's k-means|| settings as an `initializers.StreamedSampler`,
    for drivers that pass over batches themselves (tf.distribute)."""
    return initialization.streamed_sampler(self._init_options(),
                                           self._seed(1, 0))

  def finish_parallel(self, candidates: tf.Tensor, weights: tf.Tensor,
                      count: tf.Tensor, weighted: bool = False) -> tf.Tensor:
    """Reduces k-means|| candidates of `count` points to the k centers.

    For drivers that sample with `streamed_sampler` (num_restarts=1).
    """
    if self.num_restarts > 1:
      raise ValueError(
          'finish_parallel reduces one set of candidates, but this KMeans '
          f'has num_restarts={self.num_restarts}; use '
          'initialize_from_dataset, or num_restarts=1.')
    return self._append_centers(initialization.reduce_counted(
        candidates, weights, count, self._seed(1, 0), self._init_options(),
        weighted))

  # ---------------------------------------------------------- distribution
  def broadcast_state(self) -> tf.Tensor:
    """Makes every replica's state the first replica's (inside strategy.run).

    Used after restoring or initialising, so that workers that restored or
    initialised differently (say, from their own shards) train identically.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
      return tf.constant(True)
    first = tf.equal(context.replica_id_in_sync_group, 0)
    for variable in [self.clusters, self.initialized, self.num_initialized,
                     *(v for v in (self.cluster_counts, self.clusters_updated,
                                   self.update_in_steps,
                                   self.restart_clusters) if v is not None)]:
      value = variable.read_value()
      as_number = tf.cast(value, tf.float64 if value.dtype.is_integer or
                          value.dtype == tf.bool else value.dtype)
      summed = context.all_reduce(
          tf.distribute.ReduceOp.SUM,
          tf.where(first, as_number, tf.zeros_like(as_number)))
      variable.assign(tf.cast(summed, value.dtype))
    return tf.constant(True)

  # ------------------------------------------------------------- inference
  def all_distances(self, points: ke_typing.ArrayLike) -> tf.Tensor:
    """Distances from each point to each center: float Tensor (n, k).

    Squared Euclidean distances, or 1 - cos under the cosine metric.
    """
    return distances_lib.pairwise_distances(self._prepare(points),
                                            self.clusters,
                                            self.distance_metric)

  def nearest(self, points: ke_typing.ArrayLike,
              static_chunks: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """(cluster_index int64 (n,), distance (n,)) in bounded memory.

    static_chunks=False runs the faster chunk loop that TFLite cannot
    convert (see `distances.nearest_centers`): for use in this process, not
    in exported signatures.
    """
    index, distance = distances_lib.nearest_centers(
        self._prepare(points), self.clusters.read_value(),
        self.distance_metric, self.chunk_elements,
        static_chunks=static_chunks)
    return tf.cast(index, tf.int64), distance

  def nearest_index(
      self,
      points: ke_typing.ArrayLike,
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """(cluster_index int64 (n,), finite): the nearest centers, and a bool
    scalar, whether every distance to them is finite (False means overflow,
    or NaN/Inf points).

    For prediction in this process: under squared Euclidean distance the
    distances are not computed unless a bound says they might overflow
    (`distances.nearest_indices`).
    """
    if self.distance_metric != constants.SQUARED_EUCLIDEAN_DISTANCE:
      index, distance = self.nearest(points, static_chunks=False)
      return index, tf.reduce_all(tf.math.is_finite(distance))
    index, finite = distances_lib.nearest_indices(
        self._prepare(points), self.clusters.read_value(),
        self.chunk_elements)
    return tf.cast(index, tf.int64), finite

  def infer(
      self,
      points: ke_typing.ArrayLike,
  ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """What the legacy training_graph inferred for a batch.

    Returns:
      (all_distances (n, k), cluster_index int64 (n,), distance to the
      nearest center (n,)).
    """
    all_distances = self.all_distances(points)
    index = tf.argmin(all_distances, axis=1, output_type=tf.int64)
    return (all_distances, index,
            tf.gather(all_distances, index, axis=1, batch_dims=1))

  def loss(self, points: ke_typing.ArrayLike,
           weights: Optional[ke_typing.ArrayLike] = None) -> tf.Tensor:
    """Sum over points of the distance to the nearest center (scalar).

    With `weights` (float Tensor (n,)), the weighted sum.
    """
    distances = self.nearest(points)[1]
    if weights is None:
      return tf.reduce_sum(distances)
    return tf.reduce_sum(tf.cast(weights, self.dtype) * distances)

  def nearest_k(
      self,
      points: ke_typing.ArrayLike,
      k: int,
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """The `k` nearest centers of each point, in bounded memory.

    Args:
      points: float Tensor of shape (n, d).
      k: Python int, 1 <= k <= num_clusters.

    Returns:
      (top_k_cluster_indices int64 (n, k), top_k_distances (n, k)), nearest
      first, ties to the lower index; the first column is what `nearest`
      gives.

    Raises:
      ValueError: `k` outside [1, num_clusters].
    """
    k = options.check_positive_int('k', k)
    # (A view's num_clusters is a Tensor: its callers check k first.)
    if isinstance(self.num_clusters, int) and k > self.num_clusters:
      raise errors.InvalidArgumentError(
          f'`k` must be at most num_clusters={self.num_clusters}. '
          f'Received: k={k}', 'k', k)
    return distances_lib.top_k_nearest(self._prepare(points),
                                       self.clusters.read_value(),
                                       self.distance_metric, k,
                                       self.chunk_elements)


# The messages of the checks of what a callable initial_clusters returned
# (defined in `initialization`; importable from here as before).
CALLABLE_NON_FINITE_MESSAGE = initialization.CALLABLE_NON_FINITE_MESSAGE
CALLABLE_WIDTH_MESSAGE = initialization.CALLABLE_WIDTH_MESSAGE
CALLABLE_OVERFLOW_MESSAGE = initialization.CALLABLE_OVERFLOW_MESSAGE


# What one `KMeans.lloyd_step` hands to the next.
LloydState = lloyd_lib.LloydState


# `values` summed over the replicas of the current tf.distribute strategy.
sum_over_replicas = algorithms_base.sum_over_replicas


class _KMeansView(KMeans):
  """What `KMeans.view` makes: num_clusters is its own (an int or a
  Tensor), not the config's; the rest reads the config."""

  num_clusters = None
  random_seed = None
