"""Integrity end to end: near-duplicates and decontamination in a build of the real StellarSpeak
recipe on the real sources (../shared/sources), and in a crafted build with planted contamination.

Both steps run on source items, before template expansion and mixing; the manifest reports the
near-duplicate clusters and the removals per eval set and source; the quarantine keeps the evidence."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path

import polars as pl
import pytest

import stellar_data as sd
from stellar_data.ingest import IngestTask, ingest
from stellar_data.similarity.fold import fold_texts
from stellar_data.sources.gsm8k import Gsm8kOptions, format_solution
from stellar_data.writers.manifest import reconcile_errors
from tests.conftest import ROOT
from tests.helpers import write_json, write_recipe

RECIPE = ROOT / "corpus" / "stellarspeak.toml"
GSM8K_DIR = "grade-school-math/grade_school_math/data"
CONTAMINATED = re.compile(r"^holds (?P<set>\S+) item (?P<item>\S+) \((?P<pct>\d+)% of its n-grams\): «(?P<span>.+)»$")
NEAR = re.compile(r"^near-duplicate of (?P<kept>\S+) \(estimated Jaccard (?P<sim>[0-9.]+)\)$")
VARIANT_OR_COPY = re.compile(r":(t|c)\d+$")

# GSM8K test vs train, pinned: test item 602 ("A plane travels 1200 miles in 3 hours. At the same
# rate, how many additional hours would it take to travel an additional 2000 miles?") is held, at
# 2/3 of its 8-grams, by two train items that change only the vehicle and the numbers.
GSM8K_OVERLAP = {"gsm8k:1314": "602", "gsm8k:5162": "602"}

# Near-duplicates in the real data, reviewed by hand: Astro-QA's duplicated questions (one group, the
# options shuffled), e.g. 234 / 499 (巴西里约热内卢 ... 月亮位于头顶正上方), 235 / 500 (北京 ... 地球同步轨道卫星),
# and rewordings the group key does not catch (KNOWN_NEAR_PAIRS). Their 5-gram sets overlap at
# 0.73-0.80: around the 0.8 threshold, where the 64-bin MinHash estimate decides, so which of them a
# build reports moves with the hash function; every one reported must be such a pair.
# Pairs of different groups a MinHash estimate may also put over the threshold (true 5-gram Jaccard
# 0.73-0.75): 55 / 56 share a long explanation of 赤纬 (declination); 929 rewords 875 with the same
# options; 571 rewords 176 (月掩的 2 等及以上恒星) with the options reversed.
KNOWN_NEAR_PAIRS = {
    ("astro_qa:zh:4opt:55", "astro_qa:zh:4opt:56"),
    ("astro_qa:zh:4opt:875", "astro_qa:zh:4opt:929"),
    ("astro_qa:zh:4opt:176", "astro_qa:zh:4opt:571"),
}


@pytest.fixture(scope="module")
def corpus(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(RECIPE, out=tmp_path_factory.mktemp("integrity") / "corpus", sources=shared_sources, workers=2)


@pytest.fixture(scope="module")
def quarantine(corpus: sd.Corpus) -> pl.DataFrame:
    return corpus.quarantine


@pytest.fixture(scope="module")
def written(corpus: sd.Corpus) -> pl.DataFrame:
    """Train and validation records as written."""
    splits = ("train", "validation")
    return pl.concat([corpus.frame_of(split).collect().with_columns(split=pl.lit(split)) for split in splits])


@pytest.fixture(scope="module")
def astro_groups(shared_sources: Path) -> dict[str, str]:
    """Every Astro-QA item's group, as the adapter assigns it (items removed later included)."""
    recipe = sd.load_recipe(RECIPE, sources_dir=shared_sources)
    plan = sd.plan_build(recipe)
    (planned,) = [p for p in plan.files if p.spec.name == "astro_qa"]
    result = ingest(IngestTask(planned.spec, planned.file, planned.index, recipe.seed, recipe.protected_terms))
    assert result.records is not None
    return dict(result.records.select("id", "group").iter_rows())


def rows_of(quarantine: pl.DataFrame, rule: str) -> list[dict]:
    return quarantine.filter(pl.col("rule") == rule).sort("id").to_dicts()


def gsm8k(shared_sources: Path, split: str) -> list[dict]:
    return [
        json.loads(line) for line in (shared_sources / GSM8K_DIR / f"{split}.jsonl").read_text("utf-8").splitlines()
    ]


def item_id(record_id: str) -> str:
    return re.sub(r"(:t\d+)?(:c\d+)?$", "", record_id)


# --- the manifest -----------------------------------------------------------------------------------


def test_counts_reconcile(corpus: sd.Corpus) -> None:
    assert reconcile_errors(corpus.manifest) == []


def test_decontamination_report_per_eval_set_and_source(corpus: sd.Corpus) -> None:
    manifest = corpus.manifest
    report = manifest["decontamination"]
    assert set(report) == {"astro_qa_heldout", "gsm8k_test"}
    for name, entry in report.items():
        assert set(entry) == {"removed", "by_source", "eval_items", "too_short"}, name
        assert entry["removed"] == sum(entry["by_source"].values()), name
        assert set(entry["by_source"]) <= set(manifest["sources"]), name
    assert report["gsm8k_test"]["eval_items"] == 1319
    assert report["astro_qa_heldout"]["eval_items"] == manifest["sources"]["astro_qa"]["counts"]["held_out"] > 0
    assert report["astro_qa_heldout"]["removed"] > 0
    # per source: the manifest's decontaminated counts are the report's removals
    for name, source in manifest["sources"].items():
        assert source["counts"]["decontaminated"] == sum(e["by_source"].get(name, 0) for e in report.values()), name


def test_gsm8k_test_vs_train_overlap_is_pinned(corpus: sd.Corpus) -> None:
    assert corpus.manifest["decontamination"]["gsm8k_test"]["removed"] == len(GSM8K_OVERLAP)
    assert corpus.manifest["decontamination"]["gsm8k_test"]["by_source"] == {"gsm8k": len(GSM8K_OVERLAP)}


def test_gsm8k_test_removes_nothing_from_astro_qa(corpus: sd.Corpus, quarantine: pl.DataFrame) -> None:
    by_source = corpus.manifest["decontamination"]["gsm8k_test"]["by_source"]
    assert "astro_qa" not in by_source
    for row in rows_of(quarantine, "contaminated"):
        if row["source"] == "astro_qa":
            assert CONTAMINATED.match(row["message"])["set"] == "astro_qa_heldout", row  # type: ignore[index]


def test_near_duplicate_report_holds_the_astro_qa_pairs(corpus: sd.Corpus, astro_groups: dict[str, str]) -> None:
    manifest = corpus.manifest
    report = manifest["near_duplicates"]
    assert set(report) == {"clusters", "dropped", "cluster_sizes", "largest"}
    pairs = {(c["kept"], d) for c in report["largest"] for d in c["dropped"]}
    assert pairs
    for kept, dropped in pairs:
        assert astro_groups[kept] == astro_groups[dropped] or (kept, dropped) in KNOWN_NEAR_PAIRS, (kept, dropped)
    assert report["clusters"] == sum(report["cluster_sizes"].values()) >= 1
    assert report["dropped"] == sum((int(size) - 1) * n for size, n in report["cluster_sizes"].items())
    assert report["dropped"] == sum(s["counts"]["near_duplicates"] for s in manifest["sources"].values())
    for cluster in report["largest"]:
        assert cluster["dropped"] == sorted(cluster["dropped"])
        assert 0.8 <= cluster["min_similarity"] <= 1  # the recipe's threshold
    # identity is excluded from near-dedup in the recipe
    assert manifest["sources"]["identity"]["counts"]["near_duplicates"] == 0


def test_near_duplicate_pairs_share_a_group_or_are_the_reviewed_pairs(
    quarantine: pl.DataFrame, astro_groups: dict[str, str]
) -> None:
    rows = rows_of(quarantine, "near_duplicate")
    assert rows
    for row in rows:
        kept = NEAR.match(row["message"])["kept"]  # type: ignore[index]
        if row["source"] == "astro_qa" and kept.startswith("astro_qa:"):
            assert astro_groups[row["id"]] == astro_groups[kept] or (kept, row["id"]) in KNOWN_NEAR_PAIRS, (kept, row)
        else:
            assert (kept, row["id"]) in KNOWN_NEAR_PAIRS, row


# --- the quarantine: evidence -------------------------------------------------------------------


def test_quarantine_rows_for_the_gsm8k_overlap_name_the_test_items_and_spans(
    quarantine: pl.DataFrame, shared_sources: Path
) -> None:
    test, train = gsm8k(shared_sources, "test"), gsm8k(shared_sources, "train")
    rows = [r for r in rows_of(quarantine, "contaminated") if r["message"].startswith("holds gsm8k_test ")]
    assert {r["id"]: CONTAMINATED.match(r["message"])["item"] for r in rows} == GSM8K_OVERLAP  # type: ignore[index]
    for row in rows:
        evidence = CONTAMINATED.match(row["message"])
        assert evidence is not None
        assert row["source"] == "gsm8k" and row["deliberate"] and row["file"] == f"{GSM8K_DIR}/train.jsonl"
        assert (
            row["row"] == int(row["id"].split(":")[1]) and row["location"] == f"line {row['row'] + 1}"
        )  # where the adapter found it
        assert evidence["pct"] == "67"
        question = fold_texts(pl.Series([test[int(evidence["item"])]["question"]]), convert_traditional=True)[0]
        trained = fold_texts(pl.Series([train[row["row"]]["question"]]), convert_traditional=True)[0]
        span = evidence["span"]
        assert len(span.split()) >= 8 and span in question and span in trained
    assert rows[0]["message"].endswith(
        "«miles in 3 hours at the same rate how many additional hours would it take to travel an additional»"
    )


def _tokens(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).lower())


def test_gsm8k_overlap_matches_an_independent_count(shared_sources: Path) -> None:
    """8-grams recomputed here, without the library's folding or index: the same train items and test
    item at or above half of the question's n-grams."""
    test, train = gsm8k(shared_sources, "test"), gsm8k(shared_sources, "train")

    def grams(tokens: list[str]) -> set[tuple[str, ...]]:
        return {tuple(tokens[i : i + 8]) for i in range(len(tokens) - 7)} if len(tokens) >= 8 else {tuple(tokens)}

    items = []
    for record in test:
        tokens = _tokens(record["question"])
        items.append(grams(tokens if len(tokens) >= 20 else tokens + _tokens(record["answer"])))
    index: dict[tuple[str, ...], list[int]] = {}
    for position, item in enumerate(items):
        for gram in item:
            index.setdefault(gram, []).append(position)
    found = {}
    for row, record in enumerate(train):
        shared: dict[int, int] = {}
        for gram in grams(_tokens(record["question"] + " " + format_solution(record["answer"], Gsm8kOptions()))):
            for position in index.get(gram, ()):
                shared[position] = shared.get(position, 0) + 1
        best = max(((n / len(items[p]), p) for p, n in shared.items()), default=(0.0, -1))
        if best[0] >= 0.5:
            found[f"gsm8k:{row}"] = str(best[1])
    assert found == GSM8K_OVERLAP


def test_contaminated_rows_name_their_evidence(corpus: sd.Corpus, quarantine: pl.DataFrame) -> None:
    heldout = set(corpus.table_of("astro_qa_heldout").collect()["id"])
    rows = rows_of(quarantine, "contaminated")
    assert len(rows) == sum(e["removed"] for e in corpus.manifest["decontamination"].values())
    for row in rows:
        evidence = CONTAMINATED.match(row["message"])
        assert evidence is not None, row
        assert row["deliberate"] and row["raw"] is None
        assert 50 <= int(evidence["pct"]) <= 100 and evidence["span"].strip()
        if evidence["set"] == "astro_qa_heldout":
            assert evidence["item"] in heldout, row  # the held-out item it holds
            assert row["id"] not in heldout
        else:
            assert evidence["set"] == "gsm8k_test" and evidence["item"].isdigit()


def test_quarantine_by_rule_matches_the_counts(corpus: sd.Corpus, quarantine: pl.DataFrame) -> None:
    manifest = corpus.manifest
    by_rule = manifest["quarantine"]["by_rule"]
    near = sum(s["counts"]["near_duplicates"] for s in manifest["sources"].values())
    decon = sum(s["counts"]["decontaminated"] for s in manifest["sources"].values())
    assert by_rule["near_duplicate"] == near == manifest["near_duplicates"]["dropped"] > 0
    assert by_rule["contaminated"] == decon > 0
    assert quarantine.filter(pl.col("rule") == "near_duplicate").height == near
    assert quarantine.filter(pl.col("rule") == "contaminated")["id"].n_unique() == decon


# --- on source items, before expansion and mixing ------------------------------------------------------


def test_removed_ids_are_items_never_template_variants_or_copies(corpus: sd.Corpus, quarantine: pl.DataFrame) -> None:
    removed = quarantine.filter(pl.col("rule").is_in(["near_duplicate", "contaminated", "duplicate"]))
    assert removed.height > 0
    for row in removed.iter_rows(named=True):
        assert not VARIANT_OR_COPY.search(row["id"]), row
        for match in (NEAR.match(row["message"]), CONTAMINATED.match(row["message"])):
            if match is not None and "kept" in match.groupdict():
                assert not VARIANT_OR_COPY.search(match["kept"]), row
    for cluster in corpus.manifest["near_duplicates"]["largest"]:
        assert not any(VARIANT_OR_COPY.search(i) for i in [cluster["kept"], *cluster["dropped"]])


def test_removed_items_are_absent_and_every_template_variant_survives(
    corpus: sd.Corpus, quarantine: pl.DataFrame, written: pl.DataFrame
) -> None:
    removed = set(quarantine.filter(pl.col("rule").is_in(["near_duplicate", "contaminated"]))["id"])
    items = written.with_columns(pl.col("id").map_elements(item_id, return_dtype=pl.String).alias("item"))
    assert not removed & set(items["item"])
    # each kept near-duplicate is still written (train / validation variants, or held out)
    heldout = set(corpus.table_of("astro_qa_heldout").collect()["id"])
    for cluster in corpus.manifest["near_duplicates"]["largest"]:
        assert cluster["kept"] in set(items["item"]) | heldout
    # 20 template variants of every astronomy item, none removed as a near-duplicate of another
    astro = items.filter(pl.col("source") == "astro_qa")
    assert astro.group_by("item").len()["len"].unique().to_list() == [20]
    counts = corpus.manifest["sources"]["astro_qa"]["counts"]
    assert astro.height == 20 * counts["kept"]
    # the mixture's copies: as many as the manifest says, none removed
    for name, source in corpus.manifest["sources"].items():
        c = source["counts"]
        train = written.filter((pl.col("source") == name) & (pl.col("split") == "train"))
        assert train.filter(pl.col("copy_index") > 0).height == c["mix"]["copies"], name


# --- a crafted build: planted contamination --------------------------------------------------------------

ZH_QUESTION = "在不考虑消光的前提下，一颗绝对星等约为0.7等的恒星，若其视星等为15等，那么它距离我们大约有多远？"
ZH_OPTIONS = ["7千秒差距", "12千秒差距", "20千秒差距", "30千秒差距"]
TRADITIONAL_REPUNCTUATED = (
    "在不考慮消光的前提下 一顆絕對星等約為0.7等的恆星;若其視星等為 15 等——那麼它距離我們大約有多遠??"
)
ZH_TEMPLATE = "你是一位资深天文学家。以下是一道【天体物理学】方向的单选题。有人说“{}”，你怎么看？"


def crafted_sources(root: Path, shared_sources: Path) -> Path:
    src = root / "src"
    test_jsonl = src / GSM8K_DIR / "test.jsonl"
    test_jsonl.parent.mkdir(parents=True)
    test_jsonl.symlink_to(shared_sources / GSM8K_DIR / "test.jsonl")
    csv = [",Question,A,B,C,D,Answer", f"0,{ZH_QUESTION},{','.join(ZH_OPTIONS)},B"]
    csv += [
        "1,下列哪颗行星拥有最明显的光环系统？,水星,金星,土星,火星,C",
        "2,月球绕地球公转一周大约需要多少天？,7,27.3,30,365,B",
    ]
    (src / "evals").mkdir()
    (src / "evals" / "astro_cn.csv").write_text("\n".join(csv) + "\n", encoding="utf-8")
    gsm_test_0 = gsm8k(shared_sources, "test")[0]["question"]
    gsm_train_0 = gsm8k(shared_sources, "train")[0]["question"]
    write_json(
        src / "general_en.json",
        [
            {
                "instruction": "Give three tips for staying healthy.",
                "input": "",
                "output": "Eat well, exercise, sleep.",
            },
            {  # (a) a real GSM8K test question wrapped in a template
                "instruction": "Solve the following grade-school math problem step by step.",
                "input": f"Question: {gsm_test_0}\nPlease show your work.",
                "output": "She makes $18 every day at the farmer's market.",
            },
            {"instruction": "What is the capital of France?", "input": "", "output": "Paris."},
            {"instruction": gsm_train_0, "input": "", "output": "Natalia sold 72 clips altogether."},  # train: kept
            {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        ],
    )
    write_json(
        src / "general_zh.json",
        [
            {"instruction": "写一首关于春天的短诗。", "input": "", "output": "春风拂面，桃花盛开，燕子归来。"},
            {  # (b) the crafted eval question, traditional and re-punctuated, in an astronomy template
                "instruction": ZH_TEMPLATE.format(TRADITIONAL_REPUNCTUATED),
                "input": "",
                "output": "我认为大约是12千秒差距。",
            },
            {"instruction": "木星有多少颗已知的卫星？", "input": "", "output": "截至目前，木星已知的卫星超过90颗。"},
            {"instruction": "解释一下什么是光年。", "input": "", "output": "光年是光在真空中一年内传播的距离。"},
        ],
    )
    write_json(
        src / "forum_tw.json",
        [  # (b) again from a source not converted with OpenCC: folding converts it; options included
            {
                "instruction": "請回答下列單選題：",
                "input": f"{TRADITIONAL_REPUNCTUATED}\nA. 7千秒差距 B. 12千秒差距 C. 20千秒差距 D. 30千秒差距",
                "output": "B",
            },
            {"instruction": "什麼是黑洞？", "input": "", "output": "黑洞是引力強大到連光都無法逃逸的天體。"},
        ],
    )
    return src


def crafted_recipe(root: Path) -> Path:
    return write_recipe(
        root / "recipe.toml",
        """
        [corpus]
        name = "crafted"
        seed = 7
        sources_dir = "src"
        allow_outside_sources = true  # the GSM8K test file is a link to ../shared/sources

        [split]
        validation_fraction = 0.0

        [[sources]]
        name = "general_en"
        adapter = "alpaca"
        path = "general_en.json"
        category = "general"
        lang = "en"

        [[sources]]
        name = "general_zh"
        adapter = "alpaca"
        path = "general_zh.json"
        category = "general"
        lang = "zh"
        opencc = "t2s"

        [[sources]]
        name = "forum_tw"
        adapter = "alpaca"
        path = "forum_tw.json"
        category = "general"
        lang = "zh"

        [near_dedup]
        threshold = 0.8

        [decontaminate]
        threshold = 0.5

        [[decontaminate.eval_sets]]
        name = "gsm8k_test"
        path = "grade-school-math/grade_school_math/data/test.jsonl"
        question = "question"
        answer = "answer"

        [[decontaminate.eval_sets]]
        name = "astro_cn"
        path = "evals/astro_cn.csv"
        question = "Question"
        options = ["A", "B", "C", "D"]
        answer = "Answer"
        """,
    )


@pytest.fixture(scope="module")
def crafted(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[sd.Corpus, sd.Corpus]:
    root = tmp_path_factory.mktemp("crafted")
    crafted_sources(root, shared_sources)
    recipe = crafted_recipe(root)
    return sd.build(recipe, out=root / "one", workers=1), sd.build(recipe, out=root / "two", workers=2)


def test_crafted_planted_items_are_removed_with_evidence(crafted: tuple[sd.Corpus, sd.Corpus]) -> None:
    corpus, _ = crafted
    rows = {r["id"]: r for r in rows_of(corpus.quarantine, "contaminated")}
    assert set(rows) == {"general_en:1", "general_zh:1", "forum_tw:0"}
    evidence = {i: CONTAMINATED.match(r["message"]) for i, r in rows.items()}
    assert all(evidence.values()), rows
    assert (evidence["general_en:1"]["set"], evidence["general_en:1"]["item"]) == ("gsm8k_test", "0")
    assert evidence["general_en:1"]["pct"] == "100"
    assert evidence["general_en:1"]["span"].startswith("janet s ducks lay 16 eggs per day")
    for record_id in ("general_zh:1", "forum_tw:0"):
        assert (evidence[record_id]["set"], evidence[record_id]["item"]) == ("astro_cn", "0"), record_id
        assert rows[record_id]["deliberate"]
    # the span is the question as folded (Han characters joined, numbers as tokens)
    assert (
        evidence["general_zh:1"]["span"]
        == "在不考虑消光的前提下一颗绝对星等约为 0 7 等的恒星若其视星等为 15 等那么它距离我们大约有多远"
    )
    assert evidence["forum_tw:0"]["span"] == evidence["general_zh:1"]["span"]
    assert int(evidence["forum_tw:0"]["pct"]) >= 50 and int(evidence["general_zh:1"]["pct"]) >= 50
    report = corpus.manifest["decontamination"]
    assert report == {
        "astro_cn": {"removed": 2, "by_source": {"general_zh": 1, "forum_tw": 1}, "eval_items": 3, "too_short": 0},
        "gsm8k_test": {"removed": 1, "by_source": {"general_en": 1}, "eval_items": 1319, "too_short": 0},
    }
    counts = {name: s["counts"]["decontaminated"] for name, s in corpus.manifest["sources"].items()}
    assert counts == {"general_en": 1, "general_zh": 1, "forum_tw": 1}
    assert reconcile_errors(corpus.manifest) == []


def test_crafted_unrelated_records_are_kept(crafted: tuple[sd.Corpus, sd.Corpus]) -> None:
    corpus, _ = crafted
    ids = set(pl.concat([corpus.frame_of(s).collect() for s in ("train", "validation")])["id"])
    assert ids == {"general_en:0", "general_en:2", "general_en:3", "general_en:4", "general_zh:0", "general_zh:2",
                   "general_zh:3", "forum_tw:1"}  # fmt: skip
    train = json.loads((corpus.path / "train.json").read_text("utf-8"))
    assert not any("Janet" in r["input"] or "消光" in r["instruction"] + r["input"] for r in train)


def test_crafted_builds_are_byte_identical(crafted: tuple[sd.Corpus, sd.Corpus]) -> None:
    one, two = crafted

    def digests(corpus: sd.Corpus) -> dict[str, str]:
        return {
            p.relative_to(corpus.path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(corpus.path.rglob("*"))
            if p.is_file() and p.name != "manifest.json"
        }

    first, second = digests(one), digests(two)
    assert first == second
    assert {"quarantine.parquet", "train.json"} <= set(first) and any(k.startswith("data/") for k in first)
    strip = lambda m: {k: v for k, v in m.items() if k != "volatile"}  # noqa: E731
    assert strip(one.manifest) == strip(two.manifest)
    assert one.quarantine.equals(two.quarantine)
