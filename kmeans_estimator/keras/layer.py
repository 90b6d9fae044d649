"""`KMeansLayer`: k-means as a Keras 3 preprocessing layer.

Like Keras's `Normalization` and `Discretization`, the layer learns its
state from data with `adapt` (here the centers, trained by the core's
full-batch steps, see `fitting`), keeps it in weights (so `model.save`,
`load_model` and `model.export` carry it), and maps inputs with it when
called: to the nearest center's index, the distances to every center, a
one-hot or soft assignment, or the indices of the `top_k` nearest.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from kmeans_estimator import config as options
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.io import checkpoints
from kmeans_estimator.keras import backend
from kmeans_estimator.keras import fitting
from kmeans_estimator.keras import losses
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import numerics
from kmeans_estimator.typing import ArrayLike, InitialClusters, InputData
from kmeans_estimator.typing import PathLike

# `output_mode`s.
CLUSTER_INDEX = constants.CLUSTER_INDEX
DISTANCES = 'distances'
ONE_HOT = 'one_hot'
SOFT = 'soft'
TOP_K = 'top_k'
OUTPUT_MODES = (CLUSTER_INDEX, DISTANCES, ONE_HOT, SOFT, TOP_K)

_invalid = errors.InvalidArgumentError.from_template


def _check_output_mode(output_mode: str, top_k: Optional[int],
                       num_clusters: int) -> Optional[int]:
  if output_mode not in OUTPUT_MODES:
    raise _invalid(
        f'`{{output_mode}}` must be one of {list(OUTPUT_MODES)}. '
        'Received: {output_mode=}', 'output_mode', output_mode)
  if output_mode != TOP_K:
    if top_k is not None:
      raise _invalid(
          "`{top_k}` goes with output_mode='top_k'. Received: {top_k=} with "
          '{output_mode=}', 'top_k', top_k, output_mode=output_mode)
    return None
  if top_k is None:
    raise _invalid(
        "output_mode='top_k' needs `{top_k}`, the number of nearest centers "
        'to give (1 to num_clusters). Received: {top_k=}', 'top_k', top_k)
  top_k = options.check_positive_int('top_k', top_k)
  if top_k > num_clusters:
    raise _invalid(
        f'`{{top_k}}` must be at most num_clusters={num_clusters}. '
        'Received: {top_k=}', 'top_k', top_k)
  return top_k


def _check_non_negative(name: str, value: float) -> float:
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or
      not 0 <= value < float('inf')):
    raise _invalid('`{%s}` must be a finite number >= 0. Received: {%s=}' %
                   (name, name), name, value)
  return float(value)


@keras.saving.register_keras_serializable(package='kmeans_estimator')
class KMeansLayer(keras.layers.Layer):
  """Maps points to their clusters; `adapt` learns the centers.

  The layer holds the centers in a weight named `clusters` of shape (k, d)
  (the estimator's checkpoint name), non-trainable unless `trainable=True`.
  Calling it on float inputs of shape (..., d) gives, by `output_mode`:

  - 'cluster_index': int64 (...,), the nearest center (ties to the lower
    index, as the estimator's `predict_cluster_index`);
  - 'distances': float (..., k), the distance to every center in the
    metric: squared Euclidean, or 1 - cos under 'cosine' (the estimator's
    'all_distances', not `transform`'s Euclidean distances);
  - 'one_hot': float (..., k), 1 at the nearest center, 0 elsewhere;
  - 'soft': float (..., k), softmax(-distances / temperature): a soft
    assignment that sums to 1 (and tends to one_hot as the temperature
    goes to 0);
  - 'top_k': int64 (..., top_k), the `top_k` nearest centers, nearest
    first (the estimator's 'top_k_cluster_indices').

  Under the cosine metric the inputs are L2-normalised first (a zero vector
  stays zero, at distance 1 from every center). Inputs of other numeric
  dtypes are cast to the centers' dtype (the layer's variable dtype,
  float32 or float64); float outputs have that dtype. Under a mixed
  precision policy ('mixed_float16') the layer still computes in its
  variable dtype, float32: half precision cannot hold squared distances
  and their sums (see `KMeansConfig.dtype`). The nearest centers
  are found in chunks of at most `chunk_elements` distances ('distances',
  'soft' and the loss hold (n, k)).

  Centers come from `adapt(data)` (a full-batch k-means run with the
  estimator's initialisers and algorithms, started afresh by each call),
  from `initial_clusters` given as an array (`from_centers`), from a
  model_dir (`from_model_dir`), or from saved weights; calling the layer
  before raises `errors.NotAdaptedError`.

  With `trainable=True` the centers are trainable weights and each call
  adds the vector-quantisation loss (`add_loss`), so that any Keras
  optimizer learns them during `fit` (k-means by gradient descent, Bottou
  and Bengio 1995):

      loss = loss_weight * (1/n) sum_i [min_k d(sg(x_i), w_k)
                                        + commitment_cost d(x_i, sg(w_k(i)))]

  with `sg` the stop-gradient and k(i) the nearest center: the first term
  is `kmeans_loss` per point, which moves only the centers (its gradient is
  the Bottou-Bengio one); the second, VQ-VAE's commitment term (0 by
  default), pulls the inputs (an encoder's outputs) towards their centers.
  The mean over the batch, not the sum, keeps the loss's scale independent
  of the batch size.

  Args:
    num_clusters: positive int k.
    output_mode: 'cluster_index' (default), 'distances', 'one_hot', 'soft'
      or 'top_k'.
    top_k: with output_mode='top_k', how many nearest centers (1 to k).
    temperature: with output_mode='soft', the softmax's temperature > 0,
      in units of the distance.
    distance_metric: 'squared_euclidean' or 'cosine'.
    initial_clusters: how `adapt` starts: 'random', 'kmeans_plus_plus',
      'kmc2', 'kmeans_parallel', a callable f(points, k), or an array
      (k, d) of centers (which the layer also holds before any `adapt`).
    algorithm: the full-batch variant of `adapt` ('lloyd', 'hamerly',
      'yinyang'; see `kmeans_estimator.algorithms`).
    num_restarts: R runs from different initial centers, the best kept.
    empty_cluster: 'keep' or 'farthest_point' (see `KMeansConfig`).
    max_steps: the most full-batch steps of one `adapt`.
    relative_tolerance: stop `adapt` after the step whose loss changed by
      less than this, relative to the loss before (the estimator's rule);
      None runs max_steps. The default 1e-6 stops at Lloyd's fixed point
      (where the loss no longer changes) or just before it.
    seed: int driving the initialisers' randomness.
    kmeans_plus_plus_num_retries: extra candidates per k-means++ center
      (negative: 2 + log k).
    kmc2_chain_length: Markov chain length per center of 'kmc2'.
    kmeans_parallel_rounds: sampling rounds of 'kmeans_parallel'.
    kmeans_parallel_oversampling: candidates per round of
      'kmeans_parallel', as a multiple of num_clusters.
    chunk_elements: the most point-to-center distances held at once.
    commitment_cost: with trainable=True, the weight >= 0 of the
      commitment term of the loss.
    loss_weight: with trainable=True, the factor >= 0 of the whole loss.
    trainable: whether the centers are trainable weights (and the loss is
      added). False by default, as for Keras's preprocessing layers.
    **kwargs: the `keras.layers.Layer` arguments (`name`, `dtype`).

  Raises:
    errors.InvalidArgumentError, errors.InvalidArgumentTypeError: a bad
      argument (named in `argument` and in the message), before anything
      is built.
    errors.KerasBackendError: Keras runs another backend than TensorFlow.

  Example:

  ```python
  layer = KMeansLayer(num_clusters=3, output_mode='one_hot')
  layer.adapt(points)                       # array (n, d)
  inputs = keras.Input(shape=(points.shape[1],))
  model = keras.Model(inputs, layer(inputs))
  ```
  """

  def __init__(self,
               num_clusters: int,
               output_mode: str = CLUSTER_INDEX,
               top_k: Optional[int] = None,
               temperature: float = 1.0,
               distance_metric: str = constants.SQUARED_EUCLIDEAN_DISTANCE,
               initial_clusters: InitialClusters = (
                   constants.KMEANS_PLUS_PLUS_INIT),
               algorithm: str = constants.LLOYD,
               num_restarts: int = 1,
               empty_cluster: str = constants.KEEP_EMPTY,
               max_steps: int = 300,
               relative_tolerance: Optional[float] = 1e-6,
               seed: int = 0,
               kmeans_plus_plus_num_retries: int = 2,
               kmc2_chain_length: int = 200,
               kmeans_parallel_rounds: int = 5,
               kmeans_parallel_oversampling: float = 0.5,
               chunk_elements: int = constants.DEFAULT_CHUNK_ELEMENTS,
               commitment_cost: float = 0.0,
               loss_weight: float = 1.0,
               trainable: bool = False,
               **kwargs: Any) -> None:
    backend.check_backend('KMeansLayer')
    options.check_bool('trainable', trainable)
    seed = options.check_int('seed', seed)
    # Inputs are cast to the centers' dtype in `call`, never to a mixed
    # policy's float16 compute dtype (see the class docstring).
    kwargs.setdefault('autocast', False)
    super().__init__(trainable=trainable, **kwargs)
    dtype = self.variable_dtype
    self._config = options.KMeansConfig(
        num_clusters=num_clusters,
        initial_clusters=initial_clusters,
        distance_metric=distance_metric,
        use_mini_batch=False,
        random_seed=seed,
        kmeans_plus_plus_num_retries=kmeans_plus_plus_num_retries,
        kmc2_chain_length=kmc2_chain_length,
        dtype=dtype,
        chunk_elements=chunk_elements,
        kmeans_parallel_rounds=kmeans_parallel_rounds,
        kmeans_parallel_oversampling=kmeans_parallel_oversampling,
        empty_cluster=empty_cluster,
        num_restarts=num_restarts,
        algorithm=algorithm)
    self.num_clusters = self._config.num_clusters
    self.top_k = _check_output_mode(output_mode, top_k, self.num_clusters)
    self.output_mode = output_mode
    self.temperature = options.check_positive_number('temperature',
                                                     temperature)
    self.max_steps = options.check_positive_int(
        'max_steps', max_steps, maximum=options.INT32_MAX)
    self.relative_tolerance = options.check_relative_tolerance(
        relative_tolerance)
    self.commitment_cost = _check_non_negative('commitment_cost',
                                               commitment_cost)
    self.loss_weight = _check_non_negative('loss_weight', loss_weight)
    # The centers' weight (a keras.Variable (k, d)), made by `build`.
    self.clusters: Any = None
    self._adapted = False
    self._adapt_summary: Optional[fitting.FitSummary] = None

  # ------------------------------------------------------------ options
  @property
  def config(self) -> options.KMeansConfig:
    """The k-means options, a frozen `kmeans_estimator.config.KMeansConfig`
    (checked when the layer was made)."""
    return self._config

  @property
  def distance_metric(self) -> str:
    """'squared_euclidean' or 'cosine'."""
    return self._config.distance_metric

  @property
  def num_features(self) -> Optional[int]:
    """d, once the layer is built; else None."""
    return None if self.clusters is None else int(self.clusters.shape[1])

  @property
  def is_adapted(self) -> bool:
    """Whether the layer has centers (see the class docstring)."""
    return self._adapted

  @property
  def adapt_summary(self) -> Optional[fitting.FitSummary]:
    """What the last `adapt` did (`fitting.FitSummary`: steps, loss,
    converged, algorithm), or None."""
    return self._adapt_summary

  @property
  def cluster_centers(self) -> np.ndarray:
    """The centers, float array of shape (k, d)."""
    self._check_adapted()
    return self.clusters.numpy()

  # --------------------------------------------------------------- build
  def build(self, input_shape: Any) -> None:
    """Creates the `clusters` weight (k, d) for inputs of shape (..., d)."""
    width = input_shape[-1] if input_shape else None
    if width is None:
      raise errors.InvalidArgumentError(
          'KMeansLayer needs inputs of shape (..., d) with a known last '
          f'dimension d. Received: input_shape={tuple(input_shape or ())}',
          'input_shape')
    self._check_width(tuple(input_shape))
    given = self._config.given_centers
    self.clusters = self.add_weight(
        name=constants.CLUSTER_CENTERS_VAR_NAME,
        shape=(self.num_clusters, int(width)),
        initializer='zeros',
        trainable=True,  # Non-trainable while the layer is not trainable.
        dtype=self.variable_dtype,
        autocast=False)
    if given is not None:
      self.clusters.assign(given.astype(self.variable_dtype))
      self._adapted = True
    self.built = True

  def load_own_variables(self, store: Any) -> None:
    super().load_own_variables(store)
    self._adapted = True

  def set_weights(self, weights: Any) -> None:
    super().set_weights(weights)
    self._adapted = True

  # --------------------------------------------------------------- adapt
  def adapt(self, data: InputData, batch_size: Optional[int] = None,
            steps: Optional[int] = None) -> None:
    """Trains the centers on `data` (full-batch k-means, from scratch).

    Each call starts afresh from `initial_clusters` (as Keras's `adapt`
    recomputes a layer's state) and runs full-batch steps of `algorithm`
    until `relative_tolerance` or `max_steps`; over data in memory the
    steps carry their state and run in one compiled loop, over a dataset
    each step sums the statistics of every batch (exactly the step of the
    concatenated data). A variant that needs the data in memory
    ('hamerly', 'yinyang') runs 'lloyd' over a dataset, with a warning.

    Args:
      data: a numpy array or Tensor of shape (n, d), a dict of features, or
        a `tf.data.Dataset` of batches (n_b, d) (or of `(x, y)` pairs,
        whose `y` is ignored; or of single rows, with `batch_size`).
      batch_size: None (an array is one batch, in memory), or the rows per
        batch: an array is then read as a stream of batches (memory
        bounded by a batch) and a dataset of single rows is batched.
      steps: None, or the most batches of `data` to read (the first ones).

    Raises:
      errors.InvalidInputError: no points, fewer than num_clusters, NaN or
        Inf, or another width than the layer's (`argument` 'data', `kind`
        saying which); the centers are left as they were.
      errors.InvalidArgumentError, errors.InvalidArgumentTypeError: a bad
        `batch_size` or `steps`, or `data` of an unsupported type (a
        string, an input_fn).
    """
    steps = options.check_positive_int('steps', steps, allow_none=True,
                                       maximum=options.INT64_MAX)
    with errors.translated():
      points = fitting.read(data, batch_size, steps, self._config.dtype,
                            self.num_features)
      if not self.built:
        self.build((None, points.num_features))
      centers, summary = fitting.fit(self._config, points, self.max_steps,
                                     self.relative_tolerance)
    self.clusters.assign(centers)
    self._adapted = True
    self._adapt_summary = summary

  def update_state(self, data: Any) -> None:
    raise NotImplementedError(
        'KMeansLayer learns its centers with adapt(data) as a whole (all '
        'the data, one full-batch run), not batch by batch.')

  # ---------------------------------------------------------------- call
  def _check_adapted(self) -> None:
    if not self._adapted:
      raise errors.NotAdaptedError(
          f'The KMeansLayer {self.name!r} has no centers yet: call '
          'adapt(data) first, or build it with KMeansLayer.from_centers(...) '
          'or KMeansLayer.from_model_dir(...), or load saved weights.')

  def _check_width(self, shape: tuple[Any, ...]) -> None:
    """Refuses inputs whose last dimension is not the centers' d (that of
    the weight, or before it is built, of centers given as an array)."""
    width = shape[-1] if len(shape) else None
    expected = self.num_features
    if expected is None and self._config.given_centers is not None:
      expected = int(self._config.given_centers.shape[1])
    if expected is not None and width is not None and width != expected:
      raise errors.InvalidInputError(
          f'The KMeansLayer {self.name!r} has centers of {expected} '
          f'features, but its inputs have shape {tuple(shape)}; give inputs '
          f'of shape (..., {expected}).', kind='width', argument='inputs')

  def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
    # Checked here, before Keras's `__call__`, which re-creates an error
    # raised inside `call` from its message alone (losing its fields).
    shape = getattr(inputs, 'shape', None)
    shape = np.shape(inputs) if shape is None else shape
    if not (isinstance(shape, tf.TensorShape) and shape.rank is None):
      self._check_width(tuple(shape))
    return super().__call__(inputs, *args, **kwargs)

  def call(self, inputs: Any) -> tf.Tensor:
    self._check_adapted()
    centers = tf.convert_to_tensor(self.clusters)
    points = tf.cast(tf.convert_to_tensor(inputs), centers.dtype)
    leading = tf.shape(points)[:-1]
    width = centers.shape[1]
    flat = tf.reshape(points, [-1, width])
    if self.distance_metric == constants.COSINE_DISTANCE:
      flat = numerics.safe_l2_normalize(flat)
    outputs = self._outputs(flat, centers)
    if self.trainable and (self.loss_weight > 0):
      self.add_loss(self._vq_loss(flat, centers))
    tail = tf.shape(outputs)[1:]
    return tf.reshape(outputs, tf.concat([leading, tail], 0))

  def _outputs(self, flat: tf.Tensor, centers: tf.Tensor) -> tf.Tensor:
    """The output of `flat` (n, d), prepared, in `output_mode`: (n,) or
    (n, m)."""
    metric = self.distance_metric
    chunk = self._config.chunk_elements
    if self.output_mode in (CLUSTER_INDEX, ONE_HOT):
      index, _ = distances_lib.nearest_centers(flat, centers, metric, chunk)
      if self.output_mode == CLUSTER_INDEX:
        return index
      return tf.one_hot(index, self.num_clusters, dtype=centers.dtype)
    if self.output_mode == TOP_K:
      return distances_lib.top_k_nearest(flat, centers, metric, self.top_k,
                                         chunk)[0]
    distances = distances_lib.pairwise_distances(flat, centers, metric)
    if self.output_mode == DISTANCES:
      return distances
    return tf.nn.softmax(-distances / tf.cast(self.temperature,
                                              distances.dtype), axis=-1)

  def _vq_loss(self, flat: tf.Tensor, centers: tf.Tensor) -> tf.Tensor:
    """The loss that `trainable=True` adds (see the class docstring)."""
    n = tf.cast(tf.maximum(tf.shape(flat)[0], 1), centers.dtype)
    loss = losses.kmeans_loss(tf.stop_gradient(flat), centers,
                              distance_metric=self.distance_metric,
                              chunk_elements=self._config.chunk_elements)
    if self.commitment_cost > 0:
      loss += self.commitment_cost * losses.kmeans_loss(
          flat, tf.stop_gradient(centers),
          distance_metric=self.distance_metric,
          chunk_elements=self._config.chunk_elements)
    return self.loss_weight * loss / n

  def _output_shape(self, input_shape: Any) -> tuple[Any, ...]:
    leading = tuple(input_shape[:-1])
    if self.output_mode == CLUSTER_INDEX:
      return leading
    if self.output_mode == TOP_K:
      return leading + (self.top_k,)
    return leading + (self.num_clusters,)

  def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
    return self._output_shape(input_shape)

  def compute_output_spec(self, inputs: Any) -> Any:
    dtype = ('int64' if self.output_mode in (CLUSTER_INDEX, TOP_K) else
             self.variable_dtype)
    return keras.KerasTensor(self._output_shape(inputs.shape), dtype=dtype)

  # --------------------------------------------------------------- config
  def get_config(self) -> dict[str, Any]:
    """The constructor's arguments (centers given as an array as a list).

    Raises:
      errors.InvalidArgumentError: a callable `initial_clusters`, which a
        saved model cannot hold: rebuild the layer with
        `KMeansLayer.from_centers(layer.cluster_centers, ...)` to save it.
    """
    initial = self._config.initial_clusters
    if self._config.given_centers is not None:
      initial = self._config.given_centers.tolist()
    elif callable(initial):
      raise errors.InvalidArgumentError(
          'A KMeansLayer with a callable `initial_clusters` cannot be saved '
          '(a .keras file holds no code); save KMeansLayer.from_centers('
          'layer.cluster_centers, ...) instead.', 'initial_clusters')
    config = super().get_config()
    config.update(
        num_clusters=self.num_clusters,
        output_mode=self.output_mode,
        top_k=self.top_k,
        temperature=self.temperature,
        distance_metric=self.distance_metric,
        initial_clusters=initial,
        algorithm=self._config.algorithm,
        num_restarts=self._config.num_restarts,
        empty_cluster=self._config.empty_cluster,
        max_steps=self.max_steps,
        relative_tolerance=self.relative_tolerance,
        seed=self._config.random_seed,
        kmeans_plus_plus_num_retries=(
            self._config.kmeans_plus_plus_num_retries),
        kmc2_chain_length=self._config.kmc2_chain_length,
        kmeans_parallel_rounds=self._config.kmeans_parallel_rounds,
        kmeans_parallel_oversampling=(
            self._config.kmeans_parallel_oversampling),
        chunk_elements=self._config.chunk_elements,
        commitment_cost=self.commitment_cost,
        loss_weight=self.loss_weight)
    return config

  # --------------------------------------------------------- constructors
  @classmethod
  def from_centers(cls, centers: ArrayLike, **kwargs: Any) -> KMeansLayer:
    """A layer holding `centers`, built (no `adapt` needed).

    The centers are also its `initial_clusters`, so a later `adapt`
    refines them (and the saved config holds them).

    Args:
      centers: float array (k, d), finite.
      **kwargs: the other constructor arguments (not num_clusters, which
        is k, nor initial_clusters).

    Raises:
      errors.InitialClustersError: centers not of shape (k, d), or with
        NaN or Inf.
    """
    for name in ('num_clusters', 'initial_clusters'):
      if name in kwargs:
        raise errors.InvalidArgumentError(
            f'from_centers takes `{name}` from `centers`; drop it. '
            f'Received: {name}={kwargs[name]!r}', name, kwargs[name])
    array = np.asarray(centers)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
      raise errors.InitialClustersError(
          '`centers` must have shape (k, d) with k, d >= 1. Received: '
          f'centers with shape {array.shape}', 'centers')
    layer = cls(num_clusters=array.shape[0], initial_clusters=array,
                **kwargs)
    layer.build((None, array.shape[1]))
    return layer

  @classmethod
  def from_model_dir(cls, model_dir: PathLike,
                     checkpoint_path: Optional[PathLike] = None,
                     **kwargs: Any) -> KMeansLayer:
    """A layer holding the centers of an estimator's `model_dir`.

    Reads the checkpoint variable `clusters` (k, d) of the newest
    checkpoint (or of `checkpoint_path`), written by this library's
    `KMeansClustering` or by TensorFlow's legacy KMeans estimator. The
    metric the centers were trained under is taken from the checkpoint
    when it records one (this library's do); legacy checkpoints do not,
    so pass `distance_metric='cosine'` for centers trained under it (the
    default is 'squared_euclidean').

    Args:
      model_dir: the estimator's model directory.
      checkpoint_path: optional checkpoint prefix within it.
      **kwargs: the other constructor arguments (not num_clusters nor
        initial_clusters, which the centers give).

    Raises:
      errors.InvalidArgumentError: `distance_metric` other than the one the
        checkpoint records; a checkpoint whose centers were never
        initialised.
      ValueError: no checkpoint, or a damaged one (`io.checkpoints`).
    """
    path = options.check_path('model_dir', model_dir)
    if checkpoint_path is not None:
      path = options.check_path('checkpoint_path', checkpoint_path)
    values = checkpoints.read_checkpoint(path)
    if constants.CLUSTER_CENTERS_VAR_NAME not in values:
      raise errors.InvalidArgumentError(
          f"The checkpoint of {path!r} holds no variable 'clusters'; give "
          "the model_dir of a KMeans estimator. Received: "
          f'model_dir={model_dir!r}', 'model_dir', model_dir)
    if not bool(np.asarray(values.get(constants.INITIALIZED_VAR_NAME,
                                      True))):
      raise errors.InvalidArgumentError(
          f'The checkpoint of {path!r} was written before its centers were '
          'initialised; train the estimator further, or give another '
          f'model_dir. Received: model_dir={model_dir!r}', 'model_dir',
          model_dir)
    saved_metric = values.get(constants.DISTANCE_METRIC_VAR_NAME)
    if saved_metric is not None:
      saved_metric = saved_metric.item().decode()
      given = kwargs.setdefault('distance_metric', saved_metric)
      if given != saved_metric:
        raise _invalid(
            f'The centers of {path!r} were trained with distance_metric='
            f'{saved_metric!r}. Received: {{distance_metric=}}; drop it or '
            f'pass {saved_metric!r}.', 'distance_metric', given)
    return cls.from_centers(values[constants.CLUSTER_CENTERS_VAR_NAME],
                            **kwargs)
