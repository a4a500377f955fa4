"""stellar_train: LoRA fine-tuning on stellar-data corpora (peft + transformers).

    from stellar_train.config import load_config
    from stellar_train.recipe import train
    result = train(load_config("corpus/train_stellarspeak.toml"))

Modules: `prompt` (alpaca-lora templates), `tokenize` (joint tokenization, masking, cutoff),
`batching` (padded, length-grouped, packed), `config` (the validated run config), `model`
(tokenizer, base, LoRA), `recipe` (the training run), `merge`, `chat`, `cli` (`stellar-train`).
"""
