"""The `kmeans-estimator` command line (an absl app): the only place with
flags; nothing in the library imports it. `app` holds the entry points and
the answers that need no TensorFlow (--help, --version, usage errors),
`flags` the flags and the checks on their values, `commands` the commands
(which import TensorFlow), `writers` the output files."""
