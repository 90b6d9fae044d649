"""Test-session setup: two logical CPU devices, for tf.distribute tests,
and the slow tests first.

`MirroredStrategy` over two devices of one machine is tested on CPUs split
with `tf.config.set_logical_device_configuration`, which must happen before
TensorFlow initialises its devices: that is, here, before any test runs.
Other tests are unaffected (ops still run on /CPU:0 by default).
"""

import tensorflow as tf

_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(),
               tf.config.LogicalDeviceConfiguration()])


def pytest_collection_modifyitems(config, items):
  """Runs the docs tests first (one per Markdown file, the longest: up to
  two minutes), then the other tests marked `slow`, then the rest, each
  group in its collected order.

  Under `-n 2` (pytest-xdist) a worker that picks up a test of a minute or
  two near the end keeps the run going alone; started first, the long
  tests overlap, and the many short ones fill in the end.
  """
  del config  # Unused.
  items.sort(key=lambda item: (item.get_closest_marker('slow') is None,
                               not item.nodeid.startswith('tests/docs/')))
