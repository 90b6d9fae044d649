"""Clusters of a small network's embeddings as a feature of a classifier.

scikit-learn's 8 x 8 digits (1,797 images) are split into training and
test images. A small Keras autoencoder (64 pixels -> `--embedding_dim` ->
64) learns an embedding of the training images without their labels; a
`KMeansLayer` adapted on the training embeddings groups them into
`--num_clusters` clusters. Two Keras classifiers are then trained on the
same training images, each a softmax over features of the (frozen)
embedding:

- without: the embedding alone (a linear classifier of the embedding);
- with: the embedding and the layer's one-hot output (which cluster the
  image falls in), concatenated: the k-means layer sits inside the
  functional model, between the encoder and the classifier.

The script prints both test accuracies. A one-hot cluster feature lets a
linear classifier draw boundaries the embedding alone cannot, so the
second is usually the higher.

Needs scikit-learn (the digits; the `examples` extra):

  pip install 'kmeans_estimator[examples]'
  python examples/digits_embedding.py
"""

import importlib.util
import sys

from absl import app
from absl import flags
import numpy as np

_NUM_CLUSTERS = flags.DEFINE_integer(
    'num_clusters', 30, 'k, the clusters of the embeddings.')
_EMBEDDING_DIM = flags.DEFINE_integer('embedding_dim', 8,
                                      'Width of the embedding.')
_AUTOENCODER_EPOCHS = flags.DEFINE_integer(
    'autoencoder_epochs', 40, 'Epochs of the autoencoder.')
_CLASSIFIER_EPOCHS = flags.DEFINE_integer(
    'classifier_epochs', 60, 'Epochs of each classifier.')
_TEST_FRACTION = flags.DEFINE_float(
    'test_fraction', 0.25, 'Share of the images held out for testing.')
_SEED = flags.DEFINE_integer(
    'seed', 0, 'Seed of the split, the networks and the k-means layer.')
_OUTPUT = flags.DEFINE_string(
    'output', None, 'If set, save the classifier with the k-means layer to '
    'this .keras file (and check that it loads with the same predictions).')

NUM_CLASSES = 10
# What prints the usage and exits 0 (absl's own --help exits 1).
HELP_ARGS = frozenset({'-h', '-?', '--help', '--helpshort', '--helpfull'})


def parse_flags(argv):
  """absl's flag parsing, except that the help flags print the usage to
  stdout and exit 0 at once: nothing is imported or trained."""
  if HELP_ARGS.intersection(argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True,
              exitcode=0)
  return app.parse_flags_with_usage(argv)


def split(images, labels, test_fraction, seed):
  """(train images, train labels, test images, test labels), shuffled."""
  order = np.random.default_rng(seed).permutation(len(images))
  num_test = int(round(test_fraction * len(images)))
  test, train = order[:num_test], order[num_test:]
  return images[train], labels[train], images[test], labels[test]


def autoencoder_encoder(num_pixels, embedding_dim):
  """(autoencoder, encoder): the encoder maps pixels to the embedding."""
  import keras  # pylint: disable=g-import-not-at-top
  pixels = keras.Input(shape=(num_pixels,), name='pixels')
  hidden = keras.layers.Dense(32, activation='relu')(pixels)
  embedding = keras.layers.Dense(embedding_dim, name='embedding')(hidden)
  decoded = keras.layers.Dense(32, activation='relu')(embedding)
  decoded = keras.layers.Dense(num_pixels, activation='sigmoid')(decoded)
  return (keras.Model(pixels, decoded, name='autoencoder'),
          keras.Model(pixels, embedding, name='encoder'))


def classifier(encoder, kmeans=None):
  """A softmax over the frozen embedding (and the one-hot cluster)."""
  import keras  # pylint: disable=g-import-not-at-top
  pixels = keras.Input(shape=encoder.input_shape[1:], name='pixels')
  embedding = encoder(pixels)
  features = embedding
  if kmeans is not None:
    features = keras.layers.Concatenate(name='features')(
        [embedding, kmeans(embedding)])
  probabilities = keras.layers.Dense(NUM_CLASSES, activation='softmax')(
      features)
  model = keras.Model(pixels, probabilities)
  model.compile(optimizer=keras.optimizers.Adam(0.01),
                loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  return model


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if importlib.util.find_spec('sklearn') is None:
    sys.exit('examples/digits_embedding.py needs scikit-learn: pip install '
             "'kmeans_estimator[examples]'")
  # pylint: disable=g-import-not-at-top
  import keras
  from sklearn import datasets
  from kmeans_estimator.keras import KMeansLayer
  # pylint: enable=g-import-not-at-top
  keras.utils.set_random_seed(_SEED.value)
  digits = datasets.load_digits()
  images = (digits.data / 16.0).astype(np.float32)
  train_x, train_y, test_x, test_y = split(images, digits.target,
                                           _TEST_FRACTION.value, _SEED.value)

  autoencoder, encoder = autoencoder_encoder(images.shape[1],
                                             _EMBEDDING_DIM.value)
  autoencoder.compile(optimizer=keras.optimizers.Adam(0.01), loss='mse')
  history = autoencoder.fit(train_x, train_x, epochs=_AUTOENCODER_EPOCHS.value,
                            batch_size=64, verbose=0)
  encoder.trainable = False
  print(f'digits: {len(train_x)} training and {len(test_x)} test images; '
        f'autoencoder reconstruction error {history.history["loss"][-1]:.4f}')

  kmeans = KMeansLayer(_NUM_CLUSTERS.value, output_mode='one_hot',
                       seed=_SEED.value, name='kmeans')
  kmeans.adapt(encoder.predict(train_x, verbose=0))
  summary = kmeans.adapt_summary
  print(f'k-means of the embeddings: k={_NUM_CLUSTERS.value}, '
        f'{summary.steps} steps, inertia {summary.loss:.2f}')

  accuracies = {}
  models = {}
  for name, layer in (('without', None), ('with', kmeans)):
    model = classifier(encoder, layer)
    model.fit(train_x, train_y, epochs=_CLASSIFIER_EPOCHS.value,
              batch_size=64, verbose=0)
    accuracies[name] = model.evaluate(test_x, test_y, verbose=0)[1]
    models[name] = model
  print(f'test accuracy without the cluster feature: '
        f'{accuracies["without"]:.4f}')
  print(f'test accuracy with the one-hot cluster feature: '
        f'{accuracies["with"]:.4f}')

  if _OUTPUT.value:
    models['with'].save(_OUTPUT.value)
    loaded = keras.models.load_model(_OUTPUT.value)
    same = np.array_equal(loaded.predict(test_x, verbose=0),
                          models['with'].predict(test_x, verbose=0))
    print(f'wrote {_OUTPUT.value}; reloaded predictions identical: {same}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
