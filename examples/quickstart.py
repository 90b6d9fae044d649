"""The legacy TensorFlow KMeans documentation example, with only the import changed.

The original used `tf.compat.v1.estimator.experimental.KMeans`; here the
estimator comes from kmeans_estimator. It clusters 100 uniform 2-D points into
5 clusters with ten rounds of train / cluster_centers / score, then assigns
every point to its cluster. The body of `main` is the legacy example's code
as it was.

  python examples/quickstart.py
"""

from absl import app

# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  # Imported here, so that --help answers at once, without TensorFlow.
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf

  from kmeans_estimator import KMeansClustering as KMeans
  # pylint: enable=g-import-not-at-top

  num_points = 100
  dimensions = 2
  points = np.random.uniform(0, 1000, [num_points, dimensions])

  def input_fn():
    return tf.compat.v1.train.limit_epochs(
        tf.convert_to_tensor(points, dtype=tf.float32), num_epochs=1)

  num_clusters = 5
  kmeans = KMeans(num_clusters=num_clusters, use_mini_batch=False)

  # train
  num_iterations = 10
  previous_centers = None
  for _ in range(num_iterations):
    kmeans.train(input_fn)
    cluster_centers = kmeans.cluster_centers()
    if previous_centers is not None:
      print('delta:', cluster_centers - previous_centers)
    previous_centers = cluster_centers
    print('score:', kmeans.score(input_fn))
  print('cluster centers:', cluster_centers)

  # map the input points to their clusters
  cluster_indices = list(kmeans.predict_cluster_index(input_fn))
  for i, point in enumerate(points):
    cluster_index = cluster_indices[i]
    center = cluster_centers[cluster_index]
    print('point:', point, 'is in cluster', cluster_index, 'centered at',
          center)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
