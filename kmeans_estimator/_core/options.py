"""Validation of k-means hyper-parameters, shared by `KMeans` and the shell.

Pure Python checks on Python values; each error names the argument, what it
received and what would be valid.
"""

import numbers

import tensorflow as tf

from kmeans_estimator._core import constants


def check_positive_int(name, value, allow_none=False):
  """Returns `value` as an int, or raises if it is not a positive integer."""
  if value is None and allow_none:
    return None
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f'`{name}` must be a positive integer. '
                    f'Received: {name}={value!r}')
  if value < 1:
    raise ValueError(f'`{name}` must be a positive integer. '
                     f'Received: {name}={value!r}')
  return int(value)


def check_int(name, value):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f'`{name}` must be an integer. Received: {name}={value!r}')
  return int(value)


def check_distance_metric(distance_metric):
  if distance_metric not in constants.DISTANCE_METRICS:
    raise ValueError(
        f'`distance_metric` must be one of {list(constants.DISTANCE_METRICS)}.'
        f' Received: distance_metric={distance_metric!r}')
  return distance_metric


def check_algorithm(algorithm, distance_metric, use_mini_batch):
  """Checks `algorithm` and what it needs of the other options."""
  if algorithm not in constants.ALGORITHMS:
    raise ValueError(f'`algorithm` must be one of {list(constants.ALGORITHMS)}.'
                     f' Received: algorithm={algorithm!r}')
  if algorithm == constants.HAMERLY and (
      distance_metric != constants.SQUARED_EUCLIDEAN_DISTANCE or
      use_mini_batch):
    raise ValueError(
        "algorithm='hamerly' needs use_mini_batch=False and "
        "distance_metric='squared_euclidean'. Received: "
        f'use_mini_batch={use_mini_batch!r}, '
        f'distance_metric={distance_metric!r}; use algorithm=\'lloyd\' '
        'for the others.')
  return algorithm


def check_empty_cluster(empty_cluster, use_mini_batch,
                        mini_batch_steps_per_iteration):
  """Checks `empty_cluster` and what it needs of the mini-batch options."""
  if empty_cluster not in constants.EMPTY_CLUSTER_POLICIES:
    raise ValueError(
        f'`empty_cluster` must be one of '
        f'{list(constants.EMPTY_CLUSTER_POLICIES)}. '
        f'Received: empty_cluster={empty_cluster!r}')
  if (empty_cluster == constants.FARTHEST_POINT and use_mini_batch and
      mini_batch_steps_per_iteration != 1):
    raise ValueError(
        "empty_cluster='farthest_point' with use_mini_batch=True needs "
        'mini_batch_steps_per_iteration=1: the per-cluster counts that tell '
        'a dead center from one that missed a batch are reset every '
        'iteration otherwise. Received: mini_batch_steps_per_iteration='
        f"{mini_batch_steps_per_iteration!r}; use empty_cluster='keep' or "
        'mini_batch_steps_per_iteration=1.')
  return empty_cluster


def check_num_restarts(num_restarts, use_mini_batch, empty_cluster,
                       initial_clusters):
  """Checks `num_restarts` and what restarts need of the other options.

  Restarts share full-batch Lloyd passes and start from centers drawn at
  random, so R > 1 needs use_mini_batch=False, empty_cluster='keep' and an
  initialisation method named by a string.
  """
  num_restarts = check_positive_int('num_restarts', num_restarts)
  if num_restarts == 1:
    return num_restarts
  if use_mini_batch:
    raise ValueError(
        f'num_restarts={num_restarts} needs use_mini_batch=False: the '
        'restarts share the passes of full-batch Lloyd steps. Received: '
        'use_mini_batch=True; pass use_mini_batch=False, or num_restarts=1 '
        'for mini-batch training.')
  if empty_cluster == constants.FARTHEST_POINT:
    raise ValueError(
        f"num_restarts={num_restarts} does not support empty_cluster="
        f"'farthest_point'; use empty_cluster='keep', or num_restarts=1.")
  given_centers = not isinstance(initial_clusters, str)  # Array, callable.
  if given_centers:
    raise ValueError(
        f'num_restarts={num_restarts} needs initial centers drawn at random, '
        f'one of {list(constants.INIT_METHODS)}: initial_clusters given as '
        'an array or a callable would start every restart from the same '
        'centers. Use num_restarts=1 with them.')
  return num_restarts


def check_initial_clusters_name(initial_clusters):
  """Checks a string `initial_clusters`; other kinds are checked elsewhere."""
  if initial_clusters not in constants.INIT_METHODS:
    raise ValueError(
        f'`initial_clusters` must be one of {list(constants.INIT_METHODS)}, '
        'an array of shape (num_clusters, d), or a callable f(inputs, k). '
        f'Received: initial_clusters={initial_clusters!r}')
  return initial_clusters


def check_positive_number(name, value):
  """Returns `value` as a float, or raises if it is not a number > 0."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or
      not value > 0 or value == float('inf')):
    raise ValueError(f'`{name}` must be a finite number > 0. '
                     f'Received: {name}={value!r}')
  return float(value)


def check_relative_tolerance(relative_tolerance):
  if relative_tolerance is None:
    return None
  if (isinstance(relative_tolerance, bool) or
      not isinstance(relative_tolerance, numbers.Real) or
      not relative_tolerance >= 0):
    raise ValueError('`relative_tolerance` must be None or a number >= 0. '
                     f'Received: relative_tolerance={relative_tolerance!r}')
  return float(relative_tolerance)


def check_initial_centers_shape(shape, num_clusters, num_features=None):
  """Checks the shape of explicitly given initial centers."""
  if len(shape) != 2 or shape[0] != num_clusters or (
      num_features is not None and shape[1] is not None and
      shape[1] != num_features):
    wanted = f'({num_clusters}, {num_features if num_features else "d"})'
    raise ValueError(
        f'`initial_clusters` must have shape {wanted} (num_clusters rows of '
        f'the data\'s width). Received: initial_clusters with shape '
        f'{tuple(shape)}')


def check_dtype(dtype):
  """Returns `dtype` as a `tf.DType`: float32 or float64.

  Half precision (float16, bfloat16) is refused rather than computed with:
  its per-cluster sums overflow at 65504 and its counts stop growing at 2048
  (256 in bfloat16), so steps would quietly give wrong centers. Points of any
  numeric dtype, half precision included, are accepted and cast to the
  model's dtype.
  """
  try:
    as_dtype = tf.as_dtype(dtype)
  except TypeError:
    as_dtype = None
  if as_dtype not in (tf.float32, tf.float64):
    reason = ''
    if as_dtype is not None and as_dtype.is_floating:
      reason = (' Half precision cannot hold the per-cluster sums and '
                'counts; give points of any dtype (float16 too) to a '
                'float32 model, they are cast to it.')
    raise TypeError('`dtype` must be a floating point dtype of 32 or 64 '
                    'bits: tf.float32 or tf.float64.' + reason +
                    f' Received: dtype={dtype!r}')
  return as_dtype
