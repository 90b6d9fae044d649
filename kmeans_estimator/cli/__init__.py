"""The `kmeans-estimator` command line (an absl app): the only place with
flags; nothing in the library imports it. `app` holds the commands and the
entry points, `flags` the flags and their checks, `writers` the output
files."""
