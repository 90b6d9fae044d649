"""The Estimator shell: `KMeansClustering` and what the legacy Estimator API
brings with it (`RunConfig`, `ModeKeys`, `EstimatorSpec`, session-run hooks,
the training summary)."""
