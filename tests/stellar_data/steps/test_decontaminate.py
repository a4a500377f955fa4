"""decontaminate.py: eval items (n = ngram_zh for Chinese-majority questions, ngram_en otherwise;
short questions compared with their answer added), eval sets read through a column mapping (CSV
with an unnamed index column, JSONL, JSON, Parquet), and the removal of training items holding at
least `threshold` of an eval question's n-grams, with evidence (eval set, item id, overlap, span)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stellar_data.errors import SourceFileError
from stellar_data.steps.decontaminate import (
    FOLD_SEED,
    DecontaminateConfig,
    EvalSetSpec,
    GramIndex,
    decontaminate,
    eval_items,
    read_eval_set,
)
from stellar_data.steps.fold import Grams, TokenHashes, fold_hashes, fold_texts

CONFIG = DecontaminateConfig()  # threshold 0.5, 8-grams, min_eval_tokens 20

ZH_Q = "太阳系中体积最大的行星是哪一颗？它表面的大红斑是一个已经持续了数百年的巨大反气旋风暴系统。"
ZH_Q_TRADITIONAL = "太陽系中體積最大的行星是哪一顆？它表面的大紅斑是一個已經持續了數百年的巨大反氣旋風暴系統。"
EN_Q = (
    "A plane travels 1200 miles in 3 hours. At the same rate, how many additional hours would it take "
    "to travel an additional 2000 miles?"
)
TEMPLATE = "你是一位资深天文学家。以下是一道【天体物理学】方向的单选题。有人说“{}”，你怎么看？"


def folded_question(text: str) -> str:
    """The question as the span reports it: folded, Han characters joined, other tokens spaced."""
    tokens = fold_texts(pl.Series([text]), convert_traditional=True).to_list()[0].split()
    out = ""
    for token in tokens:
        han = len(token) == 1 and "\u3400" <= token <= "\u9fff"
        out += token if han else f" {token} "
    return " ".join(out.split())


def record_grams(texts: pl.Series, index: GramIndex, *, convert_traditional: bool) -> pl.Series:
    """`_eval_grams` as the ingest workers compute them: folded, hashed, looked up in the index."""
    tokens = fold_hashes(texts, convert_traditional=convert_traditional, seed=FOLD_SEED)
    return index.hits(Grams(tokens))


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


# --- read_eval_set ----------------------------------------------------------------------------------

ROWS = [
    {
        "Question": "太阳系中体积最大的行星是哪一颗",
        "A": "木星",
        "B": "土星",
        "C": "天王星",
        "D": "海王星",
        "Answer": "A",
    },
    {"Question": "离太阳最近的行星是", "A": "金星", "B": "水星", "C": "火星", "D": "地球", "Answer": "B"},
]


def test_csv_with_an_unnamed_index_column(tmp_path: Path) -> None:
    lines = [",Question,A,B,C,D,Answer"]
    lines += [f"{i},{r['Question']},{r['A']},{r['B']},{r['C']},{r['D']},{r['Answer']}" for i, r in enumerate(ROWS)]
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "astro.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = EvalSetSpec("astro", "evals/astro.csv", "Question", answer="Answer", options=("A", "B", "C", "D"))
    questions, answers, ids = read_eval_set(spec, tmp_path)
    assert ids == ["0", "1"]
    assert answers == [["木星", "土星", "天王星", "海王星", "A"], ["金星", "水星", "火星", "地球", "B"]]
    assert questions == [row["Question"] for row in ROWS]  # options are extras, not part of the question
    with_id = EvalSetSpec("astro", "evals/astro.csv", "Question", id="", answer="Answer")
    assert read_eval_set(with_id, tmp_path)[2] == ["0", "1"]


def test_csv_with_a_bom_quotes_and_commas(tmp_path: Path) -> None:
    text = '\ufeffid,Question,Answer\nx1,"Which is larger, the Sun or the Moon?",The Sun\nx2,"Say ""hi""",hi\n'
    (tmp_path / "e.csv").write_text(text, encoding="utf-8")
    questions, answers, ids = read_eval_set(EvalSetSpec("e", "e.csv", "Question", id="id", answer="Answer"), tmp_path)
    assert questions == ["Which is larger, the Sun or the Moon?", 'Say "hi"']
    assert answers == [["The Sun"], ["hi"]] and ids == ["x1", "x2"]


def test_jsonl_json_and_parquet(tmp_path: Path) -> None:
    rows = [{"qid": f"k{i}", "q": r["Question"], "a": r["Answer"]} for i, r in enumerate(ROWS)]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", "utf-8")
    (tmp_path / "e.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "e.parquet")
    (tmp_path / "e.data").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    expected = ([r["Question"] for r in ROWS], [["A"], ["B"]], ["k0", "k1"])
    for path, fmt in [("e.jsonl", "auto"), ("e.json", "auto"), ("e.parquet", "auto"), ("e.data", "json")]:
        spec = EvalSetSpec("e", path, "q", id="qid", answer="a", format=fmt)
        assert read_eval_set(spec, tmp_path) == expected, path


def test_gsm8k_test_file_through_its_mapping(shared_sources: Path) -> None:
    spec = EvalSetSpec("gsm8k_test", "grade-school-math/grade_school_math/data/test.jsonl", "question", answer="answer")
    questions, answers, ids = read_eval_set(spec, shared_sources)
    assert len(questions) == len(answers) == len(ids) == 1319
    assert ids[:3] == ["0", "1", "2"] and questions[0].startswith("Janet’s ducks lay 16 eggs")
    assert answers[0][0].endswith("#### 18")


def test_a_missing_file_names_the_eval_set(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match=r"eval set mmlu_astro: file not found: .*nowhere\.csv"):
        read_eval_set(EvalSetSpec("mmlu_astro", "nowhere.csv", "Question"), tmp_path)


def test_a_missing_question_column_names_the_eval_set_and_column(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text(",question,A\n0,x,y\n", encoding="utf-8")
    with pytest.raises(SourceFileError, match=r"eval set astro: e\.csv has no column 'Question'"):
        read_eval_set(EvalSetSpec("astro", "e.csv", "Question"), tmp_path)


@pytest.mark.parametrize(
    "spec",
    [
        EvalSetSpec("astro", "e.csv", "Question", answer="Answr"),
        EvalSetSpec("astro", "e.csv", "Question", options=("A", "B", "C", "E")),
        EvalSetSpec("astro", "e.csv", "Question", id="ID"),
    ],
    ids=["answer", "option", "id"],
)
def test_a_missing_mapped_column_names_the_eval_set(tmp_path: Path, spec: EvalSetSpec) -> None:
    """A typo in the column mapping is an error, not silently empty answers / options or ids "None"."""
    (tmp_path / "e.csv").write_text(",Question,A,B,C,D,Answer\n0,x,a,b,c,d,A\n", encoding="utf-8")
    with pytest.raises(SourceFileError, match="eval set astro"):
        read_eval_set(spec, tmp_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.txt", "Question\nx\n"),  # unknown format
        ("e.jsonl", '{"Question": "x"}\n{not json\n'),
        ("e.json", "[{]"),
        ("e.csv", b"Question\n\xff\xfe\n"),  # not UTF-8
        ("e.parquet", "not a parquet file"),
        ("e.json", '{"data": [{"Question": "x"}]}'),  # an object, not a list of rows
        ("e.csv", ""),  # no rows
    ],
    ids=["format", "jsonl", "json", "encoding", "parquet", "json-object", "empty"],
)
def test_an_unreadable_file_names_the_eval_set(tmp_path: Path, name: str, content: str | bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SourceFileError, match="eval set bad"):
        read_eval_set(EvalSetSpec("bad", name, "Question"), tmp_path)


# --- decontaminate --------------------------------------------------------------------------------

UNRELATED = [
    "请写一首关于春天的诗。春风拂面，桃花盛开，燕子归来，万物复苏。",
    "Give three tips for staying healthy. Eat a balanced diet, exercise regularly and sleep well.",
    "把下面的句子翻译成英文：我喜欢在周末去公园散步。I like to walk in the park on weekends.",
    "What is the capital of France? The capital of France is Paris.",
    "木星是太阳系中的一颗行星。",  # shares a few characters with ZH_Q but no 8-gram
]

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
