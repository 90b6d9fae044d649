"""Input adapters: what users pass to train/evaluate/predict (arrays,
Tensors, dicts of features, `tf.data.Dataset`s, input_fns, files) read into
the batches of points the model computes with."""
