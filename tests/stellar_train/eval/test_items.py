"""Loading evaluation items: the held-out Parquet of a built corpus (any of its three paths), CMMLU / C-Eval
style CSV (with a pandas index column), JSONL through the same mapping, and one clear error per bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stellar_data.writers.heldout import HELDOUT_SCHEMA
from stellar_train.eval.items import EvalDataError, EvalItem, detect_format, load_items, parse_mapping

HELDOUT_ROWS = [
    {"id": "astro_qa:zh:4opt:1", "group": "astro_qa:4opt:1", "source": "astro_qa", "type": "single_choice_4",
     "type_label": "", "subfield": "天体物理学", "lang": "zh", "question": "太阳是什么？", "prompt": "",
     "options": [{"label": c, "text": t} for c, t in zip("ABCD", ["行星", "恒星", "卫星", "彗星"], strict=True)],
     "answer": "B", "explanation": "", "source_file": "x.xlsx", "original_id": "1"},
    {"id": "astro_qa:en:subjective:2", "group": "astro_qa:subjective:2", "source": "astro_qa", "type": "subjective",
     "type_label": "terminology", "subfield": "天文学史", "lang": "en", "question": "Pulsar",
     "prompt": "Explain the term: Pulsar.", "options": [], "answer": "A rotating neutron star.", "explanation": "",
     "source_file": "y.xlsx", "original_id": "2"},
]  # fmt: skip


def write_heldout(folder: Path, rows: list[dict] = HELDOUT_ROWS) -> Path:
    (folder / "astro_qa_heldout").mkdir(parents=True)
    (folder / "manifest.json").write_text("{}", encoding="utf-8")
    path = folder / "astro_qa_heldout" / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=HELDOUT_SCHEMA), path)
    return path


def test_astro_qa_from_the_corpus_its_folder_or_its_file(tmp_path: Path) -> None:
    path = write_heldout(tmp_path)
    expected = [
        EvalItem(id="astro_qa:zh:4opt:1", group="astro_qa:4opt:1", type="single_choice_4", subfield="天体物理学",
                 lang="zh", question="太阳是什么？", options=(("A", "行星"), ("B", "恒星"), ("C", "卫星"), ("D", "彗星")),
                 answer="B", source="astro_qa"),
        EvalItem(id="astro_qa:en:subjective:2", group="astro_qa:subjective:2", type="subjective", subfield="天文学史",
                 lang="en", question="Pulsar", options=(), answer="A rotating neutron star.", source="astro_qa",
                 type_label="terminology", prompt="Explain the term: Pulsar."),
    ]  # fmt: skip
    for where in (tmp_path, path.parent, path):
        assert load_items(where, "astro-qa") == expected
    assert [i.kind for i in expected] == ["single_choice", "subjective"]
    assert detect_format(tmp_path) == "astro-qa"


def test_real_heldout_items_load_with_every_type(small_corpus: Path) -> None:
    items = load_items(small_corpus)
    assert {i.type for i in items} == {"single_choice_4", "single_choice_5", "multi_select", "judgment", "subjective"}
    assert {i.lang for i in items} == {"zh", "en"}
    multi = [i for i in items if i.type == "multi_select"]
    assert all(len(i.options) >= 3 and set(i.answer) <= {o for o, _ in i.options} for i in multi)
    assert {i.answer for i in items if i.type == "judgment"} == {"true", "false"}


def test_heldout_file_without_its_columns_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "astro_qa_heldout" / "test.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"id": ["a"], "question": ["q"]}), path)
    with pytest.raises(EvalDataError, match=r"test\.parquet: missing column\(s\) group, type, subfield"):
        load_items(tmp_path, "astro-qa")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvalDataError, match=r"empty: no astro_qa_heldout/\*\.parquet"):
        load_items(empty, "astro-qa")


def test_cmmlu_csv_with_an_unnamed_index_column(tmp_path: Path) -> None:
    path = tmp_path / "astronomy.csv"
    path.write_text(
        ",Question,A,B,C,D,Answer\n"
        '0,太阳系中最大的行星是？,火星,木星,土星,"地球",B\n'
        '1,"Which planet has rings, famously?",Mercury,Venus,Saturn,Mars, c \n',
        encoding="utf-8",
    )
    items = load_items(path)  # .csv -> mc-csv
    assert items == [
        EvalItem(id="astronomy:0", group="astronomy:0", type="single_choice_4", subfield="astronomy", lang="zh",
                 question="太阳系中最大的行星是？", options=(("A", "火星"), ("B", "木星"), ("C", "土星"), ("D", "地球")),
                 answer="B", source="mc-csv:astronomy.csv"),
        EvalItem(id="astronomy:1", group="astronomy:1", type="single_choice_4", subfield="astronomy", lang="en",
                 question="Which planet has rings, famously?",
                 options=(("A", "Mercury"), ("B", "Venus"), ("C", "Saturn"), ("D", "Mars")), answer="C",
                 source="mc-csv:astronomy.csv"),
    ]  # fmt: skip


def test_ceval_style_csv_through_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "val.csv"
    path.write_text(
        "id,stem,opt1,opt2,opt3,key,explanation\n7,Which is a star?,Sun,Moon,Mars,A,The Sun.\n", encoding="utf-8"
    )
    mapping = parse_mapping("question=stem, A=opt1,B=opt2,C=opt3,answer=key")
    (item,) = load_items(path, "mc-csv", mapping)
    assert (item.id, item.type, item.options, item.answer) == (
        "7", "single_choice_3", (("A", "Sun"), ("B", "Moon"), ("C", "Mars")), "A",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Q,A,B,Answer\nx,1,2,A\n", r"bad\.csv: line 2: no question column 'question' \(columns: Q, A, B, Answer\)"),
        ("Question,A,B,Answer\nx,1,2,C\n", r"bad\.csv: line 2: column Answer: answer 'C' is not among the options AB"),
        ("Question,A,B,Answer\nx,1,2\n", r"bad\.csv: line 2: 3 fields, the header has 4"),
        ("Question,A,C,Answer\nx,1,2,A\n", r"bad\.csv: line 2: options AC: they must be A, B, \.\.\. without gaps"),
        ("", r"bad\.csv: empty CSV"),
    ],
)
def test_bad_csv_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EvalDataError, match=message):
        load_items(path)


def test_non_utf8_csv_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes("Question,A,B,Answer\n太阳,1,2,A\n".encode("gbk"))
    with pytest.raises(EvalDataError, match=r"gbk\.csv: not UTF-8"):
        load_items(path)
    with pytest.raises(EvalDataError, match=r"missing\.csv: no such file"):
        load_items(tmp_path / "missing.csv")


def test_jsonl_with_option_lists_judgments_and_subjective_items(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [
        {"q": "Pick the stars", "choices": ["Sun", "Moon", "Vega"], "gold": "AC", "topic": "stars"},
        {"q": "The Sun is a star.", "gold": "True"},
        {"q": "What is a pulsar?", "gold": "A rotating neutron star."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    items = load_items(path, mapping=parse_mapping("question=q,answer=gold,options=choices,subfield=topic"))
    assert [(i.type, i.answer, i.subfield) for i in items] == [
        ("multi_select", "AC", "stars"),
        ("judgment", "true", "mine"),
        ("subjective", "A rotating neutron star.", "mine"),
    ]
    assert items[0].options == (("A", "Sun"), ("B", "Moon"), ("C", "Vega"))
    path.write_text('{"question": "x", "answer": "y"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match=r"mine\.jsonl: line 2: not a JSON object"):
        load_items(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"q": "x", "choices": "Sun;Moon", "gold": "A"}, "options must be a list, got str"),
        ({"q": "x", "choices": list("abcdef"), "gold": "A"}, "6 options, at most 5"),
        ({"q": "x", "choices": [{"label": "A"}], "gold": "A"}, "option A has no `text`"),
        ({"q": "x", "choices": ["a", "b"], "gold": "AB", "kind": "single_choice_2"}, "does not fit the answer"),
        ({"q": "x", "choices": ["a", "b"], "gold": "A", "kind": "mcq"}, "'mcq' does not fit"),
        ({"q": "x", "gold": "True", "kind": "subjective"}, "does not fit the answer 'true'"),
    ],
)
def test_options_and_types_that_do_not_fit_are_one_clear_error(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match=rf"bad\.jsonl: line 1: .*{message}"):
        load_items(path, mapping=parse_mapping("question=q,answer=gold,options=choices,type=kind"))


def test_a_declared_multi_select_may_have_one_right_option(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"q": "x", "choices": ["a", "b"], "gold": "B", "kind": "multi_select"}) + "\n")
    (item,) = load_items(path, mapping=parse_mapping("question=q,answer=gold,options=choices,type=kind"))
    assert (item.type, item.answer) == ("multi_select", "B")


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,Question,A,B,Answer\n1,x,a,b,A\n1,y,a,b,B\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="item id '1' appears twice"):
        load_items(path)


@pytest.mark.parametrize(("text", "message"), [("question", "use key=column"), ("color=x", "unknown key")])
def test_bad_mapping(text: str, message: str) -> None:
    with pytest.raises(EvalDataError, match=message):
        parse_mapping(text)
