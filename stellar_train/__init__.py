"""stellar_train: LoRA fine-tuning on stellar-data corpora (peft + transformers).

    from stellar_train.config import load_config
    from stellar_train.recipe import train
    result = train(load_config("corpus/train_stellarspeak.toml"))

Modules: `prompt` (alpaca-lora templates), `tokenize` (joint tokenization, masking, cutoff),
`batching` (padded, length-grouped, packed), `config` (the validated run config), `checks` (machine
checks before tokenizing), `cache` (tokenized splits), `schedule` (steps and accumulation), `model`
(tokenizer, base, LoRA), `trainer` (eval loss, reporting), `run_record`, `recipe` (the training
run), `merge`, `chat`, `cli` (`stellar-train`). docs/ARCHITECTURE.md has the map.
"""
