"""The names the estimator reads input with, from the modules holding them.

A thin index over the `data` package, kept so that the estimator's
`inputs.<name>` uses read the same whichever module a name lives in:
- `base`: `Batch` (one batch and its weights) and the `Points` interface;
- `adapters`: `read_points` (one adapter per kind of input), input_fn calls;
- `arrays`, `datasets`: the adapters for data given whole and for datasets;
- `direct`: data given directly where an input_fn goes (`as_input_fn`);
- `features`: dict features and `feature_columns` to points (n, d);
- `checks`: the checks and their messages.
New code may import those modules directly.
"""

from kmeans_estimator.data.adapters import call_input_fn
from kmeans_estimator.data.adapters import read_points
from kmeans_estimator.data.adapters import takes_argument
from kmeans_estimator.data.arrays import RowPoints
from kmeans_estimator.data.arrays import TensorPoints
from kmeans_estimator.data.arrays import WholeRows
from kmeans_estimator.data.arrays import shared_row_parts
from kmeans_estimator.data.base import Batch
from kmeans_estimator.data.base import Points
from kmeans_estimator.data.checks import FOUND_WHILE_READING
from kmeans_estimator.data.checks import NON_FINITE_MESSAGE
from kmeans_estimator.data.checks import ROWS_MESSAGE
from kmeans_estimator.data.checks import WEIGHTS_MESSAGE
from kmeans_estimator.data.checks import WIDTH_MESSAGE
from kmeans_estimator.data.checks import all_finite
from kmeans_estimator.data.checks import check_points
from kmeans_estimator.data.checks import check_total_weight
from kmeans_estimator.data.checks import zero_weight_message
from kmeans_estimator.data.datasets import StreamPoints
from kmeans_estimator.data.direct import DirectData
from kmeans_estimator.data.direct import as_input_fn
from kmeans_estimator.data.features import combine_features
from kmeans_estimator.data.features import weights_of

__all__ = [
    'Batch', 'DirectData', 'FOUND_WHILE_READING', 'NON_FINITE_MESSAGE',
    'Points', 'ROWS_MESSAGE', 'RowPoints', 'StreamPoints', 'TensorPoints',
    'WEIGHTS_MESSAGE', 'WIDTH_MESSAGE', 'WholeRows', 'all_finite',
    'as_input_fn', 'call_input_fn', 'check_points', 'check_total_weight',
    'combine_features', 'read_points', 'shared_row_parts', 'takes_argument',
    'weights_of', 'zero_weight_message',
]
