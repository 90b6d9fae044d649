"""Pure TensorFlow k-means maths: no I/O, no absl, no model_dir."""
