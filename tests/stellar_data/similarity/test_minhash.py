"""minhash.py: MinHash signatures (one-permutation, densified) estimate the Jaccard similarity of
shingle sets; an empty text's signature is all empty bins."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from stellar_data.similarity.fold import Grams, fold_hashes, fold_texts
from stellar_data.similarity.minhash import empty_signatures, signatures
from stellar_data.steps.neardup import NearDedupConfig

SEED = 20240229
CONFIG = NearDedupConfig()  # threshold 0.8, 64 bins, 16 bands, 5-grams


def folded(*texts: str) -> pl.Series:
    return fold_texts(pl.Series(list(texts), dtype=pl.String), convert_traditional=True)


def sig(*texts: str, config: NearDedupConfig = CONFIG, seed: int = SEED) -> np.ndarray:
    tokens = fold_hashes(pl.Series(list(texts), dtype=pl.String), convert_traditional=True, seed=seed)
    return signatures(Grams(tokens), config)


def shingle_jaccard(a: str, b: str, n: int = 5) -> float:
    ta, tb = a.split(), b.split()
    sa = {tuple(ta[i : i + n]) for i in range(len(ta) - n + 1)}
    sb = {tuple(tb[i : i + n]) for i in range(len(tb) - n + 1)}
    return len(sa & sb) / len(sa | sb)


def estimated(signature: np.ndarray, i: int = 0, j: int = 1) -> float:
    return float((signature[i] == signature[j]).mean())


_RNG = random.Random(11)
WORDS = [f"w{i}" for i in range(5000)]
HAN = "天文学星系恒星行星黑洞脉冲超新宇宙银河太阳月亮地球火木土彗流光谱望远镜观测引力红移赤纬经度"
LONG_EN = " ".join(_RNG.choice(WORDS) for _ in range(200))
LONG_ZH = "".join(_RNG.choice(HAN) for _ in range(300))


def replaced_tail(text: str, m: int, *, han: bool) -> str:
    rng = random.Random(m)
    if han:
        return text[:-m] + "".join(rng.choice(HAN) for _ in range(m))
    tokens = text.split()
    return " ".join(tokens[:-m] + [rng.choice(WORDS) for _ in range(m)])


def test_signature_shape_and_type() -> None:
    s = sig(LONG_EN, LONG_ZH, config=NearDedupConfig(num_perm=128, bands=16))
    assert s.shape == (2, 128) and s.dtype == np.uint32


def test_signatures_are_deterministic() -> None:
    texts = (LONG_EN, LONG_ZH, "short text", "")
    assert np.array_equal(sig(*texts), sig(*texts))
    assert not np.array_equal(sig(LONG_EN, seed=1), sig(LONG_EN, seed=2))  # the recipe seed matters


def test_identical_texts_give_identical_signatures_wherever_they_are_in_the_batch() -> None:
    s = sig(LONG_EN, LONG_ZH, LONG_EN, "x y z", LONG_ZH)
    assert np.array_equal(s[0], s[2]) and np.array_equal(s[1], s[4])
    alone = sig(LONG_ZH)
    assert np.array_equal(alone[0], s[1])  # a signature does not depend on its batch


def test_texts_equal_after_folding_give_identical_signatures() -> None:
    a = "What is a black hole? A region of spacetime where gravity is so strong nothing escapes."
    b = "what is a BLACK-HOLE ... a region of spacetime, where gravity is so strong: nothing escapes!"
    c = "天文學是研究宇宙空間天體的科學，包括恆星、行星與星系。"
    d = "天文学是研究宇宙空间天体的科学 包括恒星 行星与星系"
    s = sig(a, b, c, d)
    assert np.array_equal(s[0], s[1]) and np.array_equal(s[2], s[3])


def test_empty_text_has_the_empty_signature_and_a_short_text_a_full_one() -> None:
    s = sig("", "。！", "hi there")
    assert (s[0] == 0xFFFFFFFF).all() and (s[1] == 0xFFFFFFFF).all()
    assert not (s[2] == 0xFFFFFFFF).any()  # densification fills every bin from the single shingle
    assert empty_signatures(s).tolist() == [True, True, False]


@pytest.mark.parametrize(("m", "han"), [(0, False), (10, False), (30, False), (60, False), (100, False),
                                        (200, False), (30, True), (100, True), (150, True)])  # fmt: skip
@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_share_of_equal_bins_estimates_the_shingle_jaccard(m: int, han: bool, num_perm: int) -> None:
    base = LONG_ZH if han else LONG_EN
    other = replaced_tail(base, m, han=han) if m else base
    f = folded(base, other).to_list()
    exact = shingle_jaccard(*f)
    estimates = [
        estimated(sig(base, other, config=NearDedupConfig(num_perm=num_perm), seed=seed)) for seed in (1, 2, 3)
    ]
    assert all(abs(e - exact) <= 0.15 for e in estimates), (exact, estimates)
    assert abs(sum(estimates) / 3 - exact) <= 0.08, (exact, estimates)


def test_unrelated_texts_share_almost_no_bins() -> None:
    other = " ".join(random.Random(99).choice(WORDS) for _ in range(200))
    assert shingle_jaccard(*folded(LONG_EN, other).to_list()) == 0
    assert estimated(sig(LONG_EN, other)) <= 0.1
