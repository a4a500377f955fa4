"""normalize: line ends, odd spaces, invisible / private-use characters, NFC, OpenCC per source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from stellar_data.ingest import IngestTask, ingest
from stellar_data.recipe import load_recipe
from stellar_data.record import RECORD_SCHEMA, TEXT_FIELDS
from stellar_data.sources import ADAPTERS, RawItem, SourceFile
from stellar_data.steps.normalize import _CHUNK_CHARS, ChineseConverter, NormalizeConfig, convert_texts, normalize
from tests.conftest import ROOT

NONE = NormalizeConfig()
T2S = NormalizeConfig(opencc="t2s")
T2S_PROTECTED = NormalizeConfig(opencc="t2s", protected_terms=("蒭藁",))

# What must never survive normalization.
FORBIDDEN = re.compile("[\u2002\u00a0\u3000\u2061\ufeff\ue000-\uf8ff]")


def record(i: int, instruction: str = "q", input_: str = "", output: str = "a") -> dict:
    return {
        "id": f"s:{i}",
        "instruction": instruction,
        "input": input_,
        "output": output,
        "category": "general",
        "source": "s",
        "lang": "zh",
        "group": f"s:{i}",
        "source_file": "f.json",
        "source_row": i,
        "template_id": None,
        "original_id": None,
        "copy_index": 0,
    }


def frame_of(*triples: tuple[str, str, str]) -> pl.DataFrame:
    rows = [record(i, *t) for i, t in enumerate(triples)]
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA))


def one(text: str, config: NormalizeConfig = NONE, field: str = "output") -> str:
    triple = {"instruction": "q", "input": "", "output": "a"}
    triple[field] = text
    out, _ = normalize(frame_of((triple["instruction"], triple["input"], triple["output"])), config, "s")
    return out[field][0]


# --- whitespace -------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["\u2002", "\u00a0", "\u3000"])
def test_odd_space_inside_becomes_plain_space(space: str) -> None:
    assert one(f"恒星{space}光谱") == "恒星 光谱"


@pytest.mark.parametrize("space", ["\u2002", "\u00a0", "\u3000"])
def test_odd_space_padding_is_stripped(space: str) -> None:
    assert one(f"{space}{space}太阳{space}") == "太阳"


def test_mixed_padding_is_stripped_in_every_text_field() -> None:
    out, _ = normalize(frame_of(("\u3000 问题\u00a0", "\u2002 A. 1 \n", " 答案\u3000\u3000")), NONE, "s")
    assert out.select(TEXT_FIELDS).row(0) == ("问题", "A. 1", "答案")


def test_crlf_and_cr_become_lf() -> None:
    assert one("A. 1\r\nB. 2\rC. 3") == "A. 1\nB. 2\nC. 3"


def test_embedded_newlines_are_kept() -> None:
    assert one("第一行\n第二行") == "第一行\n第二行"


# --- removed characters -------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\ue6ea", "\ue006", "\ue00b"])
def test_private_use_characters_are_removed(char: str) -> None:
    assert one(f"赤{char}道") == "赤道"


@pytest.mark.parametrize("char", ["\u2061", "\ufeff", "\u200b", "\u00ad"])
def test_invisible_characters_are_removed(char: str) -> None:
    assert one(f"{char}f{char}(x) = sin x") == "f(x) = sin x"


def test_control_characters_are_removed_but_tab_and_newline_kept() -> None:
    assert one("a\x00b\x07c\x1fd\te\nf") == "abcd\te\nf"


@pytest.mark.parametrize(
    "char",
    [
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200e",
        "\u200f",
        "\u061c",
    ],
)
def test_bidirectional_controls_are_removed(char: str) -> None:
    assert one(f"{char}price{char} 10\u202e$") == "price 10$"
    _, stats = normalize(frame_of(("q", "", f"a{char}b"), ("q", "", "ab")), NONE, "s")
    assert stats.notes["changed"] == 1


ZWJ, ZWNJ = "\u200d", "\u200c"


@pytest.mark.parametrize(
    "text",
    [
        f"می{ZWNJ}خواهم",  # Persian: ZWNJ between two Arabic-script letters
        f"\u0915\u094d{ZWJ}\u0937",  # Devanagari: ZWJ after a virama (half form)
        f"\u0d15\u0d4d{ZWNJ}",  # Malayalam, at the end of the text
        f"\u0dbb\u0dca{ZWJ}\u0dba",  # Sinhala: rakaaraansaya
        f"\u182d{ZWJ}",  # Mongolian
        f"x{ZWNJ}{ZWJ}\u0628",  # a run of joiners before an Arabic letter
        f"\U0001f468{ZWJ}\U0001f469{ZWJ}\U0001f467",  # family
        f"\U0001f469{ZWJ}\u2695\ufe0f",  # woman health worker
        f"\U0001f3f3\ufe0f{ZWJ}\U0001f308",  # rainbow flag
        f"\U0001f3c3\U0001f3fd{ZWJ}\u2640\ufe0f",  # woman running, skin tone
        f"\U0001f408{ZWJ}\u2b1b",  # black cat
    ],
)
def test_joiners_a_script_or_an_emoji_sequence_needs_are_kept(text: str) -> None:
    assert one(text) == text
    _, stats = normalize(frame_of(("q", "", text)), NONE, "s")
    assert stats.notes["changed"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"ab{ZWJ}cd", "abcd"),  # Latin
        (f"中{ZWNJ}文{ZWJ}字", "中文字"),  # Han
        (f"\U0001f600{ZWJ}a", "\U0001f600a"),  # an emoji, then no emoji
        (f"\U0001f600{ZWJ}{ZWJ}\U0001f600", "\U0001f600\U0001f600"),  # no sequence has two ZWJs in a row
        (f"\U0001f600{ZWNJ}\U0001f600", "\U0001f600\U0001f600"),  # emoji sequences join by ZWJ only
        (f"{ZWJ}start and end{ZWNJ}", "start and end"),
        (f"a\u200e{ZWJ}\u200fb", "ab"),  # judged by the visible neighbours
        (f"\u0915\u200e{ZWJ}\u0937", f"\u0915{ZWJ}\u0937"),
    ],
)
def test_joiners_elsewhere_are_removed(text: str, expected: str) -> None:
    assert one(text) == expected


def test_the_joiners_of_the_real_sources_are_all_kept(shared_sources: Path) -> None:
    # The recipe sources hold none; these LLaMA-Factory demo files hold Persian ZWNJs and emoji ZWJs.
    texts = []
    for name in ("dpo_zh_demo.json", "kto_en_demo.json"):
        texts += re.findall(r'"((?:[^"\\]|\\.)*)"', (shared_sources / "LLaMA-Factory/data" / name).read_text("utf-8"))
    texts = [json.loads(f'"{t}"') for t in texts if ZWJ in t or ZWNJ in t]
    assert len(texts) >= 3
    out, _ = normalize(frame_of(*[("q", "", t) for t in texts]), NONE, "s")
    assert [t.count(ZWJ) + t.count(ZWNJ) for t in out["output"]] == [t.count(ZWJ) + t.count(ZWNJ) for t in texts]


# --- NFC ----------------------------------------------------------------------------------------


def test_nfc_composes_combining_marks() -> None:
    assert one("e\u0301toile") == "\u00e9toile"
    assert one("Ångstro\u0308m") == "Ångström"


def test_nfc_keeps_already_composed_text() -> None:
    assert one("\u00e9toile") == "\u00e9toile"


# --- OpenCC -------------------------------------------------------------------------------------


def test_t2s_converts_traditional_to_simplified() -> None:
    assert one("請解釋什麼是黑洞", T2S, "instruction") == "请解释什么是黑洞"


def test_t2s_without_protected_terms_writes_opencc_form_of_mira() -> None:
    # OpenCC 1.4.2's real behaviour: 蒭 -> 𫇴 (U+2B1F4)
    assert one("蒭藁型變星", T2S) == "\U0002b1f4藁型变星"


def test_t2s_with_protected_terms_keeps_the_term_and_converts_the_rest() -> None:
    assert one("蒭藁型變星", T2S_PROTECTED) == "蒭藁型变星"


def test_protected_term_kept_in_every_field_and_occurrence() -> None:
    out, _ = normalize(frame_of(("什麼是蒭藁型變星？", "蒭藁、蒭藁", "蒭藁型變星是長週期變星。")), T2S_PROTECTED, "s")
    assert out.select(TEXT_FIELDS).row(0) == ("什么是蒭藁型变星？", "蒭藁、蒭藁", "蒭藁型变星是长周期变星。")


def test_simplified_mira_stays_as_written() -> None:
    assert one("刍藁型变星", T2S) == "刍藁型变星"
    assert one("刍藁型变星", T2S_PROTECTED) == "刍藁型变星"


def test_opencc_none_leaves_traditional_text() -> None:
    assert one("請解釋什麼是蒭藁型變星", NONE) == "請解釋什麼是蒭藁型變星"


def test_opencc_runs_after_cleaning() -> None:
    # odd spaces / private use around traditional text: both cleaned and converted
    assert one("\u3000請\ue6ea解釋\u2061黑洞\u00a0", T2S) == "请解释黑洞"


def test_t2s_maps_each_field_back_to_its_own_row_and_column() -> None:
    triples = [(f"問題{i}", f"輸入{i}" if i % 2 else "", f"答案{i}：變星") for i in range(50)]
    out, _ = normalize(frame_of(*triples), T2S, "s")
    assert out["instruction"].to_list() == [f"问题{i}" for i in range(50)]
    assert out["input"].to_list() == [f"输入{i}" if i % 2 else "" for i in range(50)]
    assert out["output"].to_list() == [f"答案{i}：变星" for i in range(50)]
    assert out["id"].to_list() == [f"s:{i}" for i in range(50)]


@pytest.mark.parametrize("config_name", ["t2s", "tw2s", "hk2s"])
def test_opencc_leaves_every_character_below_u2e80_alone(config_name: str) -> None:
    # normalize sends OpenCC only the texts holding a character >= U+2E80: this is why that is safe
    converter = ChineseConverter(config_name, ())
    chars = [chr(c) for c in range(0x20, 0x2E80) if not 0xD800 <= c <= 0xDFFF]
    assert converter.convert(chars) == chars
    joined = "".join(chars)
    assert converter.convert([joined]) == [joined]


def test_t2s_converts_only_rows_holding_cjk_and_keeps_the_others_identical() -> None:
    triples = [("plain English question", "", "résumé — naïve café"), ("請問", "English input", "變星 and text")]
    out, stats = normalize(frame_of(*triples), T2S, "s")
    assert out.select(TEXT_FIELDS).rows() == [
        ("plain English question", "", "résumé — naïve café"),
        ("请问", "English input", "变星 and text"),
    ]
    assert stats.notes["changed"] == 1


def test_t2s_on_empty_frame() -> None:
    empty = pl.from_arrow(RECORD_SCHEMA.empty_table())
    out, stats = normalize(empty, T2S, "s")
    assert out.height == 0
    assert (stats.total, stats.kept, stats.notes["changed"]) == (0, 0, 0)


# --- converting the runs that may change (opencc_scope.py) ---------------------------------------

TRICKY = [
    "乾隆，乾",  # 乾 alone becomes 干; inside the run 乾隆 it stays
    "天乾物燥，乾隆年間，乾",
    "乾",
    "頭髮發白，發髮",
    "深沈的沈先生",  # 沈 changes only inside 深沈
    "蒭藁型變星，乾隆",  # a protected term: converted whole, the term kept
    "黑洞 and English",
    "",
]


@pytest.mark.parametrize("runs_share", [1.0, 0.25, 0.0])
def test_convert_texts_equals_converting_each_text_whole(runs_share: float) -> None:
    # 1.0: always by runs; 0.0: always whole (the fallback for mostly traditional text)
    texts = pl.Series("output", TRICKY * 3)
    expected = ChineseConverter("t2s", ("蒭藁",)).convert(texts.to_list())
    assert expected[0] == "乾隆，干" and expected[5] == "蒭藁型变星，乾隆"
    assert convert_texts(texts, T2S_PROTECTED, runs_share).to_list() == expected
    assert texts.to_list() == TRICKY * 3  # the input is left as it was


def test_convert_texts_by_runs_on_real_simplified_and_traditional_text(shared_sources: Path) -> None:
    data = shared_sources / "LLaMA-Factory" / "data"
    items = json.loads((data / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    simplified = [item[f] for item in items for f in TEXT_FIELDS if item.get(f)]
    traditional = ChineseConverter("s2t", ()).convert(simplified)
    texts = pl.Series(simplified + traditional + TRICKY)
    expected = ChineseConverter("t2s", ("蒭藁",)).convert(texts.to_list())
    assert sum(a != b for a, b in zip(texts.to_list(), expected, strict=True)) > 500
    assert convert_texts(texts, T2S_PROTECTED, runs_share=1.0).to_list() == expected


# --- ChineseConverter batching ------------------------------------------------------------------


def test_converter_keeps_length_and_order_across_chunks() -> None:
    texts = [f"{i}號蒭藁型變星" + "黑" * 40 for i in range(100_000)]
    assert sum(len(t) + 1 for t in texts) > _CHUNK_CHARS  # more than one chunk
    out = ChineseConverter("t2s", ("蒭藁",)).convert(texts)
    assert len(out) == len(texts)
    assert out == [f"{i}号蒭藁型变星" + "黑" * 40 for i in range(100_000)]


def test_converter_handles_items_larger_than_a_chunk() -> None:
    big = "變" * (_CHUNK_CHARS + 1)  # one item alone is over the chunk size
    texts = ["請", big, "蒭藁", big, "什麼", "", big, "黑洞"]
    out = ChineseConverter("t2s", ("蒭藁",)).convert(texts)
    small = "变" * len(big)
    assert out == ["请", small, "蒭藁", small, "什么", "", small, "黑洞"]


def test_converter_empty_list() -> None:
    assert ChineseConverter("t2s", ()).convert([]) == []


def test_converter_keeps_empty_strings() -> None:
    assert ChineseConverter("t2s", ()).convert(["", "變", "", ""]) == ["", "变", "", ""]


# --- stats --------------------------------------------------------------------------------------


def test_stats_count_changed_records() -> None:
    frame = frame_of(
        ("q", "", "a"),  # unchanged
        ("q\u3000", "", "a"),  # changed (padding)
        ("q", "x\r\ny", "a"),  # changed (CRLF)
        ("q", "", "答案"),  # unchanged
        ("q", "", "\ufeffa"),  # changed (BOM)
    )
    out, stats = normalize(frame, NONE, "s")
    assert stats.notes["changed"] == 3
    assert (stats.step, stats.source, stats.total, stats.kept) == ("normalize", "s", 5, 5)
    assert stats.reconciles
    assert out.height == 5


def test_stats_count_opencc_changes() -> None:
    _, stats = normalize(frame_of(("請", "", "a"), ("请", "", "a"), ("q", "", "變")), T2S, "s")
    assert stats.notes["changed"] == 2


def test_stats_count_a_record_changed_in_several_fields_once() -> None:
    _, stats = normalize(frame_of(("q\u3000", "\u00a0x", "a\r\n"), ("q", "", "a")), NONE, "s")
    assert stats.notes["changed"] == 1


def test_non_text_columns_are_untouched() -> None:
    frame = frame_of(("\u3000q", "", "a"))
    out, _ = normalize(frame, T2S, "s")
    others = [c for c in frame.columns if c not in TEXT_FIELDS]
    assert out.select(others).equals(frame.select(others))
    assert out.schema == frame.schema


# --- real data ----------------------------------------------------------------------------------


def test_real_astro_qa_zh_4opt_has_no_odd_characters_after_ingest(shared_sources: Path) -> None:
    # The adapter reads the whole data/ folder (ZH + EN), as the StellarSpeak recipe names it.
    recipe = load_recipe(ROOT / "corpus" / "stellarspeak.toml", sources_dir=shared_sources)
    spec = recipe.source("astro_qa")
    (relative,) = spec.paths
    file = SourceFile(shared_sources / relative, relative)
    zh_4opt = f"{relative}/ZH/single-select multi choice(4)_ZH.xlsx"
    assert spec.opencc == "t2s" and "蒭藁" in recipe.protected_terms

    # Precondition: the raw items really hold the characters (otherwise the test proves nothing),
    # in the triples and in the structured fields alike.
    raw_items = [
        e
        for e in ADAPTERS["astro_qa"].reader(file, spec.options, spec.lang)
        if isinstance(e, RawItem) and e.file == zh_4opt
    ]
    raw = [t for e in raw_items for t in (e.instruction, e.input, e.output)]
    raw_found = {ch for t in raw for ch in FORBIDDEN.findall(t)}
    assert {"\u2002", "\u00a0", "\u3000", "\u2061", "\ufeff"} <= raw_found
    assert any("\ue000" <= ch <= "\uf8ff" for ch in raw_found)
    raw_extra_found = {ch for e in raw_items for t in e.extra.values() for ch in FORBIDDEN.findall(t)}
    assert {"\u2002", "\u00a0", "\u3000"} <= raw_extra_found

    result = ingest(IngestTask(spec, file, file_index=0, seed=recipe.seed, protected_terms=recipe.protected_terms))
    assert result.records is not None
    records = result.records.filter(pl.col("source_file") == zh_4opt)
    assert records.height > 1200
    assert set(records["lang"].to_list()) == {"zh"}
    assert records["id"].str.starts_with("astro_qa:zh:4opt:").all()
    extra = sorted(c for c in result.records.columns if c.startswith("_x_"))
    assert {"_x_question", "_x_answer", "_x_explanation", "_x_option_A", "_x_option_D"} <= set(extra)
    fields = [*TEXT_FIELDS, *extra]
    offenders = [
        (rid, field, sorted(f"U+{ord(c):04X}" for c in set(FORBIDDEN.findall(text))))
        for rid, *texts in records.select("id", *fields).iter_rows()
        for field, text in zip(fields, texts, strict=True)
        if FORBIDDEN.search(text)
    ]
    assert offenders == []
    for name in fields:
        texts = records[name].to_list()
        assert all(t == t.strip() for t in texts), name
        assert not any("\r" in t for t in texts), name
    # The whole source (EN too) is clean.
    everywhere = [
        rid
        for rid, *texts in result.records.select("id", *fields).iter_rows()
        if any(FORBIDDEN.search(t) for t in texts)
    ]
    assert everywhere == []


def test_nfc_fast_path_equals_full_normalization_on_random_unicode() -> None:
    import random

    from stellar_data.steps.normalize import nfc

    rng = random.Random(7)
    pools = [
        range(0x20, 0x250),
        range(0x300, 0x370),
        range(0x1100, 0x11FF),
        range(0xAC00, 0xAC40),
        range(0xF900, 0xFA10),
        range(0x4E00, 0x4E40),
    ]
    texts = ["".join(chr(rng.choice(rng.choice(pools))) for _ in range(rng.randint(0, 12))) for _ in range(5000)]
    series = pl.Series(texts, dtype=pl.String)
    assert nfc(series).to_list() == series.str.normalize("NFC").to_list()


def test_clean_and_nfc_equals_clean_then_full_nfc() -> None:
    """One scan picks the rows for both; a row NFC changes only once cleaning joined a base letter to
    its combining mark (e + ZWSP + acute) is still picked."""
    import random

    from stellar_data.steps.normalize import clean, clean_and_nfc

    rng = random.Random(11)
    pieces = ["e", "\u200b", "\u0301", "\u3000", " ", "\r\n", "天", "\ufeff", "A", "\u00a0", "\uf900", "\x07"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(5000)]
    texts += ["e\u200b\u0301", "plain text", ""]
    series = pl.Series(texts, dtype=pl.String)
    expected = clean(series).str.normalize("NFC").to_list()
    assert clean_and_nfc(series).to_list() == expected
    assert clean_and_nfc(series)[-3] == "\u00e9"
