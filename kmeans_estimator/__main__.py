"""`python -m kmeans_estimator`: the `kmeans-estimator` command line."""

from kmeans_estimator.cli import app as cli

if __name__ == '__main__':
  cli.run()
