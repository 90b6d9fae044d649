"""What touches the disk: name-based atomic checkpoints and `model_dir`
state (`checkpoints`, the public functions; behind them `checkpoint_bundles`,
`checkpoint_state`, `checkpoint_reading` and `filesystem`), the trainer's
lock (`locking`) and SavedModel export (`export`)."""
