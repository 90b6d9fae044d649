"""`KMeansClustering`: the legacy KMeans Estimator's API over the `KMeans` core.

A user of the legacy `KMeans` Estimator (removed in TensorFlow 2.16) switches by
changing the import and keeps their `model_dir`. The estimator is a thin shell: it reads
input, validates it once, restores and writes checkpoints, runs hooks, logs,
and calls compiled functions of the `KMeans` core: evaluation, prediction,
export and the steps over batches go through `model_fn` (`model_fn.spec`);
the steps carried over data in memory run the algorithm's step directly
(`training.CarriedSteps`).

This module holds the public API, the argument checks, input reading and
the compiled steps; each public method delegates the rest to the module
named for it: `training` (the loop between steps: budget, hooks, logging,
tolerance, checkpoint cadence, saving listeners, the `TrainingSummary`),
`initialization` (which data the initialisers see), `model_dir` (which
checkpoint the core holds; restoring, checking, saving), `inference` (the
chunked loops of evaluate and predict) and `io.export` (the SavedModel).

Where we differ from scikit-learn: `score` is positive (a sum of distances,
not its negation), and `transform` returns Euclidean distances (not squared)
under the squared Euclidean metric, as the legacy estimator did.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import tempfile
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional
from typing import Sequence, Union

from absl import logging
import numpy as np
import tensorflow as tf

from kmeans_estimator import algorithms
from kmeans_estimator.estimator import compiled
from kmeans_estimator import distribute as distribute_lib
from kmeans_estimator.io import export as export_lib
from kmeans_estimator.estimator import hooks as hooks_lib
from kmeans_estimator.estimator import inference
from kmeans_estimator.estimator import initialization
from kmeans_estimator.estimator import model_dir as model_dir_lib
from kmeans_estimator.data import inputs
from kmeans_estimator.io import locking
from kmeans_estimator.estimator import model_fn as model_fn_lib
from kmeans_estimator.estimator import run_config as run_config_lib
from kmeans_estimator.estimator import training
from kmeans_estimator.estimator import training_summary as summary_lib
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator import model as kmeans_lib
from kmeans_estimator import config as options
from kmeans_estimator import typing as ke_typing

ModeKeys = model_fn_lib.ModeKeys
EstimatorSpec = model_fn_lib.EstimatorSpec


# The bodies of the shared compiled functions (see `compiled`): each takes
# the model (a view inside the trace) and the call's arguments, nothing else.
def _train_step(km, data):
  return model_fn_lib.spec(km, data, ModeKeys.TRAIN).train_op


def _initialize(km, *batch):
  return km.initialize(*batch)


def _initialize_from_dataset(km, dataset):
  return km.initialize_from_dataset(dataset)


def _eval_batch(km, data):
  return model_fn_lib.spec(km, data, ModeKeys.EVAL,
               {'static_chunks': False}).eval_metric_ops


def _keep_best_restart(km, data):
  points, weights = inputs.Batch.of(data)
  return km.keep_best_restart(points, weights)


class KMeansClustering:
  """An Estimator for k-means clustering, compatible with the legacy one.

  Training data come from `input_fn`, which returns a `tf.data.Dataset` of
  batches (float Tensors of shape (n, d) or dicts of features), a Tensor or
  array of shape (n, d) (all the data), or a `(features, labels)` tuple.
  Every method that takes an `input_fn` also takes the data itself in its
  place, scikit-learn style: a numpy array (or list of rows), a Tensor, a
  dict of features or a `tf.data.Dataset`, with an optional `batch_size`
  (None: an array is one batch, all the data; a Dataset is used as it is).

  What one training step is:

  - Full batch (`use_mini_batch=False`): one exact Lloyd iteration over all
    the data. A finite dataset of batches is streamed once per step
    (per-cluster sums and counts are accumulated, then the centers move
    once), so the data need not fit in memory. An endless dataset
    (`cardinality() == INFINITE`, e.g. `from_tensors(points).repeat()`)
    keeps the legacy meaning: each element is the whole data, one step each.
  - Mini-batch: one update from one batch, x <- x + (s - m x) / (n + m).

  How long `train` runs: until `steps` more steps, or `max_steps` in total
  (counted from the saved `global_step`), or `relative_tolerance` is met
  (|loss - previous| / (1 + |previous|) < tolerance), or a hook requests a
  stop, or the input ends. Without `steps`/`max_steps`, finite input is read
  once, as Estimator did: one step for a Tensor or array or for a full-batch
  pass over a finite dataset, one step per batch in mini-batch mode. A Tensor
  or array with `steps` is reused for every step.

  Edge cases: an empty cluster keeps its center (never NaN, never the
  origin), or with empty_cluster='farthest_point' moves to a point far from
  its center; duplicate points are fine, and with fewer distinct points than k
  some centers coincide and stay empty; under the cosine metric a zero vector
  is at distance 1 from every center and does not move any center's
  direction; NaN or Inf in the data is an error; finite data so large that
  squared distances overflow the dtype (above about 2e19 in float32, 1e154
  in float64) is a FloatingPointError in training and prediction alike
  (rescale, or below float64 use dtype=tf.float64); data so small that
  squared distances underflow (about 1e-23 in float32) stay finite, but
  every point then ties with every center and goes to the lowest index.
  Arguments that ask for more than TensorFlow's int32 or int64 sizes hold,
  or whose tensors alone would exceed the memory this process may use
  (the machine's, or a lower ulimit or cgroup limit; known once the
  data's width, and for 'kmeans_plus_plus' the first batch's size, are
  read), are an `options.SizeError` (a ValueError) naming the argument,
  before anything is written. Arguments that are booleans must be bool or
  numpy bool, and paths str or `os.PathLike` (a leading `~` is expanded);
  anything else is a TypeError naming the argument.

  Example:

  ```python
  kmeans = KMeansClustering(num_clusters=5, use_mini_batch=False)
  kmeans.train(lambda: points, steps=10)
  centers = kmeans.cluster_centers()
  indices = list(kmeans.predict_cluster_index(lambda: points))
  # The same with the array itself, and the 3 nearest centers of each point:
  kmeans.train(points, steps=10)
  nearest = list(kmeans.predict(points, top_k=3))
  ```

  Args:
    num_clusters: positive int k, at most 2**31 - 1.
    model_dir: where checkpoints and summaries go, a str or `os.PathLike`
      (a leading `~` is expanded); None makes a fresh temporary directory
      (logged).
    initial_clusters: 'random', 'kmeans_plus_plus', 'kmc2',
      'kmeans_parallel', an array of shape (k, d), or a callable
      f(inputs, k) returning up to k centers (a numeric array or Tensor of
      shape (m, d), finite; it is called on each batch in turn until k are
      chosen, and a ValueError or TypeError naming `initial_clusters` says
      what it returned otherwise). 'kmeans_plus_plus' and 'kmc2'
      choose from the first batch, as the legacy estimator did;
      'kmeans_parallel' (k-means||, Spark's default) samples all the data in
      `kmeans_parallel_rounds` + 2 passes, so it sees every batch of a
      dataset and is much faster than 'kmeans_plus_plus' on large data. It
      needs finite input; under tf.distribute every replica samples its own
      batches.
    distance_metric: 'squared_euclidean' or 'cosine'.
    seed: int seed for initialisation; None uses `config.tf_random_seed`,
      else a random one (logged).
    use_mini_batch: bool: mini-batch (True, the legacy default) or
      full-batch Lloyd (False).
    mini_batch_steps_per_iteration: refresh the assignment centers every this
      many mini-batch steps (legacy two-copy scheme). As in the legacy
      estimator, a fresh model's per-cluster counts (n in the update
      x <- x + (s - m x) / (n + m)) start at 1 when it is 1, at 0 when it is
      larger (and return to 0 at each refresh); saved counts are restored
      as saved.
    kmeans_plus_plus_num_retries: extra k-means++ candidates per center;
      negative means 2 + log(k). Each center's candidates are scored against
      the whole first batch at once, so (n + d) x (1 + retries) values must
      fit in memory.
    relative_tolerance: stop when the relative change in loss falls below it.
    config: a `RunConfig`.
    feature_columns: names (or columns with `.key`) of the dict features to
      use, in order; None uses all, in sorted key order.
    kmc2_chain_length: Markov chain length per center for 'kmc2';
      kmc2_chain_length x num_clusters at most 2**31 - 1.
    kmeans_parallel_rounds: sampling rounds of 'kmeans_parallel'.
    kmeans_parallel_oversampling: candidates drawn per round of
      'kmeans_parallel', as a multiple of num_clusters.
    dtype: tf.float32 (the default) or tf.float64, the dtype of the
      centers and the computation; half precision (float16, bfloat16) is
      refused with a TypeError, and data of any numeric dtype is cast to it.
    run_eagerly: bool: run steps eagerly instead of as compiled
      `tf.function`s (for debugging).
    algorithm: 'lloyd' (every point against every center each step),
      'hamerly': the same full-batch steps, skipping the distances that
      Hamerly's triangle-inequality bounds rule out; much faster once the
      clusters settle, or 'yinyang' (Ding et al. 2015): the same steps
      again, with one bound per group of about 10 centers, which skips
      whole groups where Hamerly's single bound fails (see
      `algorithms.yinyang`). 'hamerly' and 'yinyang' need
      use_mini_batch=False and the squared Euclidean metric, and apply to
      in-memory input (a Tensor or array); a dataset of batches, or a
      distributed run, uses 'lloyd' (with a warning). The variants are in
      `kmeans_estimator.algorithms.REGISTRY`.
    empty_cluster: 'keep' (the legacy behaviour): a cluster that no point is
      nearest to keeps its center. 'farthest_point' (scikit-learn's policy):
      it moves to one of the points farthest from their own centers, which
      leaves its old cluster; in mini-batch mode only clusters that have
      never had a point are moved, to the batch's far points (needs
      mini_batch_steps_per_iteration=1). Each logged step reports the empty
      clusters and, with 'farthest_point', the relocated ones. Not available
      with `RunConfig(train_distribute=...)`.
    weight_column: None, or the name (or a column with `.key`) of the dict
      feature holding sample weights, as other canned Estimators had: a
      point of weight w counts as w copies of it (integer weights give the
      result of repeated rows, weights of 1 that of no weights). The feature
      is never a point feature (`feature_columns` must not name it); the
      input must then be a dict of features, with weights of shape (n,) or
      (n, 1), finite and >= 0 with a positive total. Weights count in
      initialisation ('random' draws in proportion to weight;
      'kmeans_plus_plus' and 'kmeans_parallel' are weighted; 'kmc2' has no
      weighted form), in every update (weighted means; in mini-batch steps
      the per-cluster learning rate uses the weight seen so far), in the
      training loss and in `evaluate` and `score` (weighted sums of
      distances). `predict` and `transform` ignore the weight feature. Not
      available with empty_cluster='farthest_point' or with a
      tf.distribute strategy in `RunConfig`.
    num_restarts: positive int R, scikit-learn's `n_init`: train R k-means
      runs (restarts) side by side and keep the best. Restart r is
      initialised with `seed` folded with r (restart 0 with what
      num_restarts=1 would draw); each full-batch step moves all R restarts
      from ONE pass over the data (each batch is scored against all R k
      centers in one matrix product), and the checkpoint variable
      `clusters` (so `cluster_centers`, `predict`, `evaluate` and exports)
      holds, among the restarts' current centers, those of lowest loss
      over the training data: before writing each checkpoint, one more
      pass scores every restart's centers as they are (a step knows only
      the losses before its update, and an update can change the order).
      A step's reported loss is that before its update, of the restart
      with the lowest such loss; between checkpoints `clusters` (what hooks
      fetch as 'clusters') is that restart's updated centers. Every
      restart's centers are saved as `restart_clusters` (R, k, d). R > 1
      needs use_mini_batch=False, empty_cluster='keep',
      algorithm='lloyd', no `RunConfig(train_distribute=...)`, and
      initial_clusters named by a string ('kmeans_parallel' samples each
      restart on its own: over a dataset of batches, kmeans_parallel_rounds
      + 2 passes per restart). Training resumes only a model_dir trained with the same
      num_restarts (a ValueError names both otherwise); predict, evaluate
      and export read any model_dir, since they use `clusters` alone.

  After `train`, `training_summary` says what the call did (steps, why it
  stopped, final loss, cluster sizes, empty clusters); the same figures go
  to TensorBoard under 'training_summary/'.
  """

  SQUARED_EUCLIDEAN_DISTANCE = constants.SQUARED_EUCLIDEAN_DISTANCE
  COSINE_DISTANCE = constants.COSINE_DISTANCE
  RANDOM_INIT = constants.RANDOM_INIT
  KMEANS_PLUS_PLUS_INIT = constants.KMEANS_PLUS_PLUS_INIT
  KMC2_INIT = constants.KMC2_INIT
  KMEANS_PARALLEL_INIT = constants.KMEANS_PARALLEL_INIT
  SCORE = constants.SCORE
  CLUSTER_INDEX = constants.CLUSTER_INDEX
  ALL_DISTANCES = constants.ALL_DISTANCES
  TOP_K_CLUSTER_INDICES = constants.TOP_K_CLUSTER_INDICES
  TOP_K_DISTANCES = constants.TOP_K_DISTANCES
  CLUSTER_CENTERS_VAR_NAME = constants.CLUSTER_CENTERS_VAR_NAME
  KEEP_EMPTY = constants.KEEP_EMPTY
  FARTHEST_POINT = constants.FARTHEST_POINT

  def __init__(self,
               num_clusters: int,
               model_dir: Optional[ke_typing.PathLike] = None,
               initial_clusters: ke_typing.InitialClusters = RANDOM_INIT,
               distance_metric: str = SQUARED_EUCLIDEAN_DISTANCE,
               seed: Optional[int] = None,
               use_mini_batch: bool = True,
               mini_batch_steps_per_iteration: int = 1,
               kmeans_plus_plus_num_retries: int = 2,
               relative_tolerance: Optional[float] = None,
               config: Optional[run_config_lib.RunConfig] = None,
               feature_columns: Optional[Union[
                   str, Iterable[ke_typing.FeatureColumn]]] = None,
               kmc2_chain_length: int = 200,
               dtype: ke_typing.DTypeLike = tf.float32,
               run_eagerly: bool = False,
               algorithm: str = constants.LLOYD,
               kmeans_parallel_rounds: int = 5,
               kmeans_parallel_oversampling: float = 0.5,
               empty_cluster: str = constants.KEEP_EMPTY,
               weight_column: Optional[ke_typing.FeatureColumn] = None,
               num_restarts: int = 1) -> None:
    if config is None:
      config = run_config_lib.RunConfig()
    elif not isinstance(config, run_config_lib.RunConfig):
      raise errors.InvalidArgumentTypeError.from_template(
          '`{config}` must be a kmeans_estimator.RunConfig. Received: '
          '{config=}', 'config', config)
    given_model_dir = model_dir
    model_dir = options.check_path('model_dir', model_dir, allow_none=True)
    if model_dir is not None and config.model_dir is not None and (
        model_dir != config.model_dir):
      raise errors.InvalidArgumentError.from_template(
          '`{model_dir}` and `config.model_dir` differ; give one of them. '
          'Received: {model_dir=}, config.model_dir=%r' % (config.model_dir,),
          'model_dir', given_model_dir)
    model_dir = model_dir if model_dir is not None else config.model_dir
    run_eagerly = options.check_bool('run_eagerly', run_eagerly)
    if seed is not None:
      seed = options.check_int('seed', seed)
    if seed is None:
      seed = config.tf_random_seed
    if seed is None:
      seed = random.SystemRandom().randrange(2**31)
      logging.info('No seed given; using seed %d.', seed)
    # Every option and every rule between options is checked here, once;
    # the core is built from this config, as is every fresh core later.
    self._kmeans_config = options.EstimatorConfig(
        num_clusters=num_clusters,
        initial_clusters=initial_clusters,
        distance_metric=distance_metric,
        use_mini_batch=use_mini_batch,
        mini_batch_steps_per_iteration=mini_batch_steps_per_iteration,
        random_seed=seed,
        kmeans_plus_plus_num_retries=kmeans_plus_plus_num_retries,
        kmc2_chain_length=kmc2_chain_length,
        kmeans_parallel_rounds=kmeans_parallel_rounds,
        kmeans_parallel_oversampling=kmeans_parallel_oversampling,
        dtype=dtype,
        empty_cluster=empty_cluster,
        num_restarts=num_restarts,
        algorithm=algorithm,
        relative_tolerance=relative_tolerance,
        feature_columns=feature_columns,
        weight_column=weight_column,
        train_distributed=config.train_distribute is not None,
        eval_distributed=config.eval_distribute is not None)
    self._relative_tolerance = self._kmeans_config.relative_tolerance
    self._feature_columns = (
        None if self._kmeans_config.feature_columns is None else
        list(self._kmeans_config.feature_columns))
    self._weight_column = self._kmeans_config.weight_column
    self._algorithm = self._kmeans_config.algorithm
    self._kmeans = compiled.SharedKMeans.from_config(
        self._kmeans_config, name='kmeans')
    self._run_eagerly = run_eagerly
    if model_dir is None:
      # Only once every argument is checked: a bad one leaves no directory.
      model_dir = tempfile.mkdtemp(prefix='kmeans_estimator_')
      logging.warning('Using temporary folder as model directory: %s',
                      model_dir)
    self._model_dir: str = model_dir
    self._config = config.replace(model_dir=self._model_dir)
    self._training_summary: Optional[summary_lib.TrainingSummary] = None
    self._compiled: dict[Any, Any] = {}
    self._global_step = 0
    self._core_strategy = None
    # Which checkpoint the core holds; reading and writing model_dir.
    self._dir = model_dir_lib.ModelDir(
        self._model_dir, self._kmeans.num_clusters,
        self._kmeans.distance_metric, self._config.keep_checkpoint_max)

  # ------------------------------------------------------------ properties
  @property
  def model_dir(self) -> str:
    """The directory of checkpoints and summaries (a str)."""
    return self._model_dir

  @property
  def config(self) -> run_config_lib.RunConfig:
    """The `RunConfig`."""
    return self._config

  @property
  def num_clusters(self) -> int:
    """The number of clusters k."""
    return self._kmeans.num_clusters

  @property
  def distance_metric(self) -> str:
    """'squared_euclidean' or 'cosine'."""
    return self._kmeans.distance_metric

  @property
  def training_summary(self) -> Optional[summary_lib.TrainingSummary]:
    """What the last `train` call of this object did: a `TrainingSummary`.

    Steps run, global step, why training stopped, whether
    `relative_tolerance` was met, and the last step's loss, cluster sizes
    and empty (and relocated) clusters. None before the first `train`, and
    after a `train` that raised. It lives on this object, like
    scikit-learn's fitted attributes; the same figures are in `model_dir` as
    TensorBoard summaries under 'training_summary/' at the final global
    step, which is where a later process finds them.
    """
    return self._training_summary

  # -------------------------------------------------------------- model_fn
  def model_fn(  # pylint: disable=unused-argument
      self,
      features: Union[tf.Tensor, tf.data.Dataset, tuple[tf.Tensor, tf.Tensor]],
      labels: Any,
      mode: str,
      config: Optional[run_config_lib.RunConfig] = None,
      params: Optional[Mapping[str, Any]] = None,
  ) -> EstimatorSpec:
    """Builds the `EstimatorSpec` for one batch; runs inside compiled steps.

    Args:
      features: float Tensor of shape (n, d); in full-batch TRAIN mode also a
        finite dataset of such batches (one Lloyd step over all of them).
        With sample weights (`weight_column`), in TRAIN and EVAL mode a
        (points (n, d), weights (n,)) pair, or a dataset of such pairs.
      labels: ignored (k-means is unsupervised).
      mode: a `ModeKeys` value.
      config: the `RunConfig` (unused by the maths).
      params: dict; 'predict_keys' selects the predictions to compute, and
        'top_k' (a Python int) is the number of nearest centers that the
        'top_k_*' keys give. 'static_chunks' (default True) keeps every
        chunk of the nearest-center search at one static shape, as the
        exported signatures need for TFLite; False runs a faster loop, for
        evaluate and predict in this process.

    Returns:
      `EstimatorSpec`.
    """
    return model_fn_lib.spec(self._kmeans, features, mode, params)

  def _transformed(self, all_distances):
    """`transform`'s distances: Euclidean (not squared), or 1 - cos."""
    return model_fn_lib.transformed(self._kmeans, all_distances)

  def _compile(self, name, fn):
    """Wraps `fn` in `tf.function` once and caches it on the estimator.

    For the per-estimator functions of a `tf.distribute` run
    (`distribute.Trainer`), which close over the core built in the
    strategy's scope; everything else shares traces across estimators
    (`_shared`).
    """
    if name not in self._compiled:
      # Traced without AutoGraph and relaxing shapes (`compiled.own_function`):
      # each name traces once however many train() calls run it.
      self._compiled[name] = (fn if self._run_eagerly else
                              compiled.own_function(fn))
    return self._compiled[name]

  def _shared(self, name, body):
    """`body(core, *args)` compiled once per process for every estimator
    whose core has the same `graph_options` (see `compiled`), as a callable
    of `args` bound to this estimator's core; `body` must depend on nothing
    but its arguments and what `name` and the options say.

    Eagerly (`run_eagerly`) it runs on the core itself; under a strategy it
    is compiled per estimator (`_compile`).
    """
    if self._run_eagerly or self._core_strategy is not None:
      core = self._kmeans
      return self._compile(name, lambda *args: body(core, *args))
    if name not in self._compiled:
      self._compiled[name] = compiled.bind(name, self._kmeans, body)
    return self._compiled[name]

  def _new_core(self):
    """A fresh core (and no compiled functions bound to the old one)."""
    self._kmeans = compiled.SharedKMeans.from_config(self._kmeans_config,
                                                     name='kmeans')
    self._compiled = {}

  def _train_step(self, data):
    return self._shared('train', _train_step)(data)

  def _carried_steps(self, name, start, step):
    """`training.CarriedSteps` of `step` (a core method, called as
    `step(core, points, state, weights)`), one or several per call, over
    the same data (a `Batch`); `start(core, points, weights)` makes the
    state on the first call."""
    return training.CarriedSteps(
        self._shared(name + '_state', start),
        lambda: self._shared(name, step),
        lambda: self._shared(name + '_steps',
                             functools.partial(training.run_steps, step)))

  def _initialize(self, batch):
    return bool(self._shared('initialize', _initialize)(batch.points,
                                                        batch.weights))

  def _initialize_from_dataset(self, dataset):
    self._shared('initialize_from_dataset', _initialize_from_dataset)(
        dataset)

  def _eval_batch(self, batch):
    return self._shared('eval', _eval_batch)(batch)

  def _predict_batch(self, batch, keys, top_k=None):
    """The predictions for a batch (or a chunk of one), in one call."""
    def fn(km, x):
      return model_fn_lib.spec(km, x, ModeKeys.PREDICT,
                   {'predict_keys': keys, 'top_k': top_k,
                    'static_chunks': False}).predictions
    # The keys and top_k are in the name: the key of the shared function.
    return self._shared(('predict', top_k) + keys, fn)(batch)

  # ----------------------------------------------------------- checkpoints
  def latest_checkpoint(self) -> Optional[str]:
    """Path of the newest checkpoint in `model_dir`, or None."""
    return self._dir.latest_checkpoint()

  def _restore(self, checkpoint_path=None, required=False):
    """Loads the model state from a checkpoint (the latest by default).

    Returns:
      True if a checkpoint was loaded. Without one, the model is reset to its
      untrained state (or, with `required`, a ValueError says to train).
    """
    global_step = self._dir.restore(self._kmeans, checkpoint_path, required)
    if global_step is None:
      if self._kmeans.built:
        # No model yet: nothing fixes the data width but given initial
        # centers, so start from a fresh core (and fresh compiled steps).
        self._new_core()
      self._global_step = 0
      return False
    self._global_step = global_step
    return True

  def get_variable_names(self) -> list[str]:
    """Names of the variables in the latest checkpoint."""
    return self._dir.variable_names()

  def get_variable_value(self, name: str) -> np.ndarray:
    """Value of the variable `name` in the latest checkpoint (numpy).

    The checkpoint is read as it is, like `tf.train.load_variable`, without
    checking it against this estimator's options; `cluster_centers` checks
    them, as `train` and `predict` do.
    """
    return self._dir.variable_value(name)

  def cluster_centers(self) -> np.ndarray:
    """The cluster centers, float array of shape (k, d), from the checkpoint.

    Raises:
      ValueError: no checkpoint, or one that `train` and `predict` refuse
        too: of another num_clusters or distance_metric than this
        estimator's, or damaged (the same messages).
    """
    return self._dir.cluster_centers(self._kmeans)

  # ---------------------------------------------------------------- inputs
  def _read(self, input_fn, mode, check_width=True, check_finite=True,
            in_chunks=False, batch_rows=None):
    raw = inputs.call_input_fn(input_fn, mode, self._config)
    num_features = (self._kmeans.num_features
                    if self._kmeans.built and check_width else None)
    # Reading may take a first batch (to learn its width), whose checks
    # fail as the steps' do.
    with self._input_errors():
      return inputs.read_points(raw, self._feature_columns,
                                self._kmeans.dtype, num_features,
                                self._weight_column,
                                read_weights=mode != ModeKeys.PREDICT,
                                check_finite=check_finite,
                                in_chunks=in_chunks, batch_rows=batch_rows)

  def _read_to_infer(self, input_fn, mode):
    """`_read` for predict and evaluate (see `inference.read_to_infer`)."""
    return inference.read_to_infer(self._read, input_fn, mode,
                                   self.distance_metric)

  @contextlib.contextmanager
  def _input_errors(self, points=None):
    """Turns the failed runtime checks of the input and the compiled steps
    into their typed errors (`errors.translate`): `InvalidInputError`,
    `InitialClustersError` (ValueErrors), `DistanceOverflowError` (a
    FloatingPointError).

    An overflow of the distances is an `InvalidInputError` of kind
    'non_finite' instead when `points` (read unchecked) hold NaN or Inf.
    """
    try:
      with errors.translated():
        yield
    except errors.DistanceOverflowError:
      if points is not None and not points.checked and (
          not points.all_finite()):
        raise errors.InvalidInputError(
            f'{inputs.NON_FINITE_MESSAGE}{inputs.FOUND_WHILE_READING}',
            kind='non_finite') from None
      raise

  # ------------------------------------------------------------- training
  @locking.holds_model_dir_lock
  def train(
      self,
      input_fn: ke_typing.InputFnOrData,
      hooks: ke_typing.Hooks = None,
      steps: Optional[int] = None,
      max_steps: Optional[int] = None,
      saving_listeners: Optional[
          Iterable[ke_typing.SavingListenerLike]] = None,
      *,
      batch_size: Optional[int] = None,
  ) -> KMeansClustering:
    """Trains the model; see the class docstring for how long it runs.

    One trainer per model_dir: `train` holds an exclusive lock on
    `model_dir` (a `flock` on `model_dir/.kmeans_estimator.lock`) from start
    to end, so a second `train` into the same directory, from another
    process or from this one, fails at once with
    `locking.ModelDirLockedError` naming the directory and the holder. The
    operating system drops the lock when its process ends, even by a crash
    or SIGKILL, so a crash never leaves `model_dir` locked. Readers take no
    lock: `predict`, `evaluate`, `cluster_centers`, `export_saved_model`
    and `tf.train.load_variable(model_dir, 'clusters')` read the latest
    complete checkpoint while a trainer writes (checkpoints are atomic). A
    crash at any moment loses at most the steps since the last checkpoint;
    the next `train` resumes from it. Under a `tf.distribute` strategy only
    the chief takes the lock. URLs (`gs://...`) get no lock. See `locking`.

    Args:
      input_fn: callable returning the training data (see the class doc), or
        the data itself: a numpy array (or list of rows) of shape (n, d), a
        Tensor, a dict of features or a `tf.data.Dataset`.
      hooks: `SessionRunHook`-like objects.
      steps: train this many more steps.
      max_steps: train until `global_step` reaches this.
      saving_listeners: objects with Estimator's `CheckpointSaverListener`
        methods (`begin()`, `before_save(session, global_step)`,
        `after_save(session, global_step)` (True stops training),
        `end(session, global_step)`); `session` is None.
      batch_size: only for data given directly. None: an array or Tensor is
        one batch (all the data; a full-batch step is one Lloyd iteration
        over it, a mini-batch step one update from all of it) and a Dataset
        is used as it is. A positive int: an array or Tensor is read in
        consecutive batches of that many rows, in order (in mini-batch mode
        with `steps` or `max_steps` they cycle through the data; without,
        one pass); a Dataset of single rows is batched. Mini-batch training
        resumes where the model stopped: at batch global_step mod (batches
        per pass), so split or killed-and-resumed runs read the batches one
        uninterrupted run reads (without steps, to the end of that pass; see
        `inputs.DirectData`; not under a `train_distribute` strategy);
        'kmeans_parallel' initialises from one pass over the batches, with
        or without steps. A Dataset or an input_fn is read from its start on
        every call.

    Returns:
      self. `training_summary` then says what the call did.

    Raises:
      TypeError: `input_fn` is neither a callable nor data of a supported
        kind.
      distribute.WorkerFailedError: under a multi-worker strategy, another
        worker died or stopped responding; restart all workers to resume
        from the chief's last checkpoint.
    """
    training.check_steps(steps, max_steps)
    input_fn = inputs.as_input_fn(
        input_fn, batch_size, repeat=self._kmeans.use_mini_batch and (
            steps is not None or max_steps is not None))
    self._training_summary = None
    strategy = self._config.train_distribute
    with self._core_for(strategy):
      try:
        return self._train(input_fn, hooks, steps, max_steps,
                           saving_listeners, strategy)
      except BaseException:
        # The core may be ahead of the last checkpoint: reload next time.
        self._dir.forget()
        raise

  def _train(self, input_fn, hooks, steps, max_steps, saving_listeners,
             strategy):
    runner = hooks_lib.HookRunner(hooks)
    restored = self._restore()
    if restored:
      self._dir.check_restarts_match(self._kmeans.num_restarts)
    if max_steps is not None and self._global_step >= max_steps:
      logging.info('Skipping training since max_steps has already saved.')
      self._training_summary = summary_lib.TrainingSummary(
          steps=0, global_step=self._global_step,
          stopped_by=summary_lib.STEP_LIMIT, converged=False)
      return self
    if (self._kmeans.use_mini_batch and strategy is None and
        isinstance(input_fn, inputs.DirectData)):
      # Resume at the slice where the last step stopped.
      input_fn = input_fn.resumed(self._global_step)
    # Without a checkpoint only initial centers given as an array build the
    # core, and they fix the width.
    given = not restored and self._kmeans.built
    points = self._read(input_fn, ModeKeys.TRAIN, check_width=not given)
    if points.sparse:
      self._check_sparse(points, strategy)
    if given and points.num_features != self._kmeans.num_features:
      raise errors.InitialClustersError(
          f'`initial_clusters` has shape ({self.num_clusters}, '
          f'{self._kmeans.num_features}) but the input has '
          f'{points.num_features} features per point; give initial_clusters '
          f'of shape ({self.num_clusters}, {points.num_features}).')
    if points.endless and steps is None and max_steps is None and (
        self._relative_tolerance is None) and not runner:
      raise errors.InvalidInputError(
          'The input_fn returns an endless dataset, so training would never '
          'stop; pass steps= or max_steps=, set relative_tolerance, or give '
          'a hook that requests a stop.', kind='endless')
    if points.whole and not self._kmeans.built:
      # All the data are in hand: too few points, or tensors too large for
      # memory, are refused before any is allocated.
      num_points = points.num_points
      if num_points < self.num_clusters and (
          self._kmeans.initial_clusters in (constants.RANDOM_INIT,
                                            constants.KMEANS_PARALLEL_INIT)):
        initialization.raise_too_few_points(
            self.num_clusters, self._weight_column, num_points, points)
      self._kmeans.check_sizes(points.num_features, num_points)
    self._kmeans.build(points.num_features)
    finite_by_default = steps is None and max_steps is None
    with self._input_errors(), distribute_lib.peer_failures(
        strategy, self._model_dir):
      if strategy is None:
        initialization.initialize_centers(
            self._kmeans, initialization.one_pass_to_initialize(
                self._kmeans, self._read, input_fn, points),
            self._initialize, self._initialize_from_dataset,
            self._weight_column)
        # Full-batch Lloyd over a stream: its loss reveals NaN and Inf.
        unscreened = (
            points.unscreened is not None and not points.endless and
            not self._kmeans.use_mini_batch and
            self._kmeans.num_restarts == 1 and
            self.distance_metric == constants.SQUARED_EUCLIDEAN_DISTANCE)
        step_inputs = points.step_inputs(self._kmeans.use_mini_batch,
                                         finite_by_default, unscreened)
        step_fn = (training.screened_by_loss(self._train_step, points)
                   if unscreened else self._train_step)
        # Full-batch steps over an array carry state from step to step. Its
        # sums are exact, so a train() that resumes gives the centers of one
        # that did not stop, bit for bit.
        chosen = self._chosen_algorithm(points.whole)
        if chosen.carried:
          step_fn = self._carried_steps(
              chosen.algorithm.name,
              *chosen.algorithm.make_step(kmeans_lib.KMeans))
      else:
        trainer = distribute_lib.Trainer(
            strategy, self._kmeans, self._compile,
            self._dataset_fn(input_fn, ModeKeys.TRAIN, points.num_features))
        self._global_step = trainer.initialize(self._global_step)
        step_inputs, step_fn = trainer.steps(
            points, finite_by_default, self._chosen_algorithm(False))
      last_step = (self._global_step + steps if steps is not None else
                   max_steps)
      loop = training.TrainingLoop(
          self._kmeans, self._config, self._relative_tolerance,
          self._weight_column, self._global_step,
          save=lambda step: self._dir.save(self._kmeans, step),
          keep_best_restart=self._keep_best_restart,
          summary_writer=self._dir.summary_writer,
          chief=distribute_lib.is_chief(self._core_strategy))
      # Several steps per call where the steps carry their state over the
      # same data, again and again (see `training.TrainingLoop`).
      steps_fn = (step_fn.run if isinstance(step_fn, training.CarriedSteps)
                  and not finite_by_default and not self._run_eagerly
                  else None)
      self._training_summary = loop.run(
          runner, list(saving_listeners or ()), last_step, step_inputs,
          step_fn, steps_fn)
      self._global_step = self._training_summary.global_step
    return self

  def _check_sparse(self, points, strategy):
    """Raises `errors.SparseInputError` (before anything is written) for
    sparse points in a training mode that does not take them yet."""
    algorithms.check_sparse(self._algorithm, self._kmeans.use_mini_batch)
    if strategy is not None:
      raise errors.SparseInputError(
          'Sparse points are not trained under a tf.distribute strategy '
          'yet; train without `train_distribute` in the RunConfig.',
          'config')

  def _chosen_algorithm(self, in_memory):
    """The variant this train() runs (`algorithms.choose`, the one place
    that chooses), logging why when it is not the one asked for."""
    chosen = algorithms.choose(self._algorithm, self._kmeans.use_mini_batch,
                               in_memory, self._kmeans.num_restarts)
    if chosen.warning:
      logging.warning(chosen.warning)
    return chosen

  def _dataset_fn(self, input_fn, mode, num_features):
    """The per-pipeline dataset function of a distributed run."""
    sharded_by_input_fn = inputs.takes_argument(input_fn, 'input_context')

    def dataset_fn(input_context):
      raw = inputs.call_input_fn(input_fn, mode, self._config,
                                 input_context=input_context)
      points = inputs.read_points(raw, self._feature_columns,
                                  self._kmeans.dtype, num_features)
      return distribute_lib.shard_points(points, input_context,
                                         sharded_by_input_fn)
    return dataset_fn

  @contextlib.contextmanager
  def _core_for(self, strategy):
    """Runs the body with a core built in `strategy`'s scope (None: none).

    A core built under another strategy is replaced by a fresh one; the
    state comes back from the checkpoint, which every train() ends with.
    """
    scope = (strategy.scope() if strategy is not None else
             contextlib.nullcontext())
    with scope:
      if strategy is not self._core_strategy:
        self._new_core()
        self._core_strategy = strategy
        self._dir.forget()
      yield

  def _keep_best_restart(self, data):
    """With num_restarts > 1, makes `clusters` the restart whose centers
    score lowest over `data` (the last step's input; one more pass, see
    `KMeans.keep_best_restart`), so that every checkpoint holds the best
    restart's centers and not the step's provisional choice."""
    if self._kmeans.num_restarts == 1:
      return
    self._shared('keep_best_restart', _keep_best_restart)(data)

  def _hook_values(self, loss, num_points, empty_clusters=0):
    """The values hooks may fetch by name after a step (see `hooks`)."""
    return hooks_lib.fetchable_values(loss, self._global_step,
                                      self._kmeans.clusters, num_points,
                                      empty_clusters)

  # ------------------------------------------------------------ evaluation
  def evaluate(
      self,
      input_fn: ke_typing.InputFnOrData,
      steps: Optional[int] = None,
      hooks: ke_typing.Hooks = None,
      checkpoint_path: Optional[ke_typing.PathLike] = None,
      name: Optional[str] = None,
      *,
      batch_size: Optional[int] = None,
  ) -> dict[str, Any]:
    """Evaluates the model on the data of `input_fn`.

    Args:
      input_fn: callable returning the data, or the data itself (an array,
        Tensor, dict of features or `tf.data.Dataset`; see `train`).
      steps: evaluate this many batches; None evaluates all (an endless
        dataset needs `steps`).
      hooks: `SessionRunHook`-like objects.
      checkpoint_path: evaluate this checkpoint instead of the latest.
      name: name of the evaluation (kept for API compatibility).
      batch_size: only for data given directly; see `train`. The figures
        over all points ('inertia', 'num_points', 'mean_squared_distance')
        do not depend on it; 'score' and 'loss' are means over batches.
        Whatever the batches, data given whole are read, and every batch
        evaluated, a chunk of rows at a time (`_read_to_infer`): memory
        beyond the input is one chunk, not a copy of the data.

    Returns:
      dict: 'score' and 'loss' (the legacy figures: the mean over evaluated
      batches of each batch's sum of distances to the nearest center),
      'global_step', and over all evaluated points 'inertia' (the total sum),
      'num_points' and 'mean_squared_distance' (inertia / num_points; the
      mean distance under cosine). With `weight_column`, every sum of
      distances is weighted (sum of w * distance), 'total_weight' is the sum
      of the weights, and 'mean_squared_distance' is inertia / total_weight
      ('num_points' still counts rows).
    """
    del name
    options.check_positive_int('steps', steps, allow_none=True)
    checkpoint_path = options.check_path('checkpoint_path', checkpoint_path,
                                         allow_none=True)
    input_fn = inputs.as_input_fn(input_fn, batch_size)
    strategy = self._config.eval_distribute
    with self._core_for(strategy):
      runner = hooks_lib.HookRunner(hooks)
      self._restore(checkpoint_path, required=True)
      points = (self._read_to_infer(input_fn, ModeKeys.EVAL)
                if strategy is None else self._read(input_fn, ModeKeys.EVAL))
      if points.endless and steps is None:
        raise errors.InvalidInputError(
            'The input_fn returns an endless dataset; pass steps= to evaluate '
            'a fixed number of batches.', kind='endless')
      if strategy is None:
        evaluations = inference.eval_batches(self._kmeans, points,
                                             self._eval_batch)
      else:
        evaluations = distribute_lib.evaluations(
            strategy, self._kmeans, self._compile,
            self._dataset_fn(input_fn, ModeKeys.EVAL, points.num_features))
      with self._input_errors(points), distribute_lib.peer_failures(
          strategy, self._model_dir):
        totals = inference.evaluation_totals(evaluations, steps, runner,
                                             self._hook_values)
    return inference.evaluation_results(totals, points, self._global_step,
                                        self._weight_column)

  def score(self, input_fn: ke_typing.InputFnOrData, *,
            batch_size: Optional[int] = None) -> float:
    """The legacy score: the sum of distances to the nearest center over the
    FIRST batch of `input_fn` only (all the data for a Tensor or array given
    without `batch_size`).

    For a figure over all the data use `evaluate(input_fn)['inertia']`.
    Unlike scikit-learn's `score`, this is positive. `input_fn` may be the
    data itself, and `batch_size` applies to it, as in `train`.
    """
    return self.evaluate(input_fn, steps=1,
                         batch_size=batch_size)[constants.SCORE]

  # ------------------------------------------------------------ prediction
  def predict(
      self,
      input_fn: ke_typing.InputFnOrData,
      predict_keys: Optional[Union[str, Sequence[str]]] = None,
      hooks: ke_typing.Hooks = None,
      checkpoint_path: Optional[ke_typing.PathLike] = None,
      yield_single_examples: bool = True,
      *,
      top_k: Optional[int] = None,
      batch_size: Optional[int] = None,
  ) -> Iterator[dict[str, Any]]:
    """Yields predictions for every point, in input order.

    The arguments are checked when `predict` is called; the model is read,
    and the input too, when the first prediction is taken.

    Example, soft assignment over the 3 nearest centers:

    ```python
    for p in kmeans.predict(points, top_k=3,
                            predict_keys=['top_k_cluster_indices',
                                          'top_k_distances']):
      weights = np.exp(-p['top_k_distances'])  # (3,)
      centers = p['top_k_cluster_indices']     # (3,), nearest first
    ```

    Args:
      input_fn: callable returning the data, or the data itself (an array,
        Tensor, dict of features or `tf.data.Dataset`; see `train`);
        prediction ends when the data end.
      predict_keys: 'all_distances', 'cluster_index', 'top_k_cluster_indices',
        'top_k_distances', or a list of them (default: 'all_distances' and
        'cluster_index', and with `top_k` the two top_k keys too). The top_k
        keys need `top_k`, and `top_k` needs one of them.
      hooks: `SessionRunHook`-like objects.
      checkpoint_path: predict with this checkpoint instead of the latest.
      yield_single_examples: yield one dict per point (True) or per batch.
      top_k: None, or the number of nearest centers to give for each point,
        1 <= top_k <= num_clusters. Without 'all_distances' among the keys
        they are computed from chunks of at most 2**20 distances.
      batch_size: only for data given directly; see `train`. Without it,
        data given whole are one batch all the same; whatever the batches,
        each is computed in chunks of rows bounded by
        `INFERENCE_CHUNK_BYTES` (see `_predict`), and with
        `yield_single_examples` only a chunk's predictions are held, so a
        large num_clusters needs no batch_size.

    Yields:
      dicts: 'all_distances' (k,) float (squared Euclidean, or 1 - cos),
      'cluster_index' int64; with `top_k`, 'top_k_cluster_indices' int64
      (top_k,) and 'top_k_distances' (top_k,) float in the same metric as
      'all_distances', sorted nearest first, equal distances to the lower
      index ('top_k_cluster_indices'[0] is 'cluster_index').

    Raises:
      ValueError: `top_k` outside [1, num_clusters], or `predict_keys` that
        name top_k keys without `top_k` (or none of them with it).
    """
    top_k = inference.check_top_k(top_k, self.num_clusters)
    keys = inference.predict_keys(predict_keys, top_k)
    checkpoint_path = options.check_path('checkpoint_path', checkpoint_path,
                                         allow_none=True)
    yield_single_examples = options.check_bool('yield_single_examples',
                                               yield_single_examples)
    input_fn = inputs.as_input_fn(input_fn, batch_size)
    return self._predict(input_fn, keys, top_k, hooks, checkpoint_path,
                         'points' if yield_single_examples else 'batches')

  def _predict(self, input_fn, keys, top_k, hooks, checkpoint_path, yields):
    """The predictions of `predict`, computed a chunk of rows at a time.

    A batch is the data given whole (one batch), a `batch_size` slice of
    data given directly, or a batch of a dataset; each is computed in
    chunks of `inference.inference_rows` rows, so that memory beyond the
    input and the output handed over is bounded by a chunk, whatever n and
    k. `yields` is 'points', 'batches' or 'chunks' (see
    `inference.predictions`).

    The data given whole are read as the generator advances, a chunk at a
    time: a NaN or Inf, or an overflow, raises when its chunk is reached
    (with 'points' and 'chunks', after the predictions before it), and
    whatever the caller changes in the data before a chunk is read is what
    that chunk predicts from.
    """
    # Prediction runs in this process, on a core of its own.
    with self._core_for(None):
      runner = hooks_lib.HookRunner(hooks)
      self._restore(checkpoint_path, required=True)
      points = self._read_to_infer(input_fn, ModeKeys.PREDICT)
      rows = inference.inference_rows(self._kmeans, points.num_features,
                                      keys, top_k)
      with self._input_errors(points):
        yield from inference.predictions(points, rows, keys, top_k, runner,
                                         self._predict_batch,
                                         self._hook_values, yields)

  def predict_cluster_index(
      self, input_fn: ke_typing.InputFnOrData, *,
      batch_size: Optional[int] = None) -> Iterator[np.int64]:
    """Yields the index of the nearest center for every point, in order.

    `input_fn` may be the data itself, and `batch_size` applies to it, as in
    `train`. The indices are computed a chunk of rows at a time as the
    generator advances (see `_predict`): memory holds one chunk's, not n.
    """
    # Per chunk, then per point: no dict per point (over twice as fast),
    # and no more than a chunk's indices held.
    chunks = self._predict(inputs.as_input_fn(input_fn, batch_size),
                           (constants.CLUSTER_INDEX,), None, None, None,
                           'chunks')
    return itertools.chain.from_iterable(
        chunk[constants.CLUSTER_INDEX] for chunk in chunks)

  def transform(
      self, input_fn: ke_typing.InputFnOrData, *,
      batch_size: Optional[int] = None) -> Iterator[np.ndarray]:
    """Yields each point's distances to all centers, shape (k,), in order.

    Under the squared Euclidean metric these are Euclidean distances (the
    square root, as the legacy estimator and scikit-learn's `transform`
    return); under cosine, 1 - cos. `input_fn` may be the data itself, and
    `batch_size` applies to it, as in `train`. The distances are computed a
    chunk of rows at a time as the generator advances (see `_predict`):
    memory holds one chunk's, not n x k.
    """
    chunks = self._predict(inputs.as_input_fn(input_fn, batch_size),
                           (constants.ALL_DISTANCES,), None, None, None,
                           'chunks')
    return (row for chunk in chunks for row in np.asarray(
        self._transformed(chunk[constants.ALL_DISTANCES])))

  # ---------------------------------------------------------------- export
  def export_saved_model(
      self,
      export_dir_base: ke_typing.PathLike,
      serving_input_receiver_fn: Optional[
          Callable[[], export_lib.ServingInputReceiver]] = None,
      assets_extra: Optional[
          Mapping[ke_typing.PathLike, ke_typing.PathLike]] = None,
      as_text: bool = False,
      checkpoint_path: Optional[ke_typing.PathLike] = None,
      *,
      top_k: Optional[int] = None,
      sparse: bool = False,
  ) -> bytes:
    """Exports the model as a SavedModel for TensorFlow Serving and TFLite.

    Writes a new directory `export_dir_base/<timestamp>` (never overwriting
    an existing export; a failed export leaves nothing behind). The
    SavedModel holds the centers as a variable, the metadata as variables
    (`distance_metric`, `num_clusters`, `num_features`, `global_step`) and
    five signatures, each returning one Tensor under the key 'output':
    'serving_default' and 'cluster_index' (int64 (n,)), 'all_distances'
    ((n, k), as `predict` gives them), 'transform' ((n, k), as `transform`
    gives them) and 'cluster_centers' (no input; (k, d)). With `top_k`, a
    sixth signature 'top_k' returns two tensors, 'top_k_cluster_indices'
    (int64 (n, top_k)) and 'top_k_distances' ((n, top_k)), as
    `predict(top_k=top_k)` gives them, computed in bounded-memory chunks;
    the SavedModel then has a `top_k` metadata variable too. Served inputs
    with NaN or Inf, or of the wrong width, fail with an
    InvalidArgumentError.

    With `sparse=True`, the point signatures but 'serving_default' also
    have sparse twins, 'sparse_cluster_index', 'sparse_all_distances',
    'sparse_transform' (and 'sparse_top_k'), returning what their dense
    twins return for the same values, from a SparseTensor of points (n, d)
    given as three inputs: int64 'indices' (nnz, 2), float32 'values'
    (nnz,) and int64 'dense_shape' (2,); entries in any order, none stored
    twice. Whatever the `serving_input_receiver_fn`, the twins take the
    points as the model computes with them (for a model of dict features,
    the features concatenated in the order the model combines them, as the
    default 'input' takes them). They are written only when asked: the set of signatures is what
    clients list, and the TFLite converter refuses the sparse ones (see
    `io.export`). A `serving_input_receiver_fn` built by
    `build_raw_serving_input_receiver_fn` from a `tf.SparseTensorSpec`
    makes every point signature take those three inputs instead.

    Example:

    ```python
    path = kmeans.export_saved_model('/tmp/exports')
    served = tf.saved_model.load(path)
    served.signatures['serving_default'](input=points)['output']
    ```

    Args:
      export_dir_base: directory to create the timestamped export in.
      serving_input_receiver_fn: None (one float32 input, 'input', of shape
        (None, d)), or a callable returning a `ServingInputReceiver`, such as
        `build_raw_serving_input_receiver_fn(...)` (one input per feature) or
        `build_parsing_serving_input_receiver_fn(...)` (serialized
        `tf.Example`s under 'examples').
      assets_extra: dict of destination path inside `assets.extra/` ->
        source file to copy there.
      as_text: write saved_model.pbtxt instead of saved_model.pb.
      checkpoint_path: export this checkpoint instead of the latest.
      top_k: None, or 1 <= top_k <= num_clusters: also serve the 'top_k'
        signature with this many nearest centers per point.
      sparse: also serve the sparse twins of the point signatures.

    Returns:
      The export directory as bytes, as the legacy method returned it.
    """
    export_dir_base = options.check_path('export_dir_base', export_dir_base)
    assets_extra = export_lib.check_assets_extra(assets_extra)
    as_text = options.check_bool('as_text', as_text)
    checkpoint_path = options.check_path('checkpoint_path', checkpoint_path,
                                         allow_none=True)
    top_k = inference.check_top_k(top_k, self.num_clusters)
    sparse = options.check_bool('sparse', sparse)
    with self._core_for(None):
      return self._export(export_dir_base, serving_input_receiver_fn,
                          assets_extra, as_text, checkpoint_path, top_k,
                          sparse)

  def _export(self, export_dir_base, serving_input_receiver_fn, assets_extra,
              as_text, checkpoint_path, top_k, sparse):
    self._restore(checkpoint_path, required=True)
    # The exported graphs get a core of static shapes (k known: TFLite
    # converts their chunk loops only with static shapes).
    core = kmeans_lib.KMeans.from_config(self._kmeans_config, name='kmeans')
    core.restore({name: variable.numpy() for name, variable in
                  self._kmeans.checkpoint_variables().items()})
    num_features = core.num_features
    receiver = export_lib.receiver_from_fn(serving_input_receiver_fn,
                                           num_features)

    def outputs(features, signature_name):
      points = export_lib.served_points(features, self._feature_columns,
                                        self._weight_column,
                                        self._kmeans.dtype, num_features)
      if signature_name == export_lib.TOP_K_SIGNATURE:
        keys = constants.TOP_K_PREDICT_KEYS
      elif signature_name in (export_lib.SERVING_DEFAULT,
                              export_lib.CLUSTER_INDEX_SIGNATURE):
        keys = (constants.CLUSTER_INDEX,)
      else:
        keys = (constants.ALL_DISTANCES,)
      spec = model_fn_lib.spec(core, points, ModeKeys.PREDICT,
                   {'predict_keys': keys, 'top_k': (
                       top_k if signature_name ==
                       export_lib.TOP_K_SIGNATURE else None)})
      return spec.export_outputs[signature_name]

    model = export_lib.ServingModel(
        core.clusters, self.distance_metric, self._global_step, receiver,
        outputs, top_k,
        export_lib.sparse_receiver(num_features) if sparse else None)
    export_dir = export_lib.write_saved_model(export_dir_base, model,
                                              assets_extra, as_text)
    return export_dir.encode()

  def export_savedmodel(
      self,
      export_dir_base: ke_typing.PathLike,
      serving_input_receiver_fn: Optional[
          Callable[[], export_lib.ServingInputReceiver]] = None,
      assets_extra: Optional[
          Mapping[ke_typing.PathLike, ke_typing.PathLike]] = None,
      as_text: bool = False,
      checkpoint_path: Optional[ke_typing.PathLike] = None,
      strip_default_attrs: Optional[bool] = None,
      *,
      top_k: Optional[int] = None,
      sparse: bool = False,
  ) -> bytes:
    """The legacy name of `export_saved_model` (`strip_default_attrs` unused)."""
    del strip_default_attrs
    return self.export_saved_model(export_dir_base, serving_input_receiver_fn,
                                   assets_extra, as_text, checkpoint_path,
                                   top_k=top_k, sparse=sparse)
