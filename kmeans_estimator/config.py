"""Validation of k-means hyper-parameters, shared by `KMeans` and the shell.

Pure Python checks on Python values; each error names the argument, what it
received and what would be valid.
"""

import numbers
import os

import numpy as np

import tensorflow as tf

from kmeans_estimator import constants

# The largest values TensorFlow's int32 and int64 shapes, indices and
# counters hold.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class SizeError(ValueError):
  """An argument asks for more than the machine or TensorFlow can hold.

  Raised before anything runs or is written, with the argument's name in
  `argument` and in the message, rather than an out-of-memory kill or an
  opaque TensorFlow error minutes later.
  """

  def __init__(self, argument, message):
    super().__init__(message)
    self.argument = argument


def check_positive_int(name, value, allow_none=False, maximum=None):
  """Returns `value` as an int, or raises if it is not a positive integer
  (at most `maximum`, when given: a SizeError names the limit)."""
  if value is None and allow_none:
    return None
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, numbers.Integral):
    raise TypeError(f'`{name}` must be a positive integer. '
                    f'Received: {name}={value!r}')
  if value < 1:
    raise ValueError(f'`{name}` must be a positive integer. '
                     f'Received: {name}={value!r}')
  if maximum is not None and value > maximum:
    raise SizeError(name, f'`{name}` must be a positive integer at most '
                    f'{maximum}{_limit_reason(maximum)}. '
                    f'Received: {name}={value!r}')
  return int(value)


def _limit_reason(maximum):
  if maximum == INT32_MAX:
    return ' (2**31 - 1, the largest int32 TensorFlow indexes with)'
  if maximum == INT64_MAX:
    return ' (2**63 - 1, the largest int64)'
  return ''


def check_bool(name, value):
  """Returns `value` as a Python bool; only bool and numpy bool are taken.

  A string such as 'no' is truthy, so taking any value by its truth would
  turn `use_mini_batch='no'` into mini-batch training: anything else is a
  TypeError naming the argument.
  """
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  raise TypeError(f'`{name}` must be a bool (True or False). '
                  f'Received: {name}={value!r} (type {type(value).__name__})')


def check_path(name, value, allow_none=False):
  """Returns the path `value` as a str, with a leading `~` expanded.

  Takes a str or an `os.PathLike` whose path is a str (`pathlib.Path`).
  Bytes, numbers and other objects are a TypeError naming the argument:
  their `str()` (such as "b'/some/dir'" or '123') would quietly name
  another directory, relative to the working directory. URLs such as
  'gs://bucket/dir' are kept as they are.
  """
  if value is None and allow_none:
    return None
  path = os.fspath(value) if isinstance(value, os.PathLike) else value
  if not isinstance(path, str) or not path:
    raise TypeError(
        f'`{name}` must be a non-empty path: a str or a pathlib.Path. '
        f'Received: {name}={value!r} (type {type(value).__name__})' + (
            '; decode bytes with os.fsdecode()'
            if isinstance(path, bytes) else ''))
  return os.path.expanduser(path)


# Where a cgroup (a container's, a systemd unit's) caps this process's
# memory: cgroup v2, then v1, as seen from inside the container.
_CGROUP_LIMIT_FILES = ('/sys/fs/cgroup/memory.max',
                       '/sys/fs/cgroup/memory/memory.limit_in_bytes')


def memory_bytes():
  """The memory this process may use in bytes, or None where unknown.

  The least of the machine's physical memory, the process's address-space
  and data-segment limits (`ulimit -v`, `ulimit -d`) and its cgroup's
  memory limit (a container's): beyond any of them an allocation fails or
  the process is killed.
  """
  limits = []
  try:
    limits.append(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))
  except (AttributeError, OSError, ValueError):
    pass
  try:
    import resource  # pylint: disable=g-import-not-at-top
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
      soft, _ = resource.getrlimit(which)
      if soft != resource.RLIM_INFINITY and soft > 0:
        limits.append(soft)
  except (ImportError, AttributeError, OSError, ValueError):
    pass  # No resource module (Windows) or no such limit.
  for path in _CGROUP_LIMIT_FILES:
    try:
      with open(path, encoding='ascii') as f:
        text = f.read().strip()
    except (OSError, ValueError):
      continue
    if text.isdigit() and 0 < int(text) < 2**62:  # 'max' or a huge value
      limits.append(int(text))  # means no limit.
  return min(limits, default=None)


def _human(num_bytes):
  for unit in ('bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'):
    if num_bytes < 1024 or unit == 'PiB':
      break
    num_bytes /= 1024
  return f'{num_bytes:.0f} {unit}' if unit == 'bytes' else (
      f'{num_bytes:.1f} {unit}')


def check_memory(name, value, num_bytes, what, fix):
  """Raises a SizeError if `num_bytes` exceed the memory this process has.

  Policy: a request whose tensors alone need more than the memory this
  process may use (`memory_bytes`: the machine's, or a lower ulimit or
  cgroup limit) can only end in an out-of-memory kill or error, after a
  long wait; it is refused up front, naming the argument `name`, what needs
  the memory (`what`) and `fix`. Requests below that are left to run (the
  limit is a sanity bound, not a promise that they fit beside other work).
  Where the memory size is unknown nothing is checked.
  """
  memory = memory_bytes()
  if memory is not None and num_bytes > memory:
    raise SizeError(
        name, f'`{name}` is too large: {what} need {_human(num_bytes)}, more '
        f'than the {_human(memory)} of memory this process may use (the '
        "machine's, or a lower ulimit or cgroup limit). Received: "
        f'{name}={value!r}; {fix}.')


def check_int(name, value):
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, numbers.Integral):
    raise TypeError(f'`{name}` must be an integer. Received: {name}={value!r}')
  return int(value)


def check_kmeans_plus_plus_num_retries(num_retries):
  """An int; 1 + num_retries candidates per center must fit an int32
  (negative values mean 2 + log k)."""
  num_retries = check_int('kmeans_plus_plus_num_retries', num_retries)
  if num_retries >= INT32_MAX:
    raise SizeError(
        'kmeans_plus_plus_num_retries',
        '`kmeans_plus_plus_num_retries` must be an integer below 2**31 - 1 '
        '(1 + num_retries candidates per center are drawn at once). '
        f'Received: kmeans_plus_plus_num_retries={num_retries!r}; the '
        'default is 2, and a negative value means 2 + log k.')
  return num_retries


def check_index_sizes(num_clusters, initial_clusters, kmc2_chain_length,
                      kmeans_parallel_rounds, kmeans_parallel_oversampling,
                      num_restarts):
  """Checks the sizes that the options alone fix against int32 limits.

  TensorFlow indexes the rows of a tensor, and many kernels its entries,
  with int32; so are counted the centers of all restarts (R x k), the
  chain's distances of 'kmc2' (kmc2_chain_length x k) and the candidates
  of 'kmeans_parallel' (1 + rounds x round(oversampling x k)). Sizes that
  also depend on the data are checked when it is read
  (`KMeans.check_sizes`).
  """
  if not isinstance(initial_clusters, str):
    initial_clusters = None  # An array or a callable: no sampling sizes.
  if num_restarts * num_clusters > INT32_MAX:
    raise SizeError(
        'num_restarts',
        f'num_restarts={num_restarts} x num_clusters={num_clusters} '
        'centers must number at most 2**31 - 1; lower num_restarts.')
  if initial_clusters == constants.KMC2_INIT and (
      kmc2_chain_length * num_clusters > INT32_MAX):
    raise SizeError(
        'kmc2_chain_length',
        f'`kmc2_chain_length` x num_clusters (the chain\'s distances to the '
        'centers) must be at most 2**31 - 1. Received: kmc2_chain_length='
        f'{kmc2_chain_length!r}, num_clusters={num_clusters}; lower '
        'kmc2_chain_length (the default is 200).')
  if initial_clusters == constants.KMEANS_PARALLEL_INIT:
    per_round = kmeans_parallel_oversampling * num_clusters
    if per_round * kmeans_parallel_rounds + 1 > INT32_MAX:
      name, _ = kmeans_parallel_culprit(kmeans_parallel_rounds,
                                        kmeans_parallel_oversampling)
      raise SizeError(
          name,
          'kmeans_parallel_oversampling x num_clusters x '
          'kmeans_parallel_rounds (the candidates of kmeans_parallel) must '
          'be below 2**31 - 1. Received: kmeans_parallel_oversampling='
          f'{kmeans_parallel_oversampling!r}, num_clusters={num_clusters}, '
          f'kmeans_parallel_rounds={kmeans_parallel_rounds}; lower {name} '
          f'(the default is {_KMEANS_PARALLEL_DEFAULTS[name]}).')


# The defaults of KMeansClustering's kmeans_parallel arguments.
_KMEANS_PARALLEL_DEFAULTS = {'kmeans_parallel_rounds': 5,
                             'kmeans_parallel_oversampling': 0.5}


def kmeans_parallel_culprit(rounds, oversampling):
  """(name, value) of the kmeans_parallel argument most above its default.

  The candidates of 'kmeans_parallel' grow with the product of rounds and
  oversampling; an error about their number names the argument that was
  raised the most (relative to its default), as the one to lower.
  """
  if (rounds / _KMEANS_PARALLEL_DEFAULTS['kmeans_parallel_rounds'] >
      oversampling / _KMEANS_PARALLEL_DEFAULTS['kmeans_parallel_oversampling']):
    return 'kmeans_parallel_rounds', rounds
  return 'kmeans_parallel_oversampling', oversampling


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
  try:
    return float(value)
  except OverflowError:  # An int beyond the largest float.
    raise SizeError(name, f'`{name}` must be a finite number > 0 that a '
                    f'float holds. Received: {name}={value!r}') from None


def check_relative_tolerance(relative_tolerance):
  if relative_tolerance is None:
    return None
  if (isinstance(relative_tolerance, bool) or
      not isinstance(relative_tolerance, numbers.Real) or
      not relative_tolerance >= 0):
    raise ValueError('`relative_tolerance` must be None or a number >= 0. '
                     f'Received: relative_tolerance={relative_tolerance!r}')
  try:
    return float(relative_tolerance)
  except OverflowError:  # An int beyond the largest float: as large as inf.
    return float('inf')


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
