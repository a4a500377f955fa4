"""eval_index.py: eval items (n = ngram_zh for Chinese-majority questions, ngram_en otherwise;
short questions compared with their answer added), all of them built from the held-out candidates and
the declared sets, and the GramIndex the ingest workers look each record's n-grams up in."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stellar_data.similarity.eval_index import (
    HELDOUT_EVAL_SET,
    GramIndex,
    all_eval_items,
    eval_items,
    heldout_items,
)
from stellar_data.similarity.fold import Grams, fold_hashes
from stellar_data.similarity.records import FOLD_SEED
from stellar_data.steps.decontaminate import DecontaminateConfig, EvalSetSpec

CONFIG = DecontaminateConfig()  # threshold 0.5, 8-grams, min_eval_tokens 20

ZH_Q = "太阳系中体积最大的行星是哪一颗？它表面的大红斑是一个已经持续了数百年的巨大反气旋风暴系统。"
ZH_Q_TRADITIONAL = "太陽系中體積最大的行星是哪一顆？它表面的大紅斑是一個已經持續了數百年的巨大反氣旋風暴系統。"
EN_Q = (
    "A plane travels 1200 miles in 3 hours. At the same rate, how many additional hours would it take "
    "to travel an additional 2000 miles?"
)
TEMPLATE = "你是一位资深天文学家。以下是一道【天体物理学】方向的单选题。有人说“{}”，你怎么看？"


UNRELATED = [
    "请写一首关于春天的诗。春风拂面，桃花盛开，燕子归来，万物复苏。",
    "Give three tips for staying healthy. Eat a balanced diet, exercise regularly and sleep well.",
    "把下面的句子翻译成英文：我喜欢在周末去公园散步。I like to walk in the park on weekends.",
    "What is the capital of France? The capital of France is Paris.",
    "木星是太阳系中的一颗行星。",  # shares a few characters with ZH_Q but no 8-gram
]


def record_grams(texts: pl.Series, index: GramIndex, *, convert_traditional: bool) -> pl.Series:
    """`_eval_grams` as the ingest workers compute them: folded, hashed, looked up in the index."""
    tokens = fold_hashes(texts, convert_traditional=convert_traditional, seed=FOLD_SEED)
    return index.hits(Grams(tokens))


def items_of(questions: list[str], answers: list[str] | None = None, name: str = "ev", config=CONFIG) -> list:
    extras = [[a] if a else [] for a in (answers or [""] * len(questions))]
    return eval_items(questions, extras, [f"q{i}" for i in range(len(questions))], name, config)


# --- eval_items -----------------------------------------------------------------------------------


def test_n_follows_the_language_of_the_question() -> None:
    config = DecontaminateConfig(ngram_zh=7, ngram_en=9)
    zh, en, mixed_zh, mixed_en = eval_items(
        [
            ZH_Q,
            EN_Q,
            "银河系中大约有多少颗恒星，Milky Way 的质量是多少",
            "What does 红移 mean for the distance of a galaxy far away from us",
        ],
        [[], [], [], []],
        ["a", "b", "c", "d"],
        "ev",
        config,
    )
    assert (zh.n, en.n, mixed_zh.n, mixed_en.n) == (7, 9, 7, 9)
    assert zh.tokens[:4] == ("太", "阳", "系", "中")
    assert en.tokens[:3] == ("a", "plane", "travels")
    assert (zh.eval_set, zh.item_id) == ("ev", "a")


def test_short_questions_keep_their_answer_as_a_required_extra() -> None:
    short, long_ = eval_items(["什么是红移？", EN_Q], [["光谱线向长波方向移动"], ["10"]], ["s", "l"], "ev", CONFIG)
    assert short.tokens == tuple("什么是红移")
    # the answer's 10 characters as 4-grams (the short question's gram size): 7 of them
    assert len(short.extra_hashes) == 7 and {length for length, _ in short.extra_hashes} == {4}
    assert long_.extra_hashes == () and len(long_.tokens) >= CONFIG.min_eval_tokens
    config = DecontaminateConfig(min_eval_tokens=3)
    (alone,) = eval_items(["什么是红移？"], [["光谱线向长波方向移动"]], ["s"], "ev", config)
    assert alone.tokens == tuple("什么是红移") and alone.extra_hashes == ()


def test_eval_questions_are_folded_traditional_to_simplified() -> None:
    (traditional,) = items_of([ZH_Q_TRADITIONAL])
    (simplified,) = items_of([ZH_Q])
    assert traditional.tokens == simplified.tokens


def test_empty_questions_give_no_item() -> None:
    assert items_of(["", "。？"], ["", ""]) == []


def test_grams_of_an_item() -> None:
    """One hash per 8-gram, in order: the hash of the same 8 words wherever they stand."""
    (item,) = eval_items(["one two three four five six seven eight nine ten"], [[]], ["x"], "ev", CONFIG)
    windows = ["one two three four five six seven eight", "two three four five six seven eight nine",
               "three four five six seven eight nine ten"]  # fmt: skip
    singles = eval_items(windows, [[]] * 3, ["a", "b", "c"], "ev", CONFIG)
    assert item.gram_hashes == tuple(one.gram_hashes[0] for one in singles)
    assert all(len(one.gram_hashes) == 1 for one in singles)
    (five,) = eval_items(["one two three four five"], [[]], ["y"], "ev", CONFIG)
    assert (five.n, len(five.gram_hashes)) == (4, 2)  # shorter than 8: its two 4-grams
    (three,) = eval_items(["one two three"], [[]], ["z"], "ev", CONFIG)
    assert three.gram_hashes == ()  # under 4 tokens: not checked


# --- all_eval_items: held-out candidates and declared sets ------------------------------------------


def held_frame(questions: list[str]) -> pl.DataFrame:
    """Held-out benchmark records as the hold-out sources' workers write them (choice items)."""
    rows = len(questions)
    return pl.DataFrame(
        {"id": [f"astro:{i}" for i in range(rows)], "_x_question": questions, "_x_answer": ["A"] * rows,
         "_x_type": ["single_choice"] * rows}
        | {f"_x_option_{c}": [f"{c} option {i}" for i in range(rows)] for c in "ABCDE"}
    )  # fmt: skip


def test_all_eval_items_are_the_held_out_then_the_declared(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text('{"q": "What is the brightest star in the night sky?"}\n', encoding="utf-8")
    config = DecontaminateConfig(eval_sets=(EvalSetSpec("declared", "e.jsonl", "q"),))
    items = all_eval_items(held_frame([ZH_Q, EN_Q]), config, tmp_path)
    assert [(i.eval_set, i.item_id) for i in items] == [
        (HELDOUT_EVAL_SET, "astro:0"), (HELDOUT_EVAL_SET, "astro:1"), ("declared", "0")
    ]  # fmt: skip
    assert all_eval_items(held_frame([ZH_Q]), DecontaminateConfig(heldout=False), tmp_path) == []


def test_items_of_the_held_records_are_those_of_every_candidate_narrowed() -> None:
    """Built once from every hold-out candidate, then narrowed to the records held out: the same
    items, in the same order, as built from the held records alone."""
    candidates = held_frame([ZH_Q, EN_Q, ZH_Q_TRADITIONAL, UNRELATED[1]])
    held = candidates[[1, 3]]
    config = DecontaminateConfig()
    narrowed = heldout_items(all_eval_items(candidates, config, Path()), set(held["id"]))
    assert narrowed == all_eval_items(held, config, Path())
    assert [i.item_id for i in narrowed] == ["astro:1", "astro:3"]


# --- GramIndex: the lookup the ingest workers do ------------------------------------------------------


def test_index_hits_are_exactly_the_eval_grams_a_text_holds() -> None:
    items = items_of([ZH_Q, EN_Q])
    index = GramIndex.of(items)
    assert set(index.by_length) == {8}
    texts = pl.Series([TEMPLATE.format(ZH_Q_TRADITIONAL), EN_Q.upper(), *UNRELATED, ""], dtype=pl.String)
    hits = record_grams(texts, index, convert_traditional=True).to_list()
    zh, en = ({int(g) for g in item.gram_hashes} for item in items)
    assert set(hits[0]) == zh and set(hits[1]) == en  # every gram of the question, nothing else
    assert hits[0] == sorted(hits[0]) and len(hits[0]) == len(set(hits[0]))
    assert all(h == [] for h in hits[2:])  # unrelated texts and the empty text: nothing


def test_index_of_short_questions_looks_for_their_4_grams() -> None:
    items = items_of(
        ["什么是红移？", "what is the redshift of light"], ["光谱线向长波方向移动", "a shift of spectral lines"]
    )
    index = GramIndex.of(items)
    assert set(index.by_length) == {4}  # 5 Han characters, 6 words: shorter than 8, so 4-grams
    assert [len(item.gram_hashes) for item in items] == [2, 3]
    hits = record_grams(
        pl.Series(["请问：什么是红移？", "So, what is the redshift?", "红移是什么"], dtype=pl.String),
        index,
        convert_traditional=True,
    ).to_list()
    assert [len(h) for h in hits] == [2, 1, 0]  # "what is the redshift" is one of the three 4-grams


def test_index_of_no_items_finds_nothing() -> None:
    hits = record_grams(pl.Series([ZH_Q, EN_Q]), GramIndex.of([]), convert_traditional=True)
    assert hits.to_list() == [[], []]
