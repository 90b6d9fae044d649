"""What touches the disk: name-based atomic checkpoints and `model_dir`
state (`checkpoints`), the trainer's lock (`locking`) and SavedModel export
(`export`)."""
