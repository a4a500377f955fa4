"""stellar_train: LoRA fine-tuning on the corpus shards (not implemented yet; see the trainer issue)."""
