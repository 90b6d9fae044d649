"""The registry of k-means variants: names, needs, and the one choice."""

import pytest

from kmeans_estimator import algorithms
from kmeans_estimator import config
from kmeans_estimator import errors


def test_registry_holds_every_variant():
  assert set(algorithms.REGISTRY) == {'lloyd', 'hamerly', 'yinyang',
                                      'minibatch'}
  assert algorithms.names() == ['lloyd', 'hamerly', 'yinyang']


def test_unknown_name_lists_the_accepted_ones():
  with pytest.raises(algorithms.UnknownAlgorithmError,
                     match=r"`algorithm` must be one of \['lloyd', 'hamerly', "
                     r"'yinyang'\]. Received: algorithm='elkan'"):
    algorithms.get('elkan')
  with pytest.raises(errors.InvalidArgumentError) as raised:
    config.check_algorithm('elkan', 'squared_euclidean', False)
  assert (raised.value.argument, raised.value.received) == ('algorithm',
                                                            'elkan')
  # The mini-batch step is chosen by use_mini_batch, not by name.
  with pytest.raises(ValueError, match='must be one of'):
    config.check_algorithm('minibatch', 'squared_euclidean', True)


@pytest.mark.parametrize('name', ['hamerly', 'yinyang'])
def test_check_algorithm_reads_the_needs_from_the_registry(name):
  assert config.check_algorithm(name, 'squared_euclidean', False) == name
  with pytest.raises(ValueError, match=f"algorithm='{name}' needs "
                     'use_mini_batch=False'):
    config.check_algorithm(name, 'cosine', False)
  assert config.check_algorithm('lloyd', 'cosine', True) == 'lloyd'


@pytest.mark.parametrize('name', ['lloyd', 'hamerly', 'yinyang'])
def test_choose_runs_the_named_variant_carried_on_data_in_memory(name):
  chosen = algorithms.choose(name, use_mini_batch=False, in_memory=True)
  assert (chosen.algorithm.name, chosen.carried, chosen.warning) == (
      name, True, None)


@pytest.mark.parametrize('name', ['hamerly', 'yinyang'])
def test_choose_falls_back_to_lloyd_over_batches_with_a_warning(name):
  chosen = algorithms.choose(name, use_mini_batch=False, in_memory=False)
  assert (chosen.algorithm.name, chosen.carried) == ('lloyd', False)
  assert chosen.warning == (
      f"algorithm='{name}' needs the data in memory (a Tensor or array); "
      "this dataset of batches is trained with algorithm='lloyd'.")


def test_choose_mini_batch_and_restarts():
  assert algorithms.choose('lloyd', True, True).algorithm.name == 'minibatch'
  assert not algorithms.choose('lloyd', True, True).carried
  assert not algorithms.choose('lloyd', False, True, num_restarts=3).carried
