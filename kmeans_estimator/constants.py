"""The legacy vocabulary, defined once.

These strings are part of the contract with users of TensorFlow's removed
`KMeans` estimator: option values, prediction keys and checkpoint variable
names. `KMeansClustering` and `KMeans` mirror them as class attributes.
"""

SQUARED_EUCLIDEAN_DISTANCE = 'squared_euclidean'
COSINE_DISTANCE = 'cosine'
DISTANCE_METRICS = (SQUARED_EUCLIDEAN_DISTANCE, COSINE_DISTANCE)

RANDOM_INIT = 'random'
KMEANS_PLUS_PLUS_INIT = 'kmeans_plus_plus'
KMC2_INIT = 'kmc2'
# Not in the legacy estimator: k-means|| (Bahmani et al. 2012, Spark's).
KMEANS_PARALLEL_INIT = 'kmeans_parallel'
INIT_METHODS = (RANDOM_INIT, KMEANS_PLUS_PLUS_INIT, KMC2_INIT,
                KMEANS_PARALLEL_INIT)

# Prediction and evaluation keys.
SCORE = 'score'
CLUSTER_INDEX = 'cluster_index'
ALL_DISTANCES = 'all_distances'
PREDICT_KEYS = (ALL_DISTANCES, CLUSTER_INDEX)
# Not legacy: the top_k nearest centers, sorted nearest first (asked for with
# `predict(top_k=...)`).
TOP_K_CLUSTER_INDICES = 'top_k_cluster_indices'
TOP_K_DISTANCES = 'top_k_distances'
TOP_K_PREDICT_KEYS = (TOP_K_CLUSTER_INDICES, TOP_K_DISTANCES)

# Checkpoint variable names, as the legacy graph named them.
CLUSTER_CENTERS_VAR_NAME = 'clusters'
INITIALIZED_VAR_NAME = 'initialized'
GLOBAL_STEP_VAR_NAME = 'global_step'
# Not in legacy checkpoints: the metric the centers were trained under.
DISTANCE_METRIC_VAR_NAME = 'distance_metric'
# The legacy graph created the mini-batch counts without a name, so TF called
# the variable 'Variable'; existing checkpoints depend on that.
CLUSTER_COUNTS_VAR_NAME = 'Variable'
UPDATED_CLUSTERS_VAR_NAME = 'clusters_updated'
UPDATE_IN_STEPS_VAR_NAME = 'update_in_steps'
# Not in legacy checkpoints: with num_restarts R > 1, every restart's centers,
# shape (R, k, d) (`clusters` holds the kept restart's).
RESTART_CLUSTERS_VAR_NAME = 'restart_clusters'

# Largest number of point-to-center distances held at once when only the
# nearest center is needed (4 MiB of float32).
DEFAULT_CHUNK_ELEMENTS = 1 << 20
# The memory that `predict`, `transform` and `evaluate` give one chunk of the
# data they read (its copy, outputs and temporaries; see
# `distances.inference_chunk_rows`): 64 MiB, so that with all_distances a
# chunk holds 200 points at k = 20,000, and 130,000 at k = 16.
INFERENCE_CHUNK_BYTES = 64 << 20
# Most rows per chunk, whatever chunk_elements allows: fewer rows leave the
# product of a chunk with the centers short of the GEMM's peak, more spill
# its scores out of the cache (benchmarks/README.md has the figures).
MAX_CHUNK_ROWS = 4096

# The fewest segments XLA-compiled per-cluster sums are compiled for (see
# `distances.padded_segments`): every k up to it shares one compilation.
MIN_SEGMENTS = 16

# Full-batch algorithms (the `algorithm` option): every distance each step,
# Hamerly's bounds, or Yinyang's grouped bounds. The variants themselves
# and the names they accept are in `algorithms.REGISTRY`.
LLOYD = 'lloyd'
HAMERLY = 'hamerly'
YINYANG = 'yinyang'

# What a full-batch step does with a cluster that no point is nearest to:
# keep its center (the legacy behaviour), or move it to the point farthest
# from its own center (scikit-learn's policy).
KEEP_EMPTY = 'keep'
FARTHEST_POINT = 'farthest_point'
EMPTY_CLUSTER_POLICIES = (KEEP_EMPTY, FARTHEST_POINT)
