"""Restarts: R independent Lloyd runs moved by one pass, keeping the best.

scikit-learn's `n_init` runs k-means R times and keeps the run of lowest
inertia, reading the data R times per iteration. Here the R runs' centers
(R, k, d) are scored against every batch in one matrix product
(`distances.restart_statistics`), so one pass over the data gives every
restart's statistics, and each restart then takes its own Lloyd update.

The loss a pass measures is that of the centers before the update, so the
restart a step keeps is provisional: `best` after a last pass scores the
centers as they are and keeps the lowest. The functions are pure: the
`KMeans` module reads `restart_clusters`, calls them and assigns what comes
back (`clusters` is always the kept restart's centers).
"""

import tensorflow as tf

from kmeans_estimator.algorithms import base
from kmeans_estimator.ops import updates


def step(centers, sums, counts, losses, options, weighted=False):
  """One Lloyd update of every restart from their summed statistics.

  Args:
    centers: float Tensor (R, k, d), the centers the statistics were taken
      under.
    sums, counts, losses: (R, k, d), (R, k) and (R,), every restart's
      statistics (`statistics.restart_statistics`).
    options: `base.Options`.
    weighted: whether the statistics are weighted (see `base.step_stats`).

  Returns:
    (new_centers (R, k, d), kept (k, d), stats): kept is the updated
    centers of the restart whose loss before the update is the lowest (ties
    to the lower restart); stats are that restart's (`base.step_stats`)
    plus 'restart_losses' (R,) and 'best_restart' (int32).
  """
  # x_j <- (sum of the points nearest to x_j) / (their number), per
  # restart; an empty cluster keeps its center.
  new = tf.stack([
      updates.lloyd_update(centers[r], sums[r], counts[r],
                           options.distance_metric)
      for r in range(int(centers.shape[0]))])
  best = tf.argmin(losses, output_type=tf.int32)
  stats = base.step_stats(losses[best], counts[best], weighted=weighted)
  stats['restart_losses'] = losses
  stats['best_restart'] = best
  # Provisional: the losses of `new` are known only after another pass.
  return new, tf.gather(new, best), stats


def best(losses):
  """The restart of lowest loss (ties to the lower restart).

  Args:
    losses: float Tensor (R,), every restart's loss over the same data.

  Returns:
    dict with 'loss' (the lowest), 'restart_losses' (R,) and
    'best_restart' (int32).
  """
  index = tf.argmin(losses, output_type=tf.int32)
  return {'loss': losses[index], 'restart_losses': losses,
          'best_restart': index}
