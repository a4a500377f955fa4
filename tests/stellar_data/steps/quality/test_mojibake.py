"""The mojibake step: exact, plausible repairs; quarantine (`mojibake`, `replacement_char`) with the
field and span; real text, however odd it looks, untouched. Frames are built as the build reads
them (the adapter, then assemble): the step runs before normalize, on the adapter's text."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import ftfy.bad_codecs
import ftfy.chardata
import jsonschema
import polars as pl
import pytest

import stellar_data as sd
from stellar_data.config import from_table
from stellar_data.plan import plan_build
from stellar_data.recipe import SourceSpec
from stellar_data.sources import ADAPTERS
from stellar_data.steps.assemble import assemble
from stellar_data.steps.quality.mojibake import Mojibake, MojibakeConfig, candidate_rows, text_columns
from stellar_data.text.mojibake import SINGLE_BYTE_CODECS, suspect_pattern
from tests.conftest import ROOT
from tests.helpers import write_json, write_recipe

FIELDS = ("instruction", "input", "output")


def raw_frames(recipe_path: Path, sources: Path | None = None) -> dict[str, tuple[SourceSpec, pl.DataFrame]]:
    """Each source of the recipe as `read` hands it to the record steps: adapter, then assemble."""
    recipe = sd.load_recipe(recipe_path, sources_dir=sources)
    frames: dict[str, tuple[SourceSpec, list[pl.DataFrame]]] = {}
    for planned in plan_build(recipe).files:
        spec, adapter = planned.spec, ADAPTERS[planned.spec.adapter]
        options = adapter.options() if spec.options is None else spec.options
        frame, _, _ = assemble(adapter.reader(planned.file, options, spec.lang), spec, planned.file)
        frames.setdefault(spec.name, (spec, []))[1].append(frame)
    return {name: (spec, pl.concat(parts, how="diagonal_relaxed")) for name, (spec, parts) in frames.items()}


def alpaca_frame(tmp_path: Path, records: list[dict], lang: str = "zh") -> tuple[SourceSpec, pl.DataFrame]:
    write_json(tmp_path / "data.json", records)
    recipe = write_recipe(
        tmp_path / "recipe.toml",
        f"""
        [corpus]
        name = "t"
        seed = 1
        sources_dir = "{tmp_path.as_posix()}"
        [[sources]]
        name = "s"
        adapter = "alpaca"
        path = "data.json"
        category = "general"
        lang = "{lang}"
        """,
    )
    return raw_frames(recipe)["s"]


def run(spec: SourceSpec, frame: pl.DataFrame, config: MojibakeConfig | None = None):
    return Mojibake(config or MojibakeConfig(), spec).run(frame, spec.name)


def texts(frame: pl.DataFrame) -> list[tuple[str, ...]]:
    return list(frame.select(FIELDS).iter_rows())


def one(tmp_path: Path, text: str, lang: str = "zh", config: MojibakeConfig | None = None):
    """The step's result on one record whose output is `text`."""
    spec, frame = alpaca_frame(tmp_path, [{"instruction": "说明", "input": "", "output": text}], lang)
    return run(spec, frame, config)


# --- real data: nothing changed, nothing quarantined ---------------------------------------------


@pytest.fixture(scope="module")
def real(shared_sources: Path) -> dict[str, tuple[SourceSpec, pl.DataFrame]]:
    return raw_frames(ROOT / "corpus" / "stellarspeak.toml", shared_sources)


# Fields that pay for Python (the vectorized prefilter's hits), each judged and left as it is: Greek
# letters before a space or a quote (how cp1253 / cp437 read a UTF-8 lead byte), pinyin before `‘`,
# and Han outside GB2312 (traditional characters, 蒭藁, 抔) for the GBK test. docs/quality/mojibake.md.
CANDIDATES = {"astro_qa": 60, "gsm8k": 0, "identity": 0, "alpaca_zh": 5, "alpaca_en": 0}


@pytest.mark.parametrize("source", sorted(CANDIDATES))
def test_no_real_record_is_changed_or_quarantined(real, source: str) -> None:
    spec, frame = real[source]
    assert frame.height > 0
    result = run(spec, frame)
    assert result.rejected.height == 0, result.rejected["message"].to_list()
    assert result.kept.equals(frame)
    assert result.stats.notes["repaired"] == 0 and result.stats.dropped == {}
    pattern = suspect_pattern(True)
    assert sum(len(candidate_rows(frame[c], pattern)) for c in text_columns(frame)) == CANDIDATES[source]


# --- the crafted copy: 40 of alpaca_zh_demo's first 200 records read as cp1252 -------------


def misread(records: list[dict], every: int, codec: str) -> list[dict]:
    return [
        {k: v.encode("utf-8").decode(codec) for k, v in r.items()} if i % every == 0 else r
        for i, r in enumerate(records)
    ]


@pytest.fixture(scope="module")
def alpaca_zh_200(shared_sources: Path) -> list[dict]:
    path = shared_sources / "LLaMA-Factory" / "data" / "alpaca_zh_demo.json"
    return json.loads(path.read_text(encoding="utf-8"))[:200]


@pytest.mark.parametrize(("codec", "every", "count"), [("sloppy-windows-1252", 5, 40), ("latin-1", 10, 20)])
def test_misread_records_are_repaired_byte_for_byte(tmp_path, alpaca_zh_200, codec, every, count) -> None:
    crafted = misread(alpaca_zh_200, every, codec)
    assert crafted[0]["instruction"] != alpaca_zh_200[0]["instruction"]
    if codec == "sloppy-windows-1252":
        assert "ä»€ä¹ˆæ˜¯" in "".join(r["instruction"] for r in crafted)  # the issue's `ä»€ä¹ˆæ˜¯APIï¼Ÿ` kind
    spec, frame = alpaca_frame(tmp_path, crafted)
    result = run(spec, frame)
    assert result.rejected.height == 0
    assert result.stats.notes["repaired"] == result.stats.notes["repaired_instruction"] == count
    kept, read = texts(result.kept), texts(frame)
    for i, record in enumerate(alpaca_zh_200):
        # A misread record is the upstream record again, byte for byte; the others are as read.
        assert kept[i] == (tuple(record[f] for f in FIELDS) if i % every == 0 else read[i]), i


def test_a_repair_is_refused_when_repair_is_off(tmp_path, alpaca_zh_200) -> None:
    spec, frame = alpaca_frame(tmp_path, misread(alpaca_zh_200[:10], 5, "sloppy-windows-1252"))
    result = run(spec, frame, MojibakeConfig(repair=False))
    assert result.kept.height == 8 and result.stats.dropped == {"mojibake": 2}
    assert result.rejected["row"].to_list() == [0, 5]  # where the adapter found them
    assert result.rejected["location"].to_list() == ["item 0", "item 5"]
    assert set(result.rejected["deliberate"].to_list()) == {False}
    message = result.rejected["message"][0]
    assert message.startswith("instruction: ") and "sloppy-windows-1252" in message and "repair = false" in message
    assert alpaca_zh_200[0]["instruction"][:10] in message  # the repair it would have made


# --- UTF-8 read as GBK ------------------------------------------------------------------------------


def test_utf8_read_as_gbk_is_repaired_when_the_round_trip_is_exact(tmp_path) -> None:
    original = "咖啡因能提高运动表现吗？"
    mojibake = original.encode("utf-8").decode("gbk")  # strict: every byte pair is GBK
    assert mojibake == "鍜栧暋鍥犺兘鎻愰珮杩愬姩琛ㄧ幇鍚楋紵"
    result = one(tmp_path, mojibake)
    assert result.kept["output"].to_list() == [original]
    assert result.stats.notes["repaired_output"] == 1


def test_utf8_read_as_gbk_losing_bytes_is_quarantined(tmp_path) -> None:
    original = "我们今天去公园散步吧，天气很好。"
    dropped = original.encode("utf-8").decode("gbk", errors="ignore")  # the reader dropped what GBK lacks
    result = one(tmp_path, dropped)
    assert result.kept.height == 0 and result.stats.dropped == {"mojibake": 1}
    message = result.rejected["message"][0]
    assert message.startswith("output: ") and "read as GBK" in message and "我们今天去公" in message
    replaced = original.encode("utf-8").decode("gbk", errors="replace")
    assert one(tmp_path / "replaced", replaced).stats.dropped == {"replacement_char": 1}


@pytest.mark.parametrize("text", ["小时", "镁", "太微垣", "6小时", "谢谢"])
def test_chinese_that_round_trips_through_gbk_by_chance_is_left_alone(tmp_path, text) -> None:
    # Real Astro-QA options and an identity prompt: their GBK bytes are valid UTF-8 (`小时` -> `Сʱ`),
    # but only of characters below U+0800, which no misread Chinese text repairs to.
    result = one(tmp_path, text)
    assert result.kept["output"].to_list() == [text] and result.rejected.height == 0


# --- damaged mojibake, U+FFFD, implausible repairs ---------------------------------------------------


def test_mojibake_whose_nbsp_became_a_space_is_quarantined_with_its_span(tmp_path) -> None:
    mojibake = "你好，世界！".encode().decode("sloppy-windows-1252")
    assert mojibake.startswith("ä½\xa0")
    result = one(tmp_path, mojibake.replace("\xa0", " "))  # what normalize would have done first
    assert result.stats.dropped == {"mojibake": 1}
    message = result.rejected["message"][0]
    assert "'ä½ å¥½" in message and "no exact round trip" in message


def test_a_french_nbsp_lost_is_quarantined_too(tmp_path) -> None:
    result = one(tmp_path, "voilÃ  le travail", lang="en")  # ftfy would guess the NBSP back: not exact
    assert result.stats.dropped == {"mojibake": 1} and "restore_byte_a0" in result.rejected["message"][0]


def test_replacement_characters_are_quarantined(tmp_path) -> None:
    result = one(tmp_path, "太阳的光谱\ufffd\ufffd型是G2V。")
    assert result.stats.dropped == {"replacement_char": 1}
    assert (
        result.rejected["message"][0]
        == "output: 2 U+FFFD replacement character(s), the first in '太阳的光谱\ufffd\ufffd型是G2V。'"
    )


def test_a_repair_into_another_script_is_refused(tmp_path) -> None:
    mojibake = "Привет".encode().decode("sloppy-windows-1252")
    result = one(tmp_path, f"Say {mojibake} in English", lang="en")
    assert result.stats.dropped == {"mojibake": 1}
    assert "not plausible en text" in result.rejected["message"][0] and "CYRILLIC" in result.rejected["message"][0]


def test_code_pages_outside_codecs_are_quarantined_not_repaired(tmp_path) -> None:
    mojibake = "“quoted”".encode().decode("sloppy-windows-1251")
    assert mojibake == "вЂњquotedвЂќ"
    assert one(tmp_path, mojibake, "en").stats.dropped == {"mojibake": 1}
    allowed = MojibakeConfig(codecs=("sloppy-windows-1251",))
    assert one(tmp_path / "1251", mojibake, "en", allowed).kept["output"].to_list() == ["“quoted”"]


def test_english_passages_of_a_chinese_source_are_repaired(tmp_path) -> None:
    result = one(tmp_path, "He said â€œhelloâ€\x9d, Â±1Â°.")  # what `“hello”, ±1°.` is in cp1252
    assert result.kept["output"].to_list() == ["He said “hello”, ±1°."]
    twice = "Ã‚Â±1Ã‚Â°"  # misread twice: both readings undone, and still exact
    assert one(tmp_path / "twice", twice).kept["output"].to_list() == ["±1°"]


# --- text that looks suspicious but is right -------------------------------------------------------

LEGITIMATE = [
    ("en", "Un café au lait, s’il vous plaît — déjà vu…"),
    ("en", "Herr Müller’s Straße, Fuß ball, naïve “quotes”"),
    ("en", "SÃO PAULO, CORAÇÃO, MAÇÃ; irmã e maçã"),
    ("en", "Spica: δ = −11° 09′ 40.8″ ± 0.5°, α Centauri, π r², 10⁻³ µm, Ångström"),
    ("zh", "什么是API？请用中文回答：（1）定义；（2）例子。「引号」、《书名》……"),
    ("zh", "工作分析是一項系統化的過程，旨在收集、組織並解釋有關工作職責的信息。"),
    ("zh", "蒭藁型变星的变光周期不可能是（）天。出发时携带的燃料与到达时的剩余量的对比相当于一座山和一抔土"),
    ("zh", "赤经 α = 6ʰ45ᵐ，赤纬 δ = −16°43′，视星等 −1.46；β 射线与 γ 射线"),
    ("zh", "拼音：nǐ hǎo，tiān wén xué；ā‘ 与 “α”"),
    ("zh", "“Acre”被翻译为“Akrea”，而“etelä”是芬兰语中的对应词。"),  # ftfy's badness flags `ä”` (dpo_zh_demo)
]


@pytest.mark.parametrize(("lang", "text"), LEGITIMATE)
def test_legitimate_text_is_untouched(tmp_path, lang, text) -> None:
    result = one(tmp_path, text, lang)
    assert result.kept["output"].to_list() == [text] and result.rejected.height == 0


def test_mojibake_in_other_real_files_is_found(tmp_path, shared_sources) -> None:
    # Files the recipe does not read hold real mojibake: a KTO prompt misread as latin-1, a C4 page
    # whose NBSPs were misread and then became spaces.
    data = shared_sources / "LLaMA-Factory" / "data"
    kto = next(m["content"] for r in json.loads((data / "kto_en_demo.json").read_text(encoding="utf-8"))
               for m in r["messages"] if "FranÃ§oise" in m["content"])  # fmt: skip
    repaired = one(tmp_path / "kto", kto, "en").kept["output"][0]
    assert "FranÃ§oise" in kto and "Nancy (Françoise Yip)" in repaired and "Ã" not in repaired
    c4 = next(json.loads(line)["text"] for line in (data / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()
              if "firstÂ saw" in line)  # fmt: skip
    result = one(tmp_path / "c4", c4, "en")
    assert result.stats.dropped == {"mojibake": 1} and "decode_inconsistent_utf8" in result.rejected["message"][0]


# --- the step as the chain runs it --------------------------------------------------------------------


def test_structured_fields_are_repaired_too(tmp_path) -> None:
    spec, frame = alpaca_frame(tmp_path, [{"instruction": "q", "input": "", "output": "a"}], "auto")
    frame = frame.with_columns(pl.lit("å¤ªé˜³").alias("_x_question"))  # 太阳 read as cp1252
    result = run(spec, frame)
    assert result.kept["_x_question"].to_list() == ["太阳"] and result.stats.notes["repaired"] == 1


def test_batches_change_nothing(tmp_path, alpaca_zh_200) -> None:
    crafted = misread(alpaca_zh_200, 5, "sloppy-windows-1252")
    crafted[7]["output"] += "\ufffd"
    spec, frame = alpaca_frame(tmp_path, crafted)
    step = pickle.loads(pickle.dumps(Mojibake(MojibakeConfig(), spec)))  # as a worker process gets it
    whole = step.run(frame, "s")
    parts = [step.run(frame.slice(start, 37), "s") for start in range(0, frame.height, 37)]
    assert pl.concat([p.kept for p in parts]).equals(whole.kept)
    assert pl.concat([p.rejected for p in parts]).equals(whole.rejected)
    assert sum(p.stats.notes["repaired"] for p in parts) == whole.stats.notes["repaired"] == 40
    assert whole.stats.dropped == {"replacement_char": 1} and whole.stats.reconciles


def test_excluded_sources_pass_untouched(tmp_path) -> None:
    spec, frame = alpaca_frame(tmp_path, [{"instruction": "ä½ å¥½", "input": "", "output": "x"}])
    result = run(spec, frame, MojibakeConfig(exclude_sources=("s",)))
    assert result.kept.equals(frame) and result.rejected.height == 0


# --- the recipe table ------------------------------------------------------------------------------------

SCHEMA = json.loads((ROOT / "schemas" / "recipe.schema.json").read_text(encoding="utf-8"))
FRAGMENT = SCHEMA["properties"]["filters"]["properties"]["mojibake"]


def test_the_schema_fragment_matches_the_config() -> None:
    jsonschema.Draft202012Validator.check_schema(FRAGMENT)
    properties = FRAGMENT["properties"]
    assert {
        k: tuple(v["default"]) if isinstance(v["default"], list) else v["default"] for k, v in properties.items()
    } == {
        "repair": True,
        "codecs": ("latin-1", "sloppy-windows-1252"),
        "gbk": True,
        "exclude_sources": (),
        "exclude_categories": (),
    }
    assert from_table(MojibakeConfig, {}) == MojibakeConfig()
    assert tuple(properties["codecs"]["items"]["enum"]) == SINGLE_BYTE_CODECS == tuple(ftfy.chardata.CHARMAP_ENCODINGS)
    table = {"repair": False, "codecs": ["cp437"], "gbk": False, "exclude_categories": ["math"]}
    jsonschema.validate(table, FRAGMENT)
    assert from_table(MojibakeConfig, table) == MojibakeConfig(
        repair=False, codecs=("cp437",), gbk=False, exclude_categories=("math",)
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"codecs": ["utf-16"]}, FRAGMENT)
