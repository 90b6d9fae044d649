"""What `KMeansLayer.adapt` runs: the core's initialisation and full-batch
steps over the data, without an estimator (no model_dir, no checkpoints).

The pieces are the estimator's: `data.direct` and `data.adapters` read the
data (arrays, Tensors, datasets; the same checks and typed errors),
`estimator.initialization.initialize_centers` chooses what data the
initialiser sees, `algorithms.choose` picks the variant, and
`estimator.training.run_steps` runs carried steps over data in memory in
one compiled loop with the same tolerance rule as `train`, and
`estimator.compiled` shares the compiled functions between layers of the
same graph options (every k, every seed), as between estimators. The
centers are the only result: they go into the layer's weights.
"""

from __future__ import annotations

import collections.abc
from typing import Any, Callable, NamedTuple, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from kmeans_estimator import algorithms
from kmeans_estimator import errors
from kmeans_estimator.data import adapters
from kmeans_estimator.data import direct
from kmeans_estimator.estimator import compiled
from kmeans_estimator.estimator import initialization
from kmeans_estimator.estimator import training
from kmeans_estimator import config as options
from kmeans_estimator.data import base
from kmeans_estimator.typing import InputData


class FitSummary(NamedTuple):
  """What an `adapt` did.

  Attributes:
    steps: the full-batch steps run.
    loss: the sum of distances to the nearest center before the last step.
    converged: whether the loss changed by less than the relative tolerance
      (False: the step budget ended the run).
    algorithm: the variant that ran ('lloyd', 'hamerly', 'yinyang').
  """
  steps: int
  loss: float
  converged: bool
  algorithm: str


# What `adapt` takes: the data themselves, never an input_fn.
_DATA_TYPES = (np.ndarray, list, tf.Tensor, tf.Variable,
               collections.abc.Mapping, tf.data.Dataset)


def read(data: InputData, batch_size: Optional[int], steps: Optional[int],
         dtype: tf.DType, num_features: Optional[int]) -> base.Points:
  """`data` as the estimator's `Points` (see `data.adapters.read_points`).

  The readers' errors are the estimator's (`errors.InvalidInputError`),
  with `argument` 'data'; data of another width than `num_features` raise
  one of kind 'width' that names the layer's width.

  Args:
    data: an array (n, d), a Tensor, a dict of features, or a
      `tf.data.Dataset` of batches (or of `(x, y)` pairs, whose `y` is
      ignored; of single rows with `batch_size`).
    batch_size: None (arrays and Tensors in one batch, in memory), or the
      rows per batch (arrays read as a stream of batches).
    steps: None, or the most batches to read.
    dtype: the computation's float dtype.
    num_features: the width the layer expects, or None.
  """
  if not isinstance(data, _DATA_TYPES) and not hasattr(data, '__array__'):
    raise errors.InvalidArgumentTypeError(
        '`data` must be a numpy array or Tensor of shape (n, d), a dict of '
        'features or a tf.data.Dataset of batches. Received: '
        f'data={data!r:.80} (type {type(data).__name__})', 'data', data)
  try:
    raw = direct.as_input_fn(data, batch_size)()
    if steps is not None:
      if not isinstance(raw, tf.data.Dataset):
        raw = direct.as_input_fn(data, raw.shape[0] if batch_size is None
                                 else batch_size)()
      raw = raw.take(steps)
    points = adapters.read_points(raw, dtype=dtype)
  except errors.InvalidInputError as error:
    error.argument = 'data'  # What the estimator's readers call input_fn.
    raise
  if num_features is not None and points.num_features != num_features:
    raise errors.InvalidInputError(
        f'The data have {points.num_features} features per point but the '
        f'layer\'s centers have {num_features}; give data of width '
        f'{num_features}, or adapt a new layer.', kind='width',
        argument='data')
  return points


def fit(config: options.KMeansConfig, points: base.Points, max_steps: int,
        relative_tolerance: Optional[float]) -> tuple[np.ndarray, FitSummary]:
  """Trains centers on `points` from scratch, as `train` would.

  Args:
    config: the layer's `KMeansConfig` (full batch).
    points: `read`'s `Points`.
    max_steps: the most full-batch steps.
    relative_tolerance: None, or stop after the step whose loss changed by
      less than this, relative to the loss before it (|loss - previous| /
      (1 + |previous|), the estimator's rule).

  Returns:
    (centers float array (k, d), `FitSummary`).
  """
  core = compiled.SharedKMeans.from_config(
      config.replace(num_features=points.num_features), name='kmeans')
  initialization.initialize_centers(
      core, points,
      lambda batch: bool(core.initialize(batch.points, batch.weights)),
      core.initialize_from_dataset, None)
  choice = algorithms.choose(config.algorithm, False, points.whole,
                             config.num_restarts)
  if choice.warning:
    logging.warning(choice.warning)
  if choice.carried:
    losses = _carried_steps(core, choice.algorithm, points, max_steps,
                            relative_tolerance)
  else:
    losses = _full_batch_steps(core, points, max_steps, relative_tolerance)
  converged = len(losses) < max_steps or (
      relative_tolerance is not None and len(losses) > 1 and
      _change(losses[-1], losses[-2]) < relative_tolerance)
  return core.clusters.numpy(), FitSummary(
      len(losses), float(losses[-1]), bool(converged), choice.algorithm.name)


def _change(loss: float, previous: float) -> float:
  return abs(loss - previous) / (1 + abs(previous))


def _carried_steps(core: compiled.SharedKMeans, algorithm: Any,
                   points: base.Points, max_steps: int,
                   relative_tolerance: Optional[float]) -> list[float]:
  """The steps of `algorithm` carrying state over the data in memory, all
  in one compiled call (`training.run_steps`); the losses of each."""
  batch = next(points.batches())
  run = compiled.bind(('keras.run_steps', algorithm.name), core,
                      _run_steps_body(algorithm))
  state = core.carried_state(algorithm, batch.points, batch.weights)
  figures, _, _ = run(
      batch.points, state, batch.weights, tf.constant(max_steps, tf.int32),
      tf.constant(np.nan, tf.float64),
      tf.constant(-np.inf if relative_tolerance is None else
                  relative_tolerance, tf.float64))
  return _checked(figures['loss'].numpy())


def _run_steps_body(algorithm: Any) -> Callable[..., Any]:
  """The body of the shared function of `_carried_steps`: `run_steps` of
  `algorithm`'s carried step on a view of the core."""

  def step(view: Any, data: tf.Tensor, state: Any,
           weights: Optional[tf.Tensor]) -> Any:
    return view.carried_step(algorithm, data, state, weights)

  def body(view: Any, data: tf.Tensor, state: Any,
           weights: Optional[tf.Tensor], num_steps: tf.Tensor,
           previous_loss: tf.Tensor, relative_tolerance: tf.Tensor) -> Any:
    return training.run_steps(step, view, data, state, weights, num_steps,
                              previous_loss, relative_tolerance)

  return body


def _full_batch_step(view: Any, data: Any) -> Any:
  return view.full_batch_step(data)


def _full_batch_steps(core: compiled.SharedKMeans, points: base.Points,
                      max_steps: int,
                      relative_tolerance: Optional[float]) -> list[float]:
  """`KMeans.full_batch_step` over all the data (a Tensor, or a dataset's
  batches summed) until the budget or the tolerance; with restarts, the
  best restart kept at the end. The losses of each step."""
  data = (next(points.batches()).points if points.whole else
          points.dataset)
  step = compiled.bind('keras.full_batch_step', core, _full_batch_step)
  losses = []
  for _ in range(max_steps):
    losses.append(float(step(data)['loss']))
    _checked(losses[-1:])
    if (relative_tolerance is not None and len(losses) > 1 and
        _change(losses[-1], losses[-2]) < relative_tolerance):
      break
  if core.num_restarts > 1:
    core.keep_best_restart(data)
  return losses


def _checked(losses: Any) -> list[float]:
  """`losses`, or the overflow error when the last is not finite (the
  points were checked for NaN and Inf when read)."""
  if not np.isfinite(losses[-1]):
    raise errors.DistanceOverflowError(
        'The squared distances of the points to the centers overflow the '
        'dtype; scale the points down, or use a float64 layer '
        "(dtype='float64').")
  return list(losses)
