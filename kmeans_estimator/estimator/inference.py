"""Evaluation and prediction over trained centers: reading the data in
chunks, running the chunks, and putting the results together.

`KMeansClustering.evaluate`, `score`, `predict`, `predict_cluster_index` and
`transform` check their arguments, restore the model and read the input;
the loops over batches and chunks, the hooks around each batch, the sums of
`evaluate` and the checks of `predict_keys` and `top_k` are here. Memory
beyond the input and what the caller keeps of the output is bounded by one
chunk of rows (`inference_rows`), whatever n and k: data given whole are
read a chunk at a time (`inputs.Points.chunked_batches`).
"""

import numpy as np

from kmeans_estimator import config as options
from kmeans_estimator import constants
from kmeans_estimator import errors
from kmeans_estimator.data import inputs
from kmeans_estimator.ops import distances as distances_lib


def read_to_infer(read, input_fn, mode, distance_metric):
  """`read` for predict and evaluate: data given whole are read in
  chunks, and in-memory data checked in the step.

  Under squared Euclidean distance the check of the distances that
  `model_fn` makes anyway also fails on NaN or Inf points (see
  `model_fn.after_overflow_check`), so a Tensor or array is not given a pass of
  its own (as costly as a tenth of the assignment). Under cosine a row of
  NaNs normalises to a zero row, at the finite distance 1, which would
  pass it: there the points are checked as they are read.

  An array, Tensor or dict of them (returned by the input_fn, or given
  directly, with or without `batch_size`) is read a chunk of rows at a
  time as the chunks are used (`inputs.Points.chunked_batches`): no whole
  copy of it is made, so memory beyond the input and what the caller
  keeps of the output is bounded by a chunk (`inference_rows`).

  Args:
    read: the estimator's `_read(input_fn, mode, check_finite=...,
      in_chunks=..., batch_rows=...)`.
    input_fn: the input_fn, or `inputs.DirectData`.
    mode: `ModeKeys.EVAL` or `ModeKeys.PREDICT`.
    distance_metric: the estimator's metric.
  """
  euclidean = distance_metric == constants.SQUARED_EUCLIDEAN_DISTANCE
  batch_rows = None
  if isinstance(input_fn, inputs.DirectData) and (
      input_fn.batch_size is not None):
    batch_rows, input_fn = input_fn.batch_size, input_fn.unbatched
  return read(input_fn, mode, check_finite=not euclidean,
              in_chunks=True, batch_rows=batch_rows)


def inference_rows(core, num_features, keys=(), top_k=None):
  """Rows per chunk of data that `predict`, `transform` and `evaluate`
  compute at once: what fits in `constants.INFERENCE_CHUNK_BYTES` with
  the outputs asked for (see `distances.inference_chunk_rows`), so that
  'all_distances' for a large num_clusters never needs a batch_size."""
  return distances_lib.inference_chunk_rows(
      num_features, core.num_clusters, core.dtype.size,
      all_distances=constants.ALL_DISTANCES in keys, top_k=top_k,
      budget_bytes=constants.INFERENCE_CHUNK_BYTES)


def eval_batches(core, points, eval_batch):
  """The metrics of each batch of `points` (read `read_to_infer`), as
  Python numbers summed over the batch's chunks (of `inference_rows`
  rows); each chunk is evaluated by `eval_batch(chunk)` -> dict of metric
  Tensors."""
  rows = inference_rows(core, points.num_features)
  for _, chunks in points.chunked_batches(rows):
    totals = {}
    for chunk, _ in chunks:
      metrics, chunk = eval_batch(chunk), None
      for key, value in metrics.items():
        value = value.numpy().item()
        if key not in totals:
          totals[key] = value
        elif key == 'num_batches':  # Chunks of one batch count once.
          totals[key] = max(totals[key], value)
        else:
          totals[key] += value
    yield totals


def evaluation_totals(evaluations, steps, runner, hook_values):
  """Sums the metrics of each evaluated batch, with hooks around each.

  Args:
    evaluations: iterable of each batch's metrics (`eval_batches`, or the
      distributed run's).
    steps: evaluate at most this many batches (None: all).
    runner: the `hooks.HookRunner` of the call's hooks.
    hook_values: `hook_values(loss, num_points)` -> what hooks may fetch.

  Returns:
    (inertia, num_points, num_batches, total_weight).
  """
  inertia, num_points, num_batches, num_steps = 0.0, 0, 0, 0
  total_weight = 0.0
  runner.begin()
  for metrics in evaluations:
    if steps is not None and num_steps >= steps:
      break
    context = runner.before_run() if runner else None
    batch_sum = float(metrics[constants.SCORE])
    inertia += batch_sum
    num_points += int(metrics['num_points'])
    if 'total_weight' in metrics:
      total_weight += float(metrics['total_weight'])
    num_batches += int(metrics['num_batches'])
    num_steps += 1
    if runner and runner.after_run(
        context, hook_values(batch_sum, num_points)):
      break
  runner.end()
  return inertia, num_points, num_batches, total_weight


def evaluation_results(totals, points, global_step, weight_column):
  """`evaluate`'s dict from the `evaluation_totals` over `points`."""
  inertia, num_points, num_batches, total_weight = totals
  if not num_batches:
    raise errors.InvalidInputError(
        'The input_fn returned no data to evaluate.', kind='empty')
  if points.whole:  # One batch, even when split over replicas.
    num_batches = 1
  score = inertia / num_batches
  results = {
      constants.SCORE: score,
      'loss': score,
      'global_step': global_step,
      'inertia': inertia,
      'num_points': num_points,
      'mean_squared_distance': inertia / max(num_points, 1),
  }
  if points.weighted:
    if not total_weight > 0:
      raise errors.InvalidInputError(inputs.zero_weight_message(weight_column),
                                     kind='weights')
    results['total_weight'] = total_weight
    results['mean_squared_distance'] = inertia / total_weight
  return results


def predictions(points, rows, keys, top_k, runner, predict_batch,
                hook_values, yields):
  """Yields the predictions of `points`, computed `rows` rows at a time.

  Args:
    points: the `inputs.Points` to predict (read `read_to_infer`).
    rows: rows per chunk (`inference_rows`).
    keys: the predict keys, in canonical order (`predict_keys`).
    top_k: None, or the number of nearest centers ('top_k_*' keys).
    runner: the `hooks.HookRunner` of the call's hooks, run once per
      batch.
    predict_batch: `predict_batch(chunk, keys, top_k)` -> dict of Tensors.
    hook_values: `hook_values(loss, num_points)` -> what hooks may fetch.
    yields: 'points' (a dict per point; a chunk's predictions are kept
      until its last point is taken), 'batches' (a dict of arrays per
      batch: the batch's outputs, whole, are the only thing held beyond
      a chunk) or 'chunks' (a dict of arrays per chunk, for the per-point
      generators built on it; hooks run once per batch all the same).
  """
  runner.begin()
  for num_rows, chunks in points.chunked_batches(rows):
    context = runner.before_run() if runner else None
    num_points, stop, whole = 0, False, None
    for chunk, last in chunks:
      predicted = {key: value.numpy() for key, value in
                   predict_batch(chunk, keys, top_k).items()}
      start = num_points
      num_points += len(predicted[keys[0]])
      if last and runner:
        stop = runner.after_run(context, hook_values(0.0, num_points))
      if yields == 'points':
        for i in range(num_points - start):
          yield {key: value[i] for key, value in predicted.items()}
      elif yields == 'chunks':
        yield predicted
      elif last and whole is None:  # One chunk: the whole batch.
        whole = predicted
      else:
        if whole is None:
          whole = {key: np.empty((num_rows,) + value.shape[1:],
                                 value.dtype)
                   for key, value in predicted.items()}
        for key, value in predicted.items():
          whole[key][start:num_points] = value
      # Dropped before the next chunk is read: one chunk at a time.
      chunk = predicted = None
    if yields == 'batches':
      yield whole
    if stop:
      break
  runner.end()


def check_top_k(top_k, num_clusters):
  """`top_k` as an int in [1, num_clusters], or None."""
  top_k = options.check_positive_int('top_k', top_k, allow_none=True)
  if top_k is not None and top_k > num_clusters:
    raise errors.InvalidArgumentError(
        f'`top_k` must be at most num_clusters={num_clusters} (the '
        f'number of centers to rank). Received: top_k={top_k}', 'top_k',
        top_k)
  return top_k


def predict_keys(predict_keys, top_k=None):  # pylint: disable=redefined-outer-name
  """The keys to predict, in canonical order; checked against `top_k`."""
  available = constants.PREDICT_KEYS + constants.TOP_K_PREDICT_KEYS
  if predict_keys is None:
    return available if top_k is not None else constants.PREDICT_KEYS
  received = predict_keys
  if isinstance(predict_keys, str):
    predict_keys = [predict_keys]
  unknown = [key for key in predict_keys if key not in available]
  if unknown or not predict_keys:
    raise errors.InvalidArgumentError(
        f'`predict_keys` must be a subset of {list(available)}. '
        f'Received: predict_keys={received!r}', 'predict_keys', received)
  keys = tuple(key for key in available if key in predict_keys)
  # The top-k keys asked for, as the caller listed them (once each).
  asked_top_k = list(dict.fromkeys(
      key for key in predict_keys if key in constants.TOP_K_PREDICT_KEYS))
  asks_top_k = bool(asked_top_k)
  if asks_top_k and top_k is None:
    raise errors.InvalidArgumentError(
        f'`predict_keys` asks for {asked_top_k}, which '
        f'{"needs" if len(asked_top_k) == 1 else "need"} top_k: pass '
        'top_k=<number of nearest centers>. Received: '
        f'predict_keys={received!r}, top_k=None', 'top_k', None)
  if top_k is not None and not asks_top_k:
    raise errors.InvalidArgumentError(
        f'`top_k` is given but predict_keys selects none of '
        f'{list(constants.TOP_K_PREDICT_KEYS)}; add them to predict_keys, '
        f'or drop top_k. Received: predict_keys={received!r}, '
        f'top_k={top_k}', 'top_k', top_k)
  return keys
