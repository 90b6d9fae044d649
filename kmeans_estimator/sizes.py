"""The memory check of a model's tensors, once the width of the data is known.

`config` checks what the options alone fix (int32 index limits, when a
config is made); how much memory a model's tensors need depends also on the
number of features d (and, for 'kmeans_plus_plus', on the first batch), so
it is checked when the model is built or the first batch is read, before
anything is allocated: a request that cannot fit fails at once with an
`errors.SizeError` naming the argument to lower, instead of an
out-of-memory kill after a long wait (`config.check_memory` holds the
policy).
"""

from kmeans_estimator import config as config_lib
from kmeans_estimator import constants
from kmeans_estimator.ops import initializers


def check_sizes(config, num_features, num_points=None):
  """Raises an `errors.SizeError` if the tensors of a model of `config` (a
  `KMeansConfig`) for points of `num_features` dimensions (and a first
  batch of `num_points` points, when known) would not fit in the memory
  this process may use (`KMeans.check_sizes`).

  Counted: the centers (`clusters`, the mini-batch copy and the restarts'
  centers); with 'kmc2', the chain and its distances to the centers,
  (kmc2_chain_length, d + k); with 'kmeans_parallel', the candidates
  (1 + rounds x oversampling x k, d); with 'kmeans_plus_plus' and
  `num_points` n, the candidates' products with the batch,
  (n + d, 1 + num_retries). See `config.check_memory` for the policy.
  """
  k, d = config.num_clusters, int(num_features)
  itemsize = config.dtype.size
  copies = 1 + (config.num_restarts if config.num_restarts > 1 else 0) + (
      config.mini_batch_steps_per_iteration > 1 and config.use_mini_batch)
  config_lib.check_memory(
      'num_clusters', config.num_clusters, copies * k * d * itemsize,
      ('' if copies == 1 else f'{copies} x ') +
      f'({k}, {d}) {config.dtype.name} centers',
      f'lower num_clusters (or num_restarts), or reduce the {d} features')
  method = config.initial_clusters
  if not isinstance(method, str):
    return  # Given centers or a callable: no sampling of ours.
  if method == constants.KMC2_INIT:
    length = config.kmc2_chain_length
    config_lib.check_memory(
        'kmc2_chain_length', length, 2 * length * (d + k + 1) * itemsize,
        f'the chain of {length} points and their distances to the {k} '
        'centers', 'lower it (the default is 200)')
  elif method == constants.KMEANS_PARALLEL_INIT:
    rounds = config.kmeans_parallel_rounds
    size = initializers.num_kmeans_parallel_candidates(
        rounds, config.kmeans_parallel_per_round)
    name, value = config_lib.kmeans_parallel_culprit(
        rounds, config.kmeans_parallel_oversampling)
    other = ('kmeans_parallel_rounds' if name ==
             'kmeans_parallel_oversampling' else
             'kmeans_parallel_oversampling')
    config_lib.check_memory(
        name, value, 3 * size * d * itemsize,
        f'{size} candidates of {d} features ({rounds}'
        f' rounds of kmeans_parallel_oversampling x {k} each)',
        'lower it (the default is '
        f'{"5" if name == "kmeans_parallel_rounds" else "0.5"}) or '
        f'{other}')
  elif method == constants.KMEANS_PLUS_PLUS_INIT and num_points:
    retries = config.kmeans_plus_plus_num_retries
    candidates = initializers.num_kmeans_plus_plus_candidates(k, retries)
    config_lib.check_memory(
        'kmeans_plus_plus_num_retries', retries,
        (int(num_points) + d + 4) * candidates * itemsize,
        f'the products of {candidates} candidates per center with a first '
        f'batch of {int(num_points)} points of {d} features',
        'lower it (the default is 2; a negative value means 2 + log k)')
