"""decontaminate.py: the removal of training items holding at least `threshold` of an eval
question's n-grams, with evidence (eval set, item id, overlap, span)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from stellar_data.similarity.eval_index import GramIndex, eval_items
from stellar_data.similarity.eval_sets import read_eval_set
from stellar_data.similarity.fold import TokenHashes, fold_hashes, fold_texts
from stellar_data.similarity.records import FOLD_SEED
from stellar_data.steps.decontaminate import DecontaminateConfig, EvalSetSpec, decontaminate
from tests.stellar_data.similarity.test_eval_index import (
    CONFIG,
    EN_Q,
    TEMPLATE,
    UNRELATED,
    ZH_Q,
    ZH_Q_TRADITIONAL,
    items_of,
    record_grams,
)


def folded_question(text: str) -> str:
    """The question as the span reports it: folded, Han characters joined, other tokens spaced."""
    tokens = fold_texts(pl.Series([text]), convert_traditional=True).to_list()[0].split()
    out = ""
    for token in tokens:
        han = len(token) == 1 and "\u3400" <= token <= "\u9fff"
        out += token if han else f" {token} "
    return " ".join(out.split())


def run(
    texts: list[str],
    items: list,
    config: DecontaminateConfig = CONFIG,
    sources: list[str] | None = None,
    *,
    convert_traditional: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame, dict, dict]:
    frame = pl.DataFrame(
        {"id": [f"t:{i}" for i in range(len(texts))], "source": sources or ["train"] * len(texts)},
        schema={"id": pl.String, "source": pl.String},
    )
    series = pl.Series(texts, dtype=pl.String)
    frame = frame.with_columns(record_grams(series, GramIndex.of(items), convert_traditional=convert_traditional))

    def record_tokens(rows: list[int]) -> TokenHashes:
        return fold_hashes(series.gather(rows), convert_traditional=convert_traditional, seed=FOLD_SEED)

    return decontaminate(frame, items, config, record_tokens)


PLANTED = {
    "verbatim": ZH_Q,
    "punctuation": "太阳系中，体积最大的行星——是哪一颗？？它表面的“大红斑”是一个已经持续了数百年的、巨大反气旋风暴系统！",
    "spaces": "太阳系中 体积 最大的 行星是 哪一颗 ？  它表面的 大红斑 是一个 已经持续了 数百年的 巨大 反气旋 风暴 系统 。",
    "traditional": ZH_Q_TRADITIONAL,
    "template": TEMPLATE.format(ZH_Q),
    "template_traditional_fullwidth": TEMPLATE.format(ZH_Q_TRADITIONAL).replace("？", "?").replace("。", "．"),
}


def test_planted_chinese_variants_are_caught_with_evidence() -> None:
    items = items_of([ZH_Q, EN_Q])
    texts = [*PLANTED.values(), *UNRELATED]
    kept, removed, stats, report = run(texts, items)
    planted_ids = [f"t:{i}" for i in range(len(PLANTED))]
    assert removed["id"].to_list() == planted_ids, dict(zip(PLANTED, texts, strict=False))
    assert kept["id"].to_list() == [f"t:{i}" for i in range(len(PLANTED), len(texts))]
    assert removed["eval_set"].to_list() == ["ev"] * len(PLANTED)
    assert removed["eval_id"].to_list() == ["q0"] * len(PLANTED)
    assert removed["overlap"].to_list() == [1.0] * len(PLANTED)
    assert removed["span"].to_list() == [folded_question(ZH_Q)] * len(PLANTED)
    assert (
        removed["span"][0] == "太阳系中体积最大的行星是哪一颗它表面的大红斑是一个已经持续了数百年的巨大反气旋风暴系统"
    )
    assert (stats["train"].total, stats["train"].kept, dict(stats["train"].dropped)) == (
        len(texts),
        len(UNRELATED),
        {"contaminated": len(PLANTED)},
    )
    assert report == {
        "ev": {"removed": len(PLANTED), "by_source": {"train": len(PLANTED)}, "eval_items": 2, "too_short": 0}
    }


def test_planted_english_variants_are_caught_with_evidence() -> None:
    items = items_of([ZH_Q, EN_Q])
    variants = [
        EN_Q,
        EN_Q.upper().replace(",", " ,, ").replace(".", "..."),
        "  ".join(EN_Q.split()),
        f"Solve the following math problem step by step.\n\nQuestion: {EN_Q}\nAnswer: It takes 5 hours.",
        "Ａ ｐｌａｎｅ ｔｒａｖｅｌｓ １２００ ｍｉｌｅｓ ｉｎ ３ ｈｏｕｒｓ"
        + EN_Q[len("A plane travels 1200 miles in 3 hours") :],
    ]
    kept, removed, _, _ = run([*variants, *UNRELATED], items)
    assert removed["id"].to_list() == [f"t:{i}" for i in range(len(variants))]
    assert set(removed["eval_id"]) == {"q1"}
    assert removed["span"].to_list() == [folded_question(EN_Q)] * len(variants)
    assert removed["span"][0] == (
        "a plane travels 1200 miles in 3 hours at the same rate how many additional hours would it take to "
        "travel an additional 2000 miles"
    )
    assert kept.height == len(UNRELATED)


def test_traditional_train_text_is_caught_when_folded_with_conversion_only() -> None:
    """The pipeline folds a source's text with t2s unless the source was already converted (opencc)."""
    items = items_of([ZH_Q])
    _, removed, _, _ = run([ZH_Q_TRADITIONAL], items, convert_traditional=True)
    assert removed.height == 1
    _, removed, _, _ = run([ZH_Q_TRADITIONAL], items, convert_traditional=False)
    assert removed.height == 0  # the shared characters alone are not 8-grams enough: conversion is what catches it


def test_a_whole_multiple_choice_question_with_labelled_options_is_caught(tmp_path: Path) -> None:
    """An eval set read with options (CSV `Question,A,B,C,D,Answer`): a training item holding the
    whole question and all its options verbatim, the options labelled `A.`..`D.` as any prompt
    writes them (a template wrapper), holds the eval item."""
    text = ",Question,A,B,C,D,Answer\n0,太阳系中卫星最多的行星是（ ）,木星,土星,天王星,海王星,B\n"
    (tmp_path / "mcq.csv").write_text(text, encoding="utf-8")
    spec = EvalSetSpec("mcq", "mcq.csv", "Question", answer="Answer", options=("A", "B", "C", "D"))
    questions, answers, ids = read_eval_set(spec, tmp_path)
    items = eval_items(questions, answers, ids, "mcq", CONFIG)
    planted = [
        "太阳系中卫星最多的行星是（ ）\nA. 木星\nB. 土星\nC. 天王星\nD. 海王星",
        TEMPLATE.format("太阳系中卫星最多的行星是（ ）A、木星 B、土星 C、天王星 D、海王星"),
    ]
    kept, removed, _, _ = run([*planted, *UNRELATED], items)
    assert removed["id"].to_list() == ["t:0", "t:1"], removed
    assert kept.height == len(UNRELATED)


def test_unrelated_records_survive() -> None:
    items = items_of([ZH_Q, EN_Q, "以下说法不正确的是（ ）。"], ["", "", "地球是平的"])
    kept, removed, _, report = run(UNRELATED, items)
    assert removed.height == 0 and kept.height == len(UNRELATED)
    assert report == {"ev": {"removed": 0, "by_source": {}, "eval_items": 3, "too_short": 0}}
    assert set(removed.columns) >= {"eval_set", "eval_id", "overlap", "span"}


def test_a_short_question_alone_does_not_flag_every_text_mentioning_it() -> None:
    """`什么是红移` alone would match any text asking about redshift; with its answer it needs the answer too."""
    items = items_of(["什么是红移？"], ["天体光谱线向红端移动的现象"])
    texts = [
        "什么是红移？星系的红移说明宇宙在膨胀，哈勃定律描述了红移与距离的关系。",
        "什么是红移？红移是天体光谱线向红端移动的现象。",
    ]
    kept, removed, _, report = run(texts, items)
    assert kept["id"].to_list() == ["t:0"] and removed["id"].to_list() == ["t:1"]
    assert report["ev"]["too_short"] == 0


def test_a_question_of_fewer_than_four_tokens_is_not_checked_and_is_counted() -> None:
    """`红移` (two tokens) says too little on its own: never a match, counted as too short."""
    items = items_of(["红移", "What is redshift?"], ["天体光谱线向红端移动的现象", "a shift of spectral lines"])
    assert [item.gram_hashes == () for item in items] == [True, True]
    _, removed, _, report = run(
        ["红移是天体光谱线向红端移动的现象。", "What is redshift? A shift of spectral lines."], items
    )
    assert removed.height == 0
    assert report["ev"]["too_short"] == 2 and report["ev"]["eval_items"] == 2


def test_threshold_half_a_question_caught_at_half_not_at_nine_tenths() -> None:
    words = [f"word{i}" for i in range(40)]  # 40 tokens: 33 8-grams
    question = " ".join(words)
    half = "please consider " + " ".join(words[:24]) + " and then stop"  # holds 17 of the 33 8-grams
    items = items_of([question])
    _, removed, _, _ = run([half], items, DecontaminateConfig(threshold=0.5))
    assert removed["overlap"].to_list() == [pytest.approx(17 / 33)]
    assert removed["span"].to_list() == [" ".join(words[:24])]
    _, removed, _, _ = run([half], items, DecontaminateConfig(threshold=0.9))
    assert removed.height == 0
    quarter = " ".join(words[:15])  # 8 of 33
    _, removed, _, _ = run([quarter], items, DecontaminateConfig(threshold=0.5))
    assert removed.height == 0


def test_the_best_matching_eval_item_is_reported_with_its_set() -> None:
    items = items_of([EN_Q], name="gsm8k_test") + items_of([ZH_Q], name="astro")
    half_en = " ".join(EN_Q.split()[:16])
    kept, removed, _, report = run(
        [f"{half_en} {ZH_Q}", ZH_Q, EN_Q, "unrelated"], items, sources=["mixed", "zh", "en", "en"]
    )
    assert removed.select("id", "eval_set", "eval_id").rows() == [
        ("t:0", "astro", "q0"),  # all of the Chinese question beats half of the English one
        ("t:1", "astro", "q0"),
        ("t:2", "gsm8k_test", "q0"),
    ]
    assert report == {
        "astro": {"removed": 2, "by_source": {"mixed": 1, "zh": 1}, "eval_items": 1, "too_short": 0},
        "gsm8k_test": {"removed": 1, "by_source": {"en": 1}, "eval_items": 1, "too_short": 0},
    }
    assert kept["id"].to_list() == ["t:3"]


def test_no_eval_items_removes_nothing() -> None:
    kept, removed, _, report = run(UNRELATED, [])
    assert kept.height == len(UNRELATED) and removed.height == 0 and report == {}


def test_decontaminate_is_deterministic() -> None:
    items = items_of([ZH_Q, EN_Q])
    texts = [*PLANTED.values(), *UNRELATED, EN_Q]
    first, second = run(texts, items), run(texts, items)
    assert first[0].equals(second[0]) and first[1].equals(second[1]) and first[3] == second[3]
