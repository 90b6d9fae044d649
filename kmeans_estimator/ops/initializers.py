"""Choosing initial centers: random, k-means++, k-MC2 and k-means||.

Pure functions of (points, number wanted, seed): the same seed and points give
the same centers, eagerly or inside `tf.function`. Seeds are stateless
`int32` Tensors of shape (2,). Points must be prepared for the metric
(normalised under cosine). Every loop here is over centers, never over points:
each iteration is matrix work on the whole batch.

Two policies hold for every initialiser here:

* The dtype of the points changes no draw. The random numbers are drawn in
  float64 whatever the points' dtype, and the sums they are compared with
  (cumulative distances, sampling keys, totals of candidates) are float64
  too; the points' dtype enters only through the distances themselves, so
  float16, float32 and float64 copies of the same exactly representable
  data draw the same points.
* No weights are weights of 1. Without weights each function runs its
  weighted form with weights of 1 (the same random numbers, the same
  arithmetic), so weights of 1 give the unweighted centers bit for bit.
  Whether integer weights also give the draws of repeated rows is said in
  each function's docstring.
"""

import math

import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator.ops import distances as distances_lib
from kmeans_estimator.ops import numerics
from kmeans_estimator.ops import sparse as sparse_lib
from kmeans_estimator.ops import updates


def _fold(seed, i):
  return tf.random.experimental.stateless_fold_in(seed, tf.cast(i, tf.int64))


def fold_seed(seed, *path):
  """A seed derived from `seed` and the integers (or int Tensors) `path`."""
  for i in path:
    seed = _fold(seed, i)
  return seed


# The dtype of every random number and of the sums compared with them.
_DRAW = tf.float64


def _uniform_index(n, seed, shape=()):
  return tf.random.stateless_uniform(shape, seed, minval=0, maxval=n,
                                     dtype=tf.int32)


def _draw_weights(n, weights):
  """float64 (n,): `weights`, or ones without them."""
  if weights is None:
    return tf.ones([n], _DRAW)
  return tf.cast(weights, _DRAW)


def _inverse_cdf(masses, uniform):
  """Rows drawn in proportion to `masses` (float64 (n,), non-negative) by the
  float64 `uniform` numbers in [0, 1): row i where cumsum(masses)[i - 1] <=
  u * total < cumsum(masses)[i]. A row of mass 0 is never drawn, unless
  every mass is 0 (the last row then comes back; the callers avoid that).

  With integer masses this is the draw of floor(u * total) among the rows
  repeated mass times each, in place: so integer weights draw what repeated
  rows draw.
  """
  cumulative = tf.cumsum(masses)
  return tf.minimum(
      tf.searchsorted(cumulative, uniform * cumulative[-1], side='right'),
      tf.shape(masses)[0] - 1)


def random_points(points, num, seed, weights=None):
  """Up to `num` distinct rows of `points`, uniformly without replacement.

  When the batch has fewer than `num` rows, all of them are returned (in a
  random order); the caller takes the rest from later batches.

  With `weights`, rows are drawn without replacement in proportion to their
  weight (Efraimidis-Spirakis keys, see `sample_keys`); rows of weight 0 are
  never drawn, so at most the number of rows of positive weight come back.
  Without weights the keys are those of weights of 1, so weights of 1 draw
  the same rows bit for bit. Integer weights follow the distribution of
  repeated rows but not their draws: a row is drawn at most once here,
  while its copies could each be drawn.

  Args:
    points: float Tensor of shape (n, d).
    num: int scalar, how many centers are still wanted.
    seed: int32 Tensor of shape (2,).
    weights: optional float Tensor (n,) of non-negative point weights.

  Returns:
    float Tensor of shape (min(num, n), d) (without weights), or
    (min(num, rows of positive weight), d).
  """
  n = sparse_lib.num_rows(points)
  keys = sample_keys(_draw_weights(n, weights), None, seed)
  available = n if weights is None else tf.reduce_sum(
      tf.cast(weights > 0, tf.int32))
  _, order = tf.math.top_k(
      keys, k=tf.minimum(tf.cast(num, tf.int32), available))
  return sparse_lib.gather_rows(points, order)


def num_kmeans_plus_plus_candidates(num_clusters, num_retries):
  """Candidates drawn per center: 1 + retries; negative retries mean 2 + log k.

  This is the legacy rule for `kmeans_plus_plus_num_retries`.
  """
  if num_retries < 0:
    num_retries = 2 + int(math.log(max(num_clusters, 1)))
  return 1 + num_retries


def _pick(candidate_distances, min_distance, weights):
  """The candidate that lowers the weighted total distance most (float64
  sums; ties go to the first candidate), and the new float64 minima."""
  candidate_distances = tf.cast(candidate_distances, _DRAW)
  lowered = tf.minimum(min_distance[:, tf.newaxis], candidate_distances)
  lowered *= weights[:, tf.newaxis]
  best = tf.argmin(tf.reduce_sum(lowered, axis=0), output_type=tf.int32)
  return best, tf.minimum(min_distance, candidate_distances[:, best])


def _best_candidate(products, point_norms, candidate_norms, min_distance,
                    weights):
  return _pick(tf.maximum(point_norms[:, tf.newaxis] - 2.0 * products +
                          candidate_norms, 0.0), min_distance, weights)


def _best_candidate_cosine(products, min_distance, weights):
  return _pick(tf.maximum(1.0 - products, 0.0), min_distance, weights)


def _first_index(seed, weights):
  """A row drawn in proportion to `weights` (float64 (n,))."""
  uniform = tf.random.stateless_uniform([1], seed, dtype=_DRAW)
  return _inverse_cdf(weights, uniform)[0]


def kmeans_plus_plus(points, num, seed, num_retries, distance_metric,
                     weights=None):
  """Greedy k-means++ (Arthur & Vassilvitskii 2007, as the legacy op did).

  The first center is a uniform random point. Each further center is the
  best, by resulting total distance, of `1 + num_retries` candidates drawn
  with probability proportional to their distance to the nearest center
  chosen so far. When every point already coincides with a center (fewer
  distinct points than `num`), candidates are drawn uniformly, so duplicate
  centers result; their clusters stay empty and keep their centers.

  With `weights`, a point of weight w counts as w copies of it: the first
  center and the candidates are drawn in proportion to weight (times
  distance), and candidates are compared by weighted total distance.
  Without weights, weights of 1 are used, so those give the same centers
  bit for bit. Integer weights draw what the rows repeated in place (row i
  w_i times, in order) draw with the same seed, as long as the float64
  sums of distances are exact in both (say, small integer data): the
  draws invert the same cumulative sums (see `_inverse_cdf`); where the
  sums round, the draws can differ where a random number falls on a
  boundary and the comparison of candidates where their totals tie.

  Args:
    points: float Tensor of shape (n, d) with n >= num >= 1.
    num: Python int, the number of centers to choose.
    seed: int32 Tensor of shape (2,).
    num_retries: Python int, extra candidates per center (negative: 2 + log k).
    distance_metric: 'squared_euclidean' or 'cosine'.
    weights: optional float Tensor (n,) of non-negative point weights.

  Returns:
    float Tensor of shape (num, d).
  """
  candidates = num_kmeans_plus_plus_candidates(num, num_retries)
  n = sparse_lib.num_rows(points)
  weights = _draw_weights(n, weights)
  first = sparse_lib.gather_rows(
      points, _first_index(_fold(seed, 0), weights))[
      tf.newaxis]
  centers = tf.tensor_scatter_nd_update(
      tf.zeros([num, sparse_lib.num_columns(points)], points.dtype), [[0]],
      first)
  # Once, not per center; the cosine distance does not use them.
  point_norms = (None if distance_metric == constants.COSINE_DISTANCE else
                 distances_lib.squared_norms_in_chunks(points))
  min_distance = tf.cast(tf.maximum(
      distances_lib.pairwise_distances(points, first, distance_metric,
                                       point_norms)[:, 0], 0.0), _DRAW)

  def body(i, centers, min_distance):
    # Draw candidates with probability proportional to min_distance by
    # inverting its cumulative sum: one pass over the points per center
    # (a categorical draw would cost a pass per candidate).
    uniform = tf.random.stateless_uniform([candidates], _fold(seed, i),
                                          dtype=_DRAW)
    masses = min_distance * weights
    # Every point coincides with a center: draw by weight alone instead.
    masses = tf.cond(tf.reduce_sum(masses) > 0, lambda: masses,
                     lambda: weights)
    chosen = _inverse_cdf(masses, uniform)
    candidate_points = sparse_lib.gather_rows(points, chosen)
    if distance_metric == constants.COSINE_DISTANCE:
      products = sparse_lib.matmul(points, numerics.safe_l2_normalize(
          candidate_points), transpose_b=True)
      best, min_distance = _best_candidate_cosine(products, min_distance,
                                                  weights)
    else:
      products = sparse_lib.matmul(points, candidate_points,
                                   transpose_b=True)
      best, min_distance = _best_candidate(
          products, point_norms,
          tf.reduce_sum(tf.square(candidate_points), axis=1), min_distance,
          weights)
    centers = tf.tensor_scatter_nd_update(
        centers, [[i]], candidate_points[best][tf.newaxis])
    return i + 1, centers, min_distance

  _, centers, _ = tf.while_loop(lambda i, *_: i < num, body,
                                (tf.constant(1), centers, min_distance))
  return centers


def kmc2(points, num, seed, chain_length, distance_metric):
  """k-MC2 (Bachem et al. 2016): k-means++ approximated by short Markov chains.

  The first center is a uniform random point. For each further center a chain
  of `chain_length` uniformly drawn points is walked: the walk moves from the
  current candidate x to the next y with probability min(1, D(y) / D(x)),
  D being the distance to the nearest center chosen so far; where it ends is
  the new center. Cost per center is O(chain_length * k * d), independent of n.
  It takes no weights (a chain of uniform draws has no weighted form here).

  Args:
    points: float Tensor of shape (n, d), n >= 1.
    num: Python int, the number of centers to choose.
    seed: int32 Tensor of shape (2,).
    chain_length: Python int >= 1.
    distance_metric: 'squared_euclidean' or 'cosine'.

  Returns:
    float Tensor of shape (num, d).
  """
  n = sparse_lib.num_rows(points)
  first = sparse_lib.gather_rows(
      points, _uniform_index(n, _fold(seed, 0)))[tf.newaxis]
  centers = tf.tensor_scatter_nd_update(
      tf.zeros([num, sparse_lib.num_columns(points)], points.dtype), [[0]],
      first)
  infinity = tf.constant(float('inf'), points.dtype)

  def body(i, centers):
    step_seed = _fold(seed, i)
    chain = sparse_lib.gather_rows(
        points, _uniform_index(n, _fold(step_seed, 0), [chain_length]))
    chain_distances = distances_lib.pairwise_distances(chain, centers,
                                                       distance_metric)
    chosen_so_far = tf.range(num) < i
    chain_distances = tf.cast(tf.reduce_min(
        tf.where(chosen_so_far[tf.newaxis], tf.maximum(chain_distances, 0.0),
                 infinity), axis=1), _DRAW)
    thresholds = tf.random.stateless_uniform(
        [chain_length], _fold(step_seed, 1), dtype=_DRAW)

    def walk(j, current):
      # Accept y with probability D(y) / D(x): u * D(x) < D(y).
      accept = thresholds[j] * chain_distances[current] < chain_distances[j]
      return j + 1, tf.where(accept, j, current)

    _, current = tf.while_loop(lambda j, _: j < chain_length, walk,
                               (tf.constant(1), tf.constant(0)))
    centers = tf.tensor_scatter_nd_update(centers, [[i]],
                                          chain[current][tf.newaxis])
    return i + 1, centers

  _, centers = tf.while_loop(lambda i, _: i < num, body,
                             (tf.constant(1), centers))
  return centers


# ------------------------------------------------------------- k-means||
#
# k-means|| (Bahmani et al. 2012) replaces k-means++'s k sequential passes
# with a few rounds, each drawing many candidates at once in proportion to
# the distance to the candidates so far; the candidates, weighted by the
# points nearest to them, are then reduced to k centers by weighted k-means++
# and a few weighted Lloyd steps. Each round draws exactly `oversampling`
# candidates without replacement (Efraimidis-Spirakis keys log(u) / w, the
# largest kept), so the candidate buffer has a static shape and a stream of
# batches is sampled in one pass with a reservoir of the best keys so far.


def num_kmeans_parallel_candidates(rounds, oversampling):
  """Size of the candidate buffer: the first center plus each round's."""
  return 1 + rounds * oversampling


def sample_keys(distances, weights, seed):
  """Keys whose largest `l` are a draw of `l` rows without replacement.

  Row i is drawn with probability proportional to distances[i] * weights[i];
  rows of zero distance or weight get -inf and are never drawn. Keys are
  float64, so that tiny weights still give finite keys.
  """
  w = tf.cast(distances, tf.float64)
  if weights is not None:
    w *= tf.cast(weights, tf.float64)
  tiny = tf.constant(1e-300, tf.float64)
  uniform = tf.random.stateless_uniform(tf.shape(w), seed, minval=tiny,
                                        maxval=1.0, dtype=tf.float64)
  return tf.where(w > 0, tf.math.log(uniform) / tf.maximum(w, tiny),
                  tf.constant(-float('inf'), tf.float64))


def merge_reservoir(keys, rows, batch_keys, batch_points):
  """The rows of the largest keys among a reservoir and a batch.

  Args:
    keys: float64 Tensor (l,), the reservoir's keys (-inf: empty slot).
    rows: float Tensor (l, d), its rows.
    batch_keys: float64 Tensor (m,), keys of the batch's points.
    batch_points: float Tensor (m, d).

  Returns:
    (keys, rows) of the same shapes: the l largest keys of both.
  """
  size = tf.shape(keys)[0]
  top = tf.math.top_k(tf.concat([keys, batch_keys], axis=0), k=size)
  from_reservoir = top.indices < size
  chosen = tf.where(
      from_reservoir[:, tf.newaxis],
      tf.gather(rows, tf.minimum(top.indices, size - 1)),
      sparse_lib.gather_rows(batch_points, tf.maximum(top.indices - size, 0)))
  return top.values, chosen


def fill_unused(candidates, used):
  """Candidates with unused slots replaced by the first candidate.

  A copy of candidate 0 never changes a nearest distance and, since ties go
  to the lower index, never takes a point from it: so nearest-center code
  can run on the whole static-shape buffer.
  """
  return tf.where(used[:, tf.newaxis], candidates, candidates[:1])


def _drawn_block(points, keys, oversampling, first):
  """The rows of the `oversampling` largest keys; first's copies where fewer
  rows could be drawn (see `fill_unused`)."""
  top = tf.math.top_k(keys, k=tf.minimum(oversampling, tf.shape(keys)[0]))
  padding = oversampling - tf.shape(top.indices)[0]
  drawn = tf.pad(top.values > -float('inf'), [[0, padding]])
  block = tf.pad(sparse_lib.gather_rows(points, top.indices),
                 [[0, padding], [0, 0]])
  block = tf.where(drawn[:, tf.newaxis], block, first[tf.newaxis])
  return tf.reshape(block, [oversampling, -1])


def kmeans_parallel_candidates(points, seed, rounds, oversampling,
                               distance_metric, chunk_elements,
                               weights=None):
  """The weighted candidates of k-means|| over one in-memory batch.

  Each point's distance to its nearest candidate is carried from round to
  round, so each round costs one product of the points with that round's
  `oversampling` new candidates (in row chunks), and the weights come from
  the last round's assignments without a further pass.

  Args:
    points: float Tensor (n, d), prepared for the metric, n >= 1.
    seed: int Tensor (2,).
    rounds: Python int >= 1, sampling rounds after the first center.
    oversampling: Python int >= 1, candidates drawn per round.
    distance_metric: 'squared_euclidean' or 'cosine'.
    chunk_elements: bound on the number of distances held at once.
    weights: optional float Tensor (n,) of point weights.

  Returns:
    (candidates (C, d), candidate_weights float64 (C,)) with
    C = num_kmeans_parallel_candidates(rounds, oversampling); unused slots
    (fewer points of positive distance than asked for) have weight 0.
    Weights of 1 give what no weights give, bit for bit (the keys and sums
    are the same). Integer weights follow the distribution of repeated rows
    but not their draws (a row is drawn at most once per round).
  """
  n = sparse_lib.num_rows(points)
  ones = tf.ones([n], _DRAW)
  first = sparse_lib.gather_rows(points, tf.argmax(sample_keys(ones, weights,
                                                  fold_seed(seed, 0, 0))))
  blocks = [first[tf.newaxis]]
  index, distance = distances_lib.nearest_centers(
      points, blocks[0], distance_metric, chunk_elements)
  for r in range(rounds):
    # The seeds of batch 0 of the streamed version (`KMeans`), so that one
    # batch gives the same draws either way.
    block = _drawn_block(points, sample_keys(distance, weights,
                                             fold_seed(seed, r + 1, 0)),
                         oversampling, first)
    block_index, block_distance = distances_lib.nearest_centers(
        points, block, distance_metric, chunk_elements)
    closer = block_distance < distance
    offset = tf.cast(1 + r * oversampling, tf.int64)
    index = tf.where(closer, block_index + offset, index)
    distance = tf.where(closer, block_distance, distance)
    blocks.append(block)
  candidates = tf.concat(blocks, axis=0)
  size = num_kmeans_parallel_candidates(rounds, oversampling)
  candidate_weights = tf.math.unsorted_segment_sum(
      _draw_weights(n, weights), index, size)
  return candidates, candidate_weights


class StreamedSampler:
  """The per-batch updates of k-means|| over batches, for any driver.

  A driver makes rounds + 2 passes over the batches: in pass 0 it folds
  every batch into `first_update`'s state, in pass r (1..rounds) into
  `round_update`'s (then `round_candidates` gives that round's block), in
  the last into `weigh_update`'s. Batch i of round r draws with seed (r, i),
  so one batch gives `kmeans_parallel_candidates`' draws. Several streams
  (replicas) can each run a pass and combine their states with
  `merge_reservoir` and sums. Each update takes optional point weights.

  Args:
    num_features: d, a Python int.
    dtype: float dtype of the (prepared) batches.
    seed, rounds, oversampling, distance_metric, chunk_elements: as
      `kmeans_parallel_candidates`.
  """

  def __init__(self, num_features, dtype, seed, rounds, oversampling,
               distance_metric, chunk_elements):
    self.num_features = num_features
    self.dtype = dtype
    self.seed = seed
    self.rounds = rounds
    self.oversampling = oversampling
    self.distance_metric = distance_metric
    self.chunk_elements = chunk_elements
    self.size = num_kmeans_parallel_candidates(rounds, oversampling)

  def reservoir(self, size):
    """An empty reservoir of `size` rows: (keys, rows)."""
    return (tf.fill([size], tf.constant(-float('inf'), tf.float64)),
            tf.zeros([size, self.num_features], self.dtype))

  def first_state(self):
    return (*self.reservoir(1), tf.constant(0, tf.int64))

  def first_update(self, batch, i, state, seed=None, weights=None):
    """Pass 0: draws the first center (in proportion to weight); counts the
    points (of positive weight)."""
    keys, rows, count = state
    m = sparse_lib.num_rows(batch)
    keys, rows = merge_reservoir(
        keys, rows, sample_keys(tf.ones([m], self.dtype), weights,
                                fold_seed(self._seed(seed), 0, i)), batch)
    if weights is not None:
      m = tf.reduce_sum(tf.cast(weights > 0, tf.int32))
    return keys, rows, count + tf.cast(m, tf.int64)

  def round_update(self, batch, i, state, round_index, so_far, seed=None,
                   weights=None):
    """Pass r: draws in proportion to (weight times) the distance to
    `so_far`."""
    _, distance = distances_lib.nearest_centers(
        batch, so_far, self.distance_metric, self.chunk_elements)
    return merge_reservoir(
        *state, sample_keys(distance, weights, fold_seed(self._seed(seed),
                                                         round_index, i)),
        batch)

  def round_candidates(self, keys, rows, first):
    """A round's reservoir as a block of candidates (unused: `first`)."""
    return fill_unused(tf.concat([first, rows], axis=0),
                       tf.concat([[True], keys > -float('inf')],
                                 axis=0))[1:]

  def weigh_update(self, batch, totals, candidates, weights=None):
    """The last pass: the points (weights) nearest to each candidate."""
    index, _ = distances_lib.nearest_centers(
        batch, candidates, self.distance_metric, self.chunk_elements)
    return totals + tf.math.unsorted_segment_sum(
        tf.ones([sparse_lib.num_rows(batch)], self.dtype) if weights is None
        else weights, index, self.size)

  def _seed(self, seed):
    return self.seed if seed is None else seed


def kmeans_parallel_streamed(dataset, prepare, num_features, dtype, seed,
                             rounds, oversampling, distance_metric,
                             chunk_elements, weighted=False):
  """The weighted candidates of k-means|| over a stream of batches.

  One pass draws the first center (a uniform draw over the stream) and
  counts the points, each of `rounds` passes draws `oversampling`
  candidates, keeping across batches the rows with the largest sampling
  keys (a reservoir of fixed size), and one pass weighs the candidates.
  Memory holds a batch, the candidates and a chunk of distances, whatever
  the size of the data.

  Args:
    dataset: a finite `tf.data.Dataset` of batches (m, d), in the same order
      on every pass.
    prepare: function applied to each batch (the metric's preparation).
    num_features, dtype, seed, rounds, oversampling, distance_metric,
      chunk_elements: as `StreamedSampler`.
    weighted: whether the dataset's elements are (points (m, d), weights
      (m,)) pairs: points are then drawn in proportion to weight (times
      distance) and weigh the candidates by their weight.

  Returns:
    (candidates (C, d), candidate_weights (C,), number of points int64 (of
    positive weight, when weighted)).
  """
  sampler = StreamedSampler(num_features, dtype, seed, rounds, oversampling,
                            distance_metric, chunk_elements)

  def each_batch(update, state):
    """`state` after update(batch, weights, i, state) for every batch."""
    iterator = iter(dataset)

    def body(batch, i, state):
      if weighted:
        points, weights = batch.get_value()
        state = update(prepare(points), tf.cast(weights, dtype), i, state)
      else:
        state = update(prepare(batch.get_value()), None, i, state)
      return iterator.get_next_as_optional(), i + 1, state

    return tf.while_loop(lambda batch, *_: batch.has_value(), body,
                         (iterator.get_next_as_optional(), tf.constant(0),
                          state))[2]

  _, first, count = each_batch(
      lambda batch, weights, i, state: sampler.first_update(
          batch, i, state, weights=weights),
      sampler.first_state())
  blocks = [first]
  for r in range(1, rounds + 1):
    so_far = tf.concat(blocks, axis=0)
    keys, rows = each_batch(
        lambda batch, weights, i, state, r=r, so_far=so_far:
        sampler.round_update(batch, i, state, r, so_far, weights=weights),
        sampler.reservoir(oversampling))
    blocks.append(sampler.round_candidates(keys, rows, first))
  candidates = tf.concat(blocks, axis=0)
  weights = each_batch(
      lambda batch, weights, _, totals: sampler.weigh_update(
          batch, totals, candidates, weights=weights),
      tf.zeros([sampler.size], dtype))
  return candidates, weights, count


def reduce_candidates(candidates, candidate_weights, num, seed,
                      distance_metric, lloyd_steps=30):
  """k centers from weighted candidates: weighted k-means++, then Lloyd.

  The candidates are few (about rounds x oversampling), so this costs far
  less than one pass over the data, and k-means++ can afford four times
  scikit-learn's trials per center: missing a group of candidates here would
  merge two clusters for good. Lloyd stops early once no candidate changes
  center. All of it runs in float64 (the candidates are few), and the
  centers are cast back to the candidates' dtype at the end, so that the
  dtype changes no choice made here.
  """
  dtype = candidates.dtype
  candidates = tf.cast(candidates, _DRAW)
  candidate_weights = tf.cast(candidate_weights, _DRAW)
  num_retries = 4 * num_kmeans_plus_plus_candidates(num, -1) - 1
  centers = kmeans_plus_plus(candidates, num, seed, num_retries,
                             distance_metric, weights=candidate_weights)
  size = tf.shape(candidates)[0]

  def step(i, centers, index, _):
    new_index, _ = distances_lib.nearest_centers(candidates, centers,
                                                 distance_metric)
    new_index = tf.ensure_shape(new_index, index.shape)
    sums = tf.math.unsorted_segment_sum(
        candidates * candidate_weights[:, tf.newaxis], new_index, num)
    counts = tf.math.unsorted_segment_sum(candidate_weights, new_index, num)
    centers = updates.lloyd_update(centers, sums, counts, distance_metric)
    return i + 1, centers, new_index, tf.reduce_any(new_index != index)

  _, centers, _, _ = tf.while_loop(
      lambda i, _, __, changed: tf.logical_and(i < lloyd_steps, changed),
      step, (tf.constant(0), centers, tf.fill([size], tf.constant(-1, tf.int64)),
             tf.constant(True)))
  return tf.cast(centers, dtype)
