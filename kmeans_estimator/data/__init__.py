"""Input adapters: what users pass to train/evaluate/predict (arrays,
Tensors, dicts of features, `tf.data.Dataset`s, input_fns, files) read into
the batches of points the model computes with.

One adapter per kind of input, one interface (`base.Points`) and one batch
type (`base.Batch`: points float (n, d), weights float (n,) or None):
- `adapters`: `read_points`, which hands what an input_fn returned to the
  adapter for its kind, and the calling of input_fns;
- `arrays`: data given whole (arrays, lists, Tensors, dicts of them):
  `TensorPoints` (one batch in memory) and `RowPoints` (read a chunk of
  rows at a time for inference, over `WholeRows`);
- `datasets`: `StreamPoints`, a finite or endless `tf.data.Dataset`;
- `sparse`: `tf.SparseTensor`s and scipy.sparse matrices, held in CSR form
  (`SparsePoints`, and datasets of SparseTensors as `StreamPoints`), never
  densified;
- `direct`: data given directly where an input_fn goes (`as_input_fn`,
  `DirectData` and where mini-batch training over them resumes);
- `features`: dict features, `feature_columns` and sample weights to points;
- `tensors`: arrays to Tensors in one aligned copy;
- `checks`: the checks on input data and the messages that mark them;
- `files`: CSV, TFRecord and .npy files for the command line;
- `inputs`: an index of the names the estimator uses.
"""
