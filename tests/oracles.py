"""Shared test oracles: exact float64 numpy k-means, and the legacy model dirs.

Every test module that needs a numpy reference takes it from here, so that a
fix to an oracle reaches every test at once.
"""

import pathlib
import shutil
import stat

import numpy as np

SQUARED_EUCLIDEAN = 'squared_euclidean'
COSINE = 'cosine'
# The sweep of the numpy-oracle tests: metric x dtype x mode.
METRICS = (SQUARED_EUCLIDEAN, COSINE)
DTYPES = (np.float32, np.float64)
MODES = ('full_batch', 'mini_batch')

LEGACY_DIR = (pathlib.Path(__file__).parent / 'fixtures' /
              'legacy_estimator_model_dirs')


def normalize(x):
  """Rows scaled to unit L2 norm in float64; zero rows stay zero."""
  x = np.asarray(x, np.float64)
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  return np.where(norms > 0, x / np.where(norms > 0, norms, 1.), 0.)


def distances(points, centers, metric=SQUARED_EUCLIDEAN):
  """(n, k) float64 distances: squared Euclidean, or 1 - cos(x, c)."""
  x = np.asarray(points, np.float64)
  c = np.asarray(centers, np.float64)
  if metric == COSINE:
    return 1. - normalize(x) @ normalize(c).T
  return ((x[:, None, :] - c[None, :, :])**2).sum(-1)


def inertia(points, centers, metric=SQUARED_EUCLIDEAN):
  """Sum over points of the distance to the nearest center."""
  return distances(points, centers, metric).min(axis=1).sum()


def lloyd(points, centers, iterations):
  """Exact Lloyd iterations (squared Euclidean) in float64.

  An empty cluster keeps its center.

  Returns:
    (centers after the iterations, losses before each iteration).
  """
  points = np.asarray(points, np.float64)
  centers = np.asarray(centers, np.float64).copy()
  losses = []
  for _ in range(iterations):
    d2 = distances(points, centers)
    index = d2.argmin(1)
    losses.append(d2[np.arange(len(points)), index].sum())
    for j in range(len(centers)):
      members = points[index == j]
      if len(members):
        centers[j] = members.mean(0)
  return centers, losses


def snapshot(model_dir):
  """{relative path: bytes} of every file under model_dir; None if absent."""
  root = pathlib.Path(model_dir)
  if not root.exists():
    return None
  return {str(p.relative_to(root)): p.read_bytes()
          for p in sorted(root.rglob('*')) if p.is_file()}


def copy_legacy(name, tmp_path):
  """Copies a legacy model dir into tmp_path and makes it writable."""
  dst = pathlib.Path(tmp_path) / name
  shutil.copytree(LEGACY_DIR / name, dst)
  for path in [dst, *dst.iterdir()]:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
  return dst


def relocating_lloyd_step(points, centers, metric=SQUARED_EUCLIDEAN):
  """One Lloyd step with empty_cluster='farthest_point', in float64.

  scikit-learn's relocation: the i-th empty cluster (by index) takes the
  i-th point farthest from its nearest center (ties to the lower row),
  which leaves its cluster; nothing moves when every point is on its
  center. A cluster left with no point keeps its center.

  Returns:
    (new centers (k, d), sizes (k,) after relocation, number relocated).
  """
  x = normalize(points) if metric == COSINE else np.asarray(points,
                                                            np.float64)
  c = np.asarray(centers, np.float64)
  d = distances(x, c, metric)
  labels = d.argmin(1)
  far = d[np.arange(len(x)), labels]
  k = len(c)
  sums = np.zeros_like(c)
  np.add.at(sums, labels, x)
  counts = np.bincount(labels, minlength=k).astype(np.float64)
  empty = np.flatnonzero(counts == 0)
  relocated = 0
  if len(empty) and len(x) and far.max() > 0:
    order = np.argsort(-far, kind='stable')
    for e, i in zip(empty, order):
      sums[labels[i]] -= x[i]
      counts[labels[i]] -= 1
      sums[e] = x[i]
      counts[e] = 1
      relocated += 1
  new = c.copy()
  moved = counts > 0
  new[moved] = sums[moved] / counts[moved, None]
  if metric == COSINE:
    new[moved] = normalize(new[moved])
  return new, counts, relocated


def blobs(n, k, d, seed=0):
  """float32 array (n, d): n points around k centers drawn uniformly in
  [-10, 10]^d, each with unit Gaussian noise (the center of each point
  uniform at random)."""
  rng = np.random.default_rng(seed)
  centers = rng.uniform(-10, 10, (k, d))
  labels = rng.integers(0, k, n)
  return (centers[labels] + rng.normal(0, 1, (n, d))).astype(np.float32)
