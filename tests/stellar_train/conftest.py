"""A tiny LLaMA model and tokenizer made at test time (nothing is downloaded), and a tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the training extra is not installed")

import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

TEXTS = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "I am an intelligent language assistant developed by 星语调校局。",
    "Below is a dialog consisting of instructions and responses. Write a response that completes the request.",
    "### Instruction:",
    "### Input:",
    "### Response:",
    "What is a pulsar? A pulsar is a rotating neutron star that emits beams of radiation.",
    "Why do stars twinkle? Turbulence in the atmosphere bends starlight.",
    "什么是脉冲星？脉冲星是快速自转的中子星。",
    "太阳的能量来自核心的氢核聚变。",
    "Name the planets of the solar system: Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus, Neptune.",
    "The answer is 42.",
    "蒭藁型变星是一类长周期变星。",
]
TRIPLES = [
    {"instruction": "What is a pulsar?", "input": "", "output": "A rotating neutron star."},
    {"instruction": "Why do stars twinkle?", "input": "", "output": "Turbulence in the atmosphere."},
    {"instruction": "什么是脉冲星？", "input": "", "output": "快速自转的中子星。"},
    {"instruction": "Name a planet.", "input": "solar system", "output": "Mars."},
    {"instruction": "太阳的能量来自哪里？", "input": "", "output": "核心的氢核聚变。"},
    {"instruction": "What is the answer?", "input": "", "output": "The answer is 42."},
    {"instruction": "Name the gas giants.", "input": "", "output": "Jupiter and Saturn."},
    {"instruction": "什么是蒭藁型变星？", "input": "", "output": "一类长周期变星。"},
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LLaMA-architecture model (2 layers, width 64) with a SentencePiece BPE tokenizer (unk/bos/eos
    0/1/2, byte fallback) trained on a few lines, saved as a full tokenizer (tokenizer.json)."""
    folder = tmp_path_factory.mktemp("tiny_llama")
    sp_dir = tmp_path_factory.mktemp("sentencepiece")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS * 20), model_prefix=str(sp_dir / "tokenizer"), vocab_size=400, model_type="bpe",
        byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    # Loaded from tokenizer.model once (needs protobuf), then saved as tokenizer.json for every later load.
    tokenizer = LlamaTokenizer.from_pretrained(sp_dir)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder `datasets.load_dataset` opens: train / validation JSON files."""
    folder = tmp_path_factory.mktemp("tiny_data")
    (folder / "train.json").write_text(json.dumps(TRIPLES, ensure_ascii=False), encoding="utf-8")
    (folder / "validation.json").write_text(json.dumps(TRIPLES[:3], ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture(scope="session", autouse=True)
def tokenized_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenized splits are cached in a session folder, never in the user's ~/.cache (subprocesses the
    tests start inherit it)."""
    import os

    from stellar_train.cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("tokenized_cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def lora_weights(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRA weights for tiny_model that change its output (init_lora_weights=False: lora_B is not zero),
    saved by peft alone: no tokenizer files and no run record, as a Trainer `checkpoint-N` folder has them."""
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("lora") / "adapter"
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")  # fmt: skip
    get_peft_model(LlamaForCausalLM.from_pretrained(tiny_model), lora).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def write_run_record(tiny_model: Path):
    """Writes a train_config.json (as recipe.train does, trimmed) for an adapter trained on tiny_model into a
    folder: `write_run_record(folder, data="corpus")`; config fields as keyword arguments."""
    from stellar_train.model import base_fingerprint

    def write(folder: Path, **config) -> Path:
        run = {
            "config": {"base_model": str(tiny_model), "template": "stellarspeak", **config},
            "base_model": {"path": str(tiny_model), "fingerprint": base_fingerprint(str(tiny_model))},
        }
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "train_config.json"
        path.write_text(json.dumps(run, indent=2), encoding="utf-8")
        return path

    return write
