"""Hamerly's algorithm: exact Lloyd steps that skip what bounds rule out.

The bounds and their maths are in `ops/bounds.py` (Hamerly 2010: one upper
bound and one lower bound per point). The step is exactly Lloyd's: the same
assignments (up to ties between equidistant centers closer than rounding),
sums, counts and loss. The bounds are per point, so every step needs the
same points in the same order (data in memory). Squared Euclidean distance
only, full batch, with or without sample weights (the bounds do not depend
on them); no restarts.
"""

from kmeans_estimator import constants
from kmeans_estimator.algorithms import base
from kmeans_estimator.ops import bounds
from kmeans_estimator.ops import carried as carried_lib


def init_state(points, centers, weights, options):
  """Bounds that prove nothing yet (the first step compares every point
  with every center), no sums yet, and the points' total squared norm.

  Returns:
    `bounds.HamerlyState`.
  """
  del centers  # Unused.
  return bounds.initial_state(points, options.num_clusters, weights)


def step(points, centers, state, weights, options):
  """One exact Lloyd step with Hamerly's bounds.

  Args:
    points: float Tensor (n, d), prepared, the same at every step.
    centers: float Tensor (k, d).
    state: `bounds.HamerlyState` of the previous step or `init_state`.
    weights: None or float Tensor (n,), those given to `init_state`.
    options: `base.Options`.

  Returns:
    (new_centers, state, stats): stats as `base.update_centers` gives them
    plus 'recomputed' (points compared with every center).
  """
  carried_lib.check_weights(state.statistics, weights)
  (sums, counts, loss), state, recomputed = bounds.hamerly_statistics(
      points, centers, state, options.chunk_elements, weights)
  # A relocation moves a center like any update, so the bounds still hold;
  # the carried sums stay those of the assignments.
  new_centers, stats = base.update_centers(
      centers, sums, counts, loss, options,
      lambda: base.farthest_candidates(points, centers, options),
      weights is not None)
  stats['recomputed'] = recomputed
  return new_centers, bounds.move_bounds(state, centers, new_centers), stats


ALGORITHM = base.Algorithm(
    name=constants.HAMERLY, init_state=init_state, step=step,
    needs_whole_data=True, metrics=(constants.SQUARED_EUCLIDEAN_DISTANCE,),
    fallback=constants.LLOYD, supports_sparse=True)
