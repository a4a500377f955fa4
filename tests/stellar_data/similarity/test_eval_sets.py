"""eval_sets.py: eval sets read through a column mapping (CSV with an unnamed index column, JSONL,
JSON, Parquet) with the generic source readers; every problem one SourceFileError naming the eval set."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stellar_data.errors import SourceFileError
from stellar_data.similarity.eval_sets import read_eval_set
from stellar_data.steps.decontaminate import EvalSetSpec

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
