"""The `kmeans-estimator` command line (an absl app): the only place with
flags; nothing in the library imports it."""
