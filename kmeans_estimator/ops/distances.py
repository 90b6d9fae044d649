"""Point-to-center distances, nearest centers, and per-cluster statistics.

All functions take inputs already prepared for the metric: under the cosine
metric the points are L2-normalised by the caller (`KMeans` does it once per
batch), and the distance is 1 - x.c / |c|: centers are normalised here, as the
legacy inference did, so that centers that drifted from unit length (legacy
mini-batch checkpoints) still give true cosine distances.

Whenever only the nearest center matters, points are processed in row chunks
so that no more than `chunk_elements` distances exist at once: memory stays
bounded by the chunk, not by n x k.

The points may also be sparse (`ops.sparse.CsrPoints` (n, d), or a row-major
`tf.SparseTensor`): the products x.c then come from sparse-dense products and
the sums from segment sums of the stored values, chunk by chunk, so that
memory is O(nnz + k d + a chunk's distances), never a dense (n, d).
"""

import tensorflow as tf

from kmeans_estimator import constants
from kmeans_estimator.ops import numerics
from kmeans_estimator.ops import sparse as sparse_lib


def pairwise_distances(points, centers, distance_metric, point_norms=None):
  """Distances from every point to every center.

  Squared Euclidean: |x|^2 - 2 x.c + |c|^2, clamped at 0 (rounding can make
  the expansion slightly negative). Cosine: 1 - x.c / |c| for normalised x
  (a zero center is at distance 1 from everything), also clamped at 0.

  Args:
    points: float Tensor of shape (n, d).
    centers: float Tensor of shape (k, d), same dtype.
    distance_metric: 'squared_euclidean' or 'cosine'.
    point_norms: optional float Tensor (n,), |x|^2 computed once by a caller
      that calls this many times with the same points.

  Returns:
    float Tensor of shape (n, k).
  """
  if distance_metric == constants.COSINE_DISTANCE:
    cosine = 1.0 - sparse_lib.matmul(
        points, numerics.safe_l2_normalize(centers), transpose_b=True)
    return tf.maximum(cosine, tf.zeros_like(cosine))
  products = sparse_lib.matmul(points, centers, transpose_b=True)
  if point_norms is None:
    point_norms = squared_norms(points)
  point_norms = point_norms[:, tf.newaxis]
  center_norms = tf.reduce_sum(tf.square(centers), axis=1)[tf.newaxis, :]
  squared = point_norms - 2.0 * products + center_norms
  return tf.maximum(squared, tf.zeros_like(squared))


def _argmin_terms(centers, distance_metric):
  """(scaled centers (k, d), offsets (k,)) with score = x.s + o.

  The argmin needs only what varies with the center: |c|^2 - 2 x.c
  (Euclidean) or 1 - x.c / |c| (cosine); the point's own |x|^2 is added
  to the winner alone. That saves an n x k pass over the expansion.
  """
  if distance_metric == constants.COSINE_DISTANCE:
    scaled = -numerics.safe_l2_normalize(centers)
    return scaled, tf.ones_like(scaled[:, 0])
  return -2.0 * centers, tf.reduce_sum(tf.square(centers), axis=1)


def _scores(chunk, scaled_centers, offsets):
  """x.s + o for every point of `chunk` and every center: (m, k).

  `bias_add` rather than `+`: inside a `tf.function` TensorFlow fuses it
  into the product (one `_FusedMatMul`), which saves a pass over the m x k
  scores (about a tenth of the assignment's time for k = 500).
  """
  return tf.nn.bias_add(
      sparse_lib.matmul(chunk, scaled_centers, transpose_b=True,
                        block_entries=sparse_lib.PRODUCT_ENTRIES), offsets)


def chunk_rows(num_centers, chunk_elements,
               max_rows=constants.MAX_CHUNK_ROWS):
  """Rows per chunk: at most `chunk_elements` distances and `max_rows`
  rows (None: no such bound); a Python int when k is static (a static loop
  shape)."""
  if isinstance(num_centers, int):
    rows = chunk_elements // max(num_centers, 1)
    return max(rows if max_rows is None else min(rows, max_rows), 1)
  rows = tf.cast(chunk_elements, tf.int32) // tf.maximum(num_centers, 1)
  return tf.maximum(rows if max_rows is None else tf.minimum(rows, max_rows),
                    1)


def _rows_for(centers, chunk_elements, points=None):
  """`chunk_rows` for `centers` (k, d): a Python int when k is static.

  Sparse `points` take chunks of all the rows `chunk_elements` allows,
  up to `ops.sparse.CHUNK_ENTRIES` stored values at their average density
  (a chunk copies its entries): MAX_CHUNK_ROWS suits a dense GEMM's cache,
  while TensorFlow's CSR product runs faster on fewer, larger chunks
  (benchmarks/README.md, "Results with points in CSR form").
  """
  k = centers.shape[0]
  k = k if k is not None else tf.shape(centers)[0]
  if points is None or not sparse_lib.is_sparse(points):
    return chunk_rows(k, chunk_elements)
  return tf.minimum(chunk_rows(k, chunk_elements, None),
                    sparse_lib.rows_holding(points,
                                            sparse_lib.CHUNK_ENTRIES))


def nearest_centers(points, centers, distance_metric,
                    chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS,
                    point_norms=None, static_chunks=True):
  """Index of and distance to the nearest center for every point.

  Ties go to the lowest center index. Memory holds at most `chunk_elements`
  distances at a time.

  Args:
    points: float Tensor of shape (n, d).
    centers: float Tensor of shape (k, d).
    distance_metric: 'squared_euclidean' or 'cosine'.
    chunk_elements: bound on the number of distances held at once.
    point_norms: optional float Tensor (n,), the points' |x|^2 (squared
      Euclidean only, with static_chunks=False), computed once by a caller
      that assigns the same points many times: each call then skips that
      pass over the data.
    static_chunks: whether every chunk has the same static shape, as TFLite
      needs (`_map_row_chunks`); False gives a loop that TFLite cannot
      convert but that runs faster, and int32 indices.

  Returns:
    (indices, distances): int64 (int32 without `static_chunks`) Tensor of
    shape (n,) and float Tensor of shape (n,), the distance in the metric
    (squared for Euclidean).
  """
  scaled_centers, offsets = _argmin_terms(centers, distance_metric)
  index_dtype = tf.int64 if static_chunks else tf.int32

  def nearest(chunk, chunk_norms=None):
    scores = _scores(chunk, scaled_centers, offsets)
    # int32: TensorFlow's argmin runs faster with it than with int64.
    index = tf.argmin(scores, axis=1, output_type=tf.int32)
    # The winner's score by index: cheaper than a second pass (reduce_min).
    best = tf.gather(scores, index, axis=1, batch_dims=1)
    if distance_metric != constants.COSINE_DISTANCE:
      best += squared_norms(chunk) if chunk_norms is None else chunk_norms
    return tf.cast(index, index_dtype), tf.maximum(best, 0.0)

  rows = _rows_for(centers, chunk_elements, points)
  # Sparse points take the loop of dynamic chunks (not for TFLite anyway).
  if not static_chunks or sparse_lib.is_sparse(points):
    return concat_over_row_chunks(nearest, points, rows,
                                   (index_dtype, points.dtype), point_norms)
  if point_norms is not None:
    raise ValueError('`point_norms` goes with static_chunks=False.')
  return _map_row_chunks(nearest, points, rows, (tf.int64, points.dtype), [])


def nearest_indices(points, centers,
                    chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS):
  """Index of the nearest center (squared Euclidean) for every point, and
  whether every point's distance to it is finite.

  For prediction, which returns indices but must still report distances
  that overflow the dtype. Rather than each point's distance (|x|^2 and the
  winner's score: a further pass over the points), each chunk keeps only the sum of its points' |x|^2 (one fused
  reduction). If (sqrt(that sum) + the largest |c|) ^ 2 stays below a
  quarter of the dtype's largest value, no distance of the chunk can
  overflow. Only where that bound fails (NaN or Inf in the points, or
  magnitudes near the dtype's limit) are the exact distances computed, in a
  second pass, and checked. Ties go to the lowest center index.

  Args:
    points: float Tensor (n, d).
    centers: float Tensor (k, d).
    chunk_elements: bound on the number of scores held at once.

  Returns:
    (indices, finite): int32 Tensor (n,) and a bool scalar Tensor, True
    when every nearest distance is finite, as `nearest_centers` computes
    them.
  """
  scaled_centers, offsets = _argmin_terms(centers,
                                          constants.SQUARED_EUCLIDEAN_DISTANCE)

  def nearest(chunk):
    scores = _scores(chunk, scaled_centers, offsets)
    return (tf.argmin(scores, axis=1, output_type=tf.int32),
            tf.reduce_sum(squared_norms(chunk))[tf.newaxis])

  rows = _rows_for(centers, chunk_elements, points)
  indices, sums = concat_over_row_chunks(nearest, points, rows,
                                         (tf.int32, points.dtype))
  largest_center = tf.sqrt(tf.reduce_max(squared_norms(centers)))
  bound = tf.square(tf.sqrt(tf.reduce_max(sums)) + largest_center)

  def exact():
    distances = nearest_centers(points, centers,
                                constants.SQUARED_EUCLIDEAN_DISTANCE,
                                chunk_elements, static_chunks=False)[1]
    return tf.reduce_all(tf.math.is_finite(distances))

  # NaN fails the comparison too, and goes to the exact check.
  finite = tf.cond(bound < points.dtype.max / 4, lambda: tf.constant(True),
                   exact)
  return indices, finite


def nearest_other_center(centers,
                         chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS):
  """Squared Euclidean distance from each center to its nearest OTHER one.

  Computed in chunks of centers against all of them, so that at most
  `chunk_elements` center-to-center distances exist at once: the k x k
  matrix is never formed (k = 20,000 would make it 1.6 GB in float32, and
  its temporaries several times that). Each chunk's distances are what the
  whole matrix's rows would hold, so the result does not depend on
  `chunk_elements`.

  Args:
    centers: float Tensor of shape (k, d).
    chunk_elements: bound on the number of distances held at once.

  Returns:
    float Tensor of shape (k,), clamped at 0; +inf for every center when
    k = 1 (no other center). Coinciding centers are at distance 0.
  """
  k = tf.shape(centers)[0]
  infinity = tf.constant(float('inf'), centers.dtype)
  center_norms = squared_norms(centers)

  def nearest_other(chunk, chunk_index):
    between = pairwise_distances(chunk, centers,
                                 constants.SQUARED_EUCLIDEAN_DISTANCE,
                                 tf.gather(center_norms, chunk_index))
    itself = tf.equal(tf.range(k)[tf.newaxis, :], chunk_index[:, tf.newaxis])
    return (tf.reduce_min(tf.where(itself, infinity, between), axis=1),)

  return concat_over_row_chunks(
      nearest_other, centers, _rows_for(centers, chunk_elements),
      (centers.dtype,), tf.range(k))[0]


def inference_chunk_rows(num_features, num_centers, itemsize,
                         all_distances=False, top_k=None,
                         budget_bytes=constants.INFERENCE_CHUNK_BYTES):
  """Rows of the chunks that prediction and evaluation read data in.

  A chunk's rows cost memory for their copy of the input (d values), the
  outputs computed for them, and the temporaries in between: with
  'all_distances', k distances and about three more k-wide temporaries of
  the expansion (so 4 k values); with top_k, its indices and distances; and
  the index. The nearest-center search itself holds a bounded number of
  scores whatever the rows (`nearest_centers`). The rows are what fits in
  `budget_bytes`, at least 1, and a multiple of 16 from 16 up, so that
  every chunk of an array after its first starts 64-byte aligned when the
  first does (a chunk can then share the array's memory).

  Args:
    num_features: d.
    num_centers: k.
    itemsize: bytes per value of the float dtype.
    all_distances: whether the chunk's distances to every center are
      computed.
    top_k: None, or the number of nearest centers kept per point.
    budget_bytes: the memory a chunk may take.

  Returns:
    A positive Python int.
  """
  per_row = num_features * itemsize + 8
  if all_distances:
    per_row += 4 * num_centers * itemsize
  if top_k is not None:
    per_row += top_k * (8 + itemsize)
  rows = max(budget_bytes // per_row, 1)
  return rows - rows % 16 if rows >= 16 else rows


# Chunks of sparse points a chunked loop runs at once (see
# `concat_over_row_chunks`); dense ones keep tf.while_loop's default.
SPARSE_CHUNKS_IN_FLIGHT = 2


def _in_flight(points):
  """parallel_iterations of a loop over row chunks of `points`."""
  return SPARSE_CHUNKS_IN_FLIGHT if sparse_lib.is_sparse(points) else 10


def concat_over_row_chunks(fn, points, rows, dtypes, *per_point,
                           element_shape=(None,)):
  """fn(chunk, *chunk_values) -> (a (m,), ...) over chunks of `rows`
  points (the last one shorter), concatenated in row order. `points` may
  also be a vector (of row indices, say), or sparse points (`ops.sparse`,
  converted to `CsrPoints` once, so that each chunk is found in O(1)); the
  results may have more dimensions (`element_shape`, (m, ...)).

  Chunks run in parallel iterations of one loop: one chunk's argmin
  overlaps the next one's product. Sparse points run at most
  `SPARSE_CHUNKS_IN_FLIGHT` chunks at once: each holds its own copy of its
  entries (and their CSR form), so the loop's default of ten would hold
  ten chunks' memory, most of the points when they are a few chunks.
  """
  if sparse_lib.is_sparse(points):
    points = sparse_lib.as_csr(points)
  n = sparse_lib.num_rows(points)
  num_chunks = tf.maximum((n + rows - 1) // rows, 1)
  parts = [tf.TensorArray(dtype, size=num_chunks, infer_shape=False,
                          element_shape=tf.TensorShape(list(element_shape)))
           for dtype in dtypes]

  def body(i, *parts):
    start = i * rows
    results = fn(sparse_lib.rows(points, start, start + rows),
                 *(None if values is None else values[start:start + rows]
                   for values in per_point))
    return (i + 1,) + tuple(p.write(i, r) for p, r in zip(parts, results))

  _, *parts = tf.while_loop(lambda i, *_: i < num_chunks, body,
                            (tf.constant(0), *parts),
                            parallel_iterations=_in_flight(points))
  return tuple(part.concat() for part in parts)


def _map_row_chunks(fn, points, rows, dtypes, trailing_shape):
  """fn(chunk) -> (a, b) over row chunks, the results in row order.

  Every chunk has exactly `rows` rows, so the loop's shapes are static
  (TFLite converts it): the last chunk is the last `rows` points,
  overlapping the one before it. One chunk (no loop) when the points fit.

  Args:
    fn: function of a (rows, d) chunk returning two Tensors whose first
      dimension is the chunk's rows and whose other dimensions are
      `trailing_shape`.
    points: float Tensor (n, d).
    rows: rows per chunk, a Python int or a scalar Tensor.
    dtypes: the dtypes of fn's two results.
    trailing_shape: list, their shape past the first dimension.
  """

  def chunked(points):
    n = tf.shape(points)[0]
    num_chunks = (n + rows - 1) // rows
    last_start = n - rows
    element_shape = tf.TensorShape(
        [rows if isinstance(rows, int) else None] + trailing_shape)
    parts = tuple(tf.TensorArray(dtype, size=num_chunks,
                                 element_shape=element_shape)
                  for dtype in dtypes)

    def body(i, *parts):
      start = tf.minimum(i * rows, last_start)
      results = fn(points[start:start + rows])
      return (i + 1,) + tuple(p.write(i, r) for p, r in zip(parts, results))

    _, *parts = tf.while_loop(lambda i, *_: i < num_chunks, body,
                              (tf.constant(0), *parts))
    # Chunks 0..m-2 in full, then the part of the last chunk past them.
    head = (num_chunks - 1) * rows

    def assemble(part):
      stacked = part.stack()
      return tf.concat([tf.reshape(stacked[:-1], [-1] + trailing_shape),
                        stacked[-1][head - last_start:]], axis=0)

    return tuple(assemble(part) for part in parts)

  static_n = points.shape[0]
  if static_n is not None and isinstance(rows, int):
    return fn(points) if static_n <= rows else chunked(points)
  return tf.cond(tf.shape(points)[0] <= rows, lambda: fn(points),
                 lambda: chunked(points))


def cluster_statistics(points, centers, distance_metric,
                       chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS,
                       weights=None):
  """Per-cluster sums and counts of the points nearest to each center.

  These are the sufficient statistics of a Lloyd or mini-batch update; adding
  them over batches (or replicas) gives the statistics of the union.

  Args:
    points: float Tensor of shape (n, d).
    centers: float Tensor of shape (k, d).
    distance_metric: 'squared_euclidean' or 'cosine'.
    chunk_elements: bound on the number of distances held at once.
    weights: optional float Tensor of shape (n,), non-negative sample
      weights: a point of weight w counts as w copies of it in the sums,
      counts and loss (None: every weight is 1, and no work is added).

  Returns:
    (sums, counts, loss): float Tensor of shape (k, d), the (weighted) sum of
    the points assigned to each center; float Tensor of shape (k,), their
    number (total weight); float scalar, the (weighted) sum over points of
    the distance to the nearest center.
  """
  scaled_centers, offsets = _argmin_terms(centers, distance_metric)
  add_point_norms = distance_metric != constants.COSINE_DISTANCE

  def chunk_statistics(chunk, chunk_weights=None):
    return _assign_and_sum(_scores(chunk, scaled_centers, offsets), chunk,
                           add_point_norms, chunk_weights)

  rows = _rows_for(centers, chunk_elements, points)

  def zeros():
    k = tf.shape(centers)[0]
    return (tf.zeros([k, sparse_lib.num_columns(points)], points.dtype),
            tf.zeros([k], points.dtype), tf.zeros([], points.dtype))

  return _sum_over_row_chunks(chunk_statistics, points, weights, rows, zeros)


def squared_norms(points):
  """|x|^2 of every point: (n,) (dense or sparse points)."""
  return sparse_lib.squared_norms(points)


def squared_norms_in_chunks(points,
                            chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS):
  """`squared_norms` computed chunk by chunk: squaring all the points at
  once would hold a squared copy of them (256 MB for 1,000,000 x 64
  float32) until the sum. Sparse points are taken by pieces of their
  stored values (`ops.sparse.squared_norms`), not by rows: a chunk of
  rows would be a copy of those rows' entries."""
  if sparse_lib.is_sparse(points):
    return sparse_lib.squared_norms(points)
  return concat_over_row_chunks(
      lambda chunk: (squared_norms(chunk),), points,
      chunk_rows(1, chunk_elements), (points.dtype,))[0]


def _sum_over_row_chunks(fn, points, weights, rows, zeros):
  """fn(chunk, chunk_weights) summed over chunks of `rows` points (the last
  one shorter); one call, no loop, when the points fit in one chunk.

  Args:
    fn: function of a chunk of points and its weights (or None) returning a
      tuple of Tensors that add up over chunks.
    points: float Tensor (n, d).
    weights: optional float Tensor (n,).
    rows: rows per chunk, a Python int or a scalar Tensor.
    zeros: function returning the tuple of zeros that sums start from.
  """
  if sparse_lib.is_sparse(points):
    points = sparse_lib.as_csr(points)
  static_n = points.shape[0]
  if static_n is not None and isinstance(rows, int) and static_n <= rows:
    return fn(points, weights)
  n = sparse_lib.num_rows(points)

  def body(start, totals):
    stats = fn(sparse_lib.rows(points, start, start + rows),
               None if weights is None else weights[start:start + rows])
    return start + rows, tuple(a + b for a, b in zip(totals, stats))

  _, totals = tf.while_loop(lambda start, _: start < n, body,
                            (tf.constant(0), zeros()),
                            parallel_iterations=_in_flight(points))
  return totals


def restart_statistics(points, centers, distance_metric,
                       chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS,
                       weights=None):
  """`cluster_statistics` for R sets of k centers (restarts) in one pass.

  Every chunk of points is scored against all R * k centers in ONE matrix
  product (m, d) x (d, R k); each set then takes the argmin over its own k
  columns and sums its own statistics. So R restarts read the data once,
  and the product is as wide as one run with R k centers. Set r gives what
  `cluster_statistics(points, centers[r], ...)` gives (up to the rounding
  of the wider product), ties to the lower center index within the set.
  Chunks have the rows of one set's (chunk_elements // k), so memory holds
  at most R x `chunk_elements` scores at once: narrower chunks would cost
  more loop iterations than the product saves.

  Args:
    points: float Tensor of shape (n, d).
    centers: float Tensor of shape (R, k, d), R and k static.
    distance_metric: 'squared_euclidean' or 'cosine'.
    chunk_elements: bound on the number of distances held at once.
    weights: optional float Tensor of shape (n,), non-negative sample
      weights (see `cluster_statistics`).

  Returns:
    (sums, counts, loss): float Tensors of shape (R, k, d), (R, k) and (R,),
    set r's as `cluster_statistics` returns them.
  """
  num_sets = int(centers.shape[0])
  # k is static unless the centers' shape leaves it dynamic (shared traces).
  k = centers.shape[1]
  k = int(k) if k is not None else tf.shape(centers)[1]
  flat = tf.reshape(centers, [num_sets * k, -1])
  scaled_centers, offsets = _argmin_terms(flat, distance_metric)
  add_point_norms = distance_metric != constants.COSINE_DISTANCE

  def chunk_statistics(chunk, chunk_weights=None):
    scores = tf.reshape(_scores(chunk, scaled_centers, offsets),
                        [-1, num_sets, k])
    index = tf.argmin(scores, axis=2, output_type=tf.int32)  # (m, R)
    best = tf.gather(scores, index, axis=2, batch_dims=2)  # (m, R)
    if add_point_norms:
      best += squared_norms(chunk)[:, tf.newaxis]
    parts = [segment_statistics(chunk, index[:, r], best[:, r], k,
                                chunk_weights) for r in range(num_sets)]
    return tuple(tf.stack(part) for part in zip(*parts))

  def zeros():
    return (tf.zeros([num_sets, k, sparse_lib.num_columns(points)],
                     points.dtype),
            tf.zeros([num_sets, k], points.dtype),
            tf.zeros([num_sets], points.dtype))

  return _sum_over_row_chunks(chunk_statistics, points, weights,
                              chunk_rows(k, chunk_elements), zeros)


def _assign_and_sum(scores, chunk, add_point_norms, weights=None):
  """Statistics of one chunk from its scores (m, k) (see `_scores`).

  The argmin runs on TensorFlow's multi-threaded kernel; the sums and counts
  in one XLA-fused pass (TensorFlow's CPU unsorted_segment_sum costs as much
  as the GEMM itself).
  """
  index = tf.argmin(scores, axis=1, output_type=tf.int32)
  best = tf.gather(scores, index, axis=1, batch_dims=1)
  if add_point_norms:
    best += squared_norms(chunk)
  return segment_statistics(chunk, index, best,
                            scores.shape[1] or tf.shape(scores)[1],
                            weights)


def segment_statistics(points, index, distances, num_centers, weights=None):
  """(sums (k, d), counts (k,), loss) of points assigned by `index`.

  One XLA-fused pass (TensorFlow's CPU unsorted_segment_sum costs as much
  as the distance GEMM itself).

  Args:
    points: float Tensor (n, d).
    index: int32 Tensor (n,), each point's center.
    distances: float Tensor (n,), each point's distance to it (negative
      rounding is clamped to 0 in the loss).
    num_centers: k, a Python int or a scalar Tensor.
    weights: optional float Tensor (n,) of sample weights: sums, counts and
      loss are then weighted (sum of w x, sum of w, sum of w * distance).
  """
  # The number of segments is a compile-time constant of the XLA function:
  # compiled for k rounded up (`padded_segments`), then cut to k. Each
  # segment sums its points in the same order whatever the padding, so
  # every k, static or a Tensor, gets the sums of an unpadded pass.
  if sparse_lib.is_sparse(points):
    # A segment sum of the stored values (`ops.sparse`), not XLA-compiled.
    return _sparse_segment_statistics(points, index, distances, num_centers,
                                      weights)
  padded = padded_segments(num_centers)
  if weights is not None:
    stats = _weighted_segment_statistics_xla(points, index, distances,
                                             weights, padded)
  else:
    stats = _segment_statistics_xla(points, index, distances, padded)
  sums, counts, loss = stats
  return sums[:num_centers], counts[:num_centers], loss


def padded_segments(num_centers):
  """k rounded up to a power of two, at least `constants.MIN_SEGMENTS`:
  the number of segments XLA-compiled sums are compiled for, so that models
  of many k (a choose-k loop) share a few compilations. A Python int for a
  Python int k, else an int32 Tensor."""
  if isinstance(num_centers, int):
    return max(constants.MIN_SEGMENTS,
               1 << max(num_centers - 1, 0).bit_length())
  v = tf.cast(num_centers, tf.int32) - 1
  for shift in (1, 2, 4, 8, 16):
    v = tf.bitwise.bitwise_or(v, tf.bitwise.right_shift(v, shift))
  return tf.maximum(constants.MIN_SEGMENTS, v + 1)


def _segment_statistics(points, index, distances, num_centers):
  sums = tf.math.unsorted_segment_sum(points, index, num_centers)
  counts = tf.math.unsorted_segment_sum(tf.ones_like(distances), index,
                                        num_centers)
  return sums, counts, tf.reduce_sum(tf.maximum(distances, 0.0))


def _sparse_segment_statistics(points, index, distances, num_centers,
                               weights=None):
  sums = sparse_lib.segment_sums(points, index, num_centers, weights)
  ones = tf.ones_like(distances) if weights is None else tf.cast(
      weights, distances.dtype)
  counts = tf.math.unsorted_segment_sum(ones, index, num_centers)
  return sums, counts, tf.reduce_sum(ones * tf.maximum(distances, 0.0))


_segment_statistics_xla = tf.function(_segment_statistics, jit_compile=True,
                                      autograph=False)


def _weighted_segment_statistics(points, index, distances, weights,
                                 num_centers):
  weights = tf.cast(weights, points.dtype)
  sums = tf.math.unsorted_segment_sum(points * weights[:, tf.newaxis], index,
                                      num_centers)
  counts = tf.math.unsorted_segment_sum(weights, index, num_centers)
  return sums, counts, tf.reduce_sum(weights * tf.maximum(distances, 0.0))


_weighted_segment_statistics_xla = tf.function(
    _weighted_segment_statistics, jit_compile=True, autograph=False)


def euclidean_distances(squared_distances):
  """Euclidean distances from squared ones, safe against rounding below 0."""
  return numerics.clamped_sqrt(squared_distances)


def smallest_k(distances, k):
  """The `k` smallest distances of each row, and their columns.

  Sorted nearest first; equal distances go to the lower index (`tf.math.top_k`
  is stable).

  Args:
    distances: float Tensor of shape (n, m).
    k: Python int, 1 <= k <= m.

  Returns:
    (indices, distances): int64 Tensor of shape (n, k) and float Tensor of
    shape (n, k).
  """
  # TFLite's TopKV2 gives int32 indices; int64 is the legacy index dtype.
  negated, index = tf.math.top_k(-distances, k=k, sorted=True)
  return tf.cast(index, tf.int64), -negated


def top_k_nearest(points, centers, distance_metric, k,
                  chunk_elements=constants.DEFAULT_CHUNK_ELEMENTS):
  """Indices of and distances to the `k` nearest centers of every point.

  Sorted nearest first; equal distances go to the lower center index, so the
  first column is the index `nearest_centers` gives (the same scores, the same
  tie rule). Points are processed in chunks of `chunk_elements // k_centers`
  rows (at least one), so at most `chunk_elements` point-to-center distances
  exist at once; every chunk has the same static size (the last one overlaps
  the one before it), which keeps the loop convertible by TFLite.

  Args:
    points: float Tensor of shape (n, d), prepared for the metric (see the
      module docstring).
    centers: float Tensor of shape (num_centers, d), same dtype.
    distance_metric: 'squared_euclidean' or 'cosine'.
    k: Python int, 1 <= k <= num_centers (the caller validates it).
    chunk_elements: bound on the number of distances held at once.

  Returns:
    (indices, distances): int64 Tensor of shape (n, k) and float Tensor of
    shape (n, k), distances in the metric (squared for Euclidean), clamped
    at 0.
  """
  scaled_centers, offsets = _argmin_terms(centers, distance_metric)
  add_point_norms = distance_metric != constants.COSINE_DISTANCE

  def nearest_k(chunk):
    # score = distance - |x|^2 (Euclidean) or the distance itself (cosine):
    # the order over centers is the distances' order.
    scores = sparse_lib.matmul(
        chunk, scaled_centers, transpose_b=True,
        block_entries=sparse_lib.PRODUCT_ENTRIES) + offsets
    index, best = smallest_k(scores, k)
    if add_point_norms:
      best += squared_norms(chunk)[:, tf.newaxis]
    return index, tf.maximum(best, tf.zeros_like(best))

  rows = _rows_for(centers, chunk_elements, points)
  if sparse_lib.is_sparse(points):
    return concat_over_row_chunks(nearest_k, points, rows,
                                  (tf.int64, points.dtype),
                                  element_shape=(None, k))
  return _map_row_chunks(nearest_k, points, rows, (tf.int64, points.dtype),
                         [k])
