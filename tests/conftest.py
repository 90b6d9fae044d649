"""Test-session setup: two logical CPU devices, for tf.distribute tests.

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
