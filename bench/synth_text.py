"""Seeded synthetic text for the bench generator: Chinese and English prose of a wanted length.

Texts are built from a pool of generated sentences, picked with numpy in bulk: per text that is one
slice of an index array and one join, so a million records take seconds, not minutes. The pool is
large (tens of thousands of sentences), so two random texts share almost no n-grams and the
near-duplicate step only finds the near-duplicates the generator plants on purpose.
"""

from __future__ import annotations

import numpy as np

_ZH_WORDS = (
    "天文学 宇宙 恒星 行星 星系 黑洞 引力波 望远镜 观测 银河系 光谱 红移 太阳 月球 地球 彗星 小行星 星云 超新星 "
    "脉冲星 中子星 白矮星 红巨星 主序星 双星 星团 暗物质 暗能量 宇宙学 大爆炸 微波背景 辐射 轨道 自转 公转 周期 质量 "
    "半径 温度 亮度 视星等 绝对星等 距离 光年 秒差距 天文单位 赤道 黄道 赤经 赤纬 岁差 章动 恒星时 太阳时 日食 月食 "
    "潮汐 引力 开普勒 牛顿 哈勃 爱因斯坦 相对论 射电 红外 紫外 X射线 伽马射线 干涉仪 分辨率 口径 焦距 探测器 "
    "卫星 空间站 探测器 火星 木星 土星 金星 水星 天王星 海王星 冥王星 柯伊伯带 奥尔特云 星际介质 分子云 原行星盘 "
    "核聚变 氢 氦 元素 丰度 演化 形成 坍缩 吸积 喷流 磁场 等离子体 日冕 太阳风 耀斑 黑子 极光 变星 造父变星 "
    "研究 发现 测量 计算 模型 理论 数据 结果 表明 可以 通过 由于 因此 其中 主要 重要 影响 变化 过程 现象 方法 "
    "科学家 天文学家 观测者 学生 教师 问题 答案 原理 条件 特征 性质 结构 区域 范围 方向 速度 能量 密度 压力"
)
# Traditional forms, rare as in the real data; OpenCC t2s maps each to a word of ZH_WORDS.
_ZH_TRADITIONAL = "觀測 銀河系 光譜 恆星 軌道 質量 週期 變星 天體 望遠鏡 衛星 輻射 紅移 星雲 計算 數據 溫度"
# The established term OpenCC must not touch (corpus/protected_terms.txt).
ZH_PROTECTED = "蒭藁型变星"
ZH_JOINERS = ("的", "和", "与", "在", "是", "对", "把", "从", "为", "及")
ZH_ENDS = ("。", "。", "。", "，", "；", "？", "！")

_EN_WORDS = (
    "the a of and to in is that for on with as by at from this are be it which or an was can its their "
    "star planet galaxy telescope orbit light spectrum redshift gravity moon sun comet asteroid nebula supernova "
    "pulsar neutron dwarf giant cluster matter energy universe cosmic background radiation rotation period mass "
    "radius temperature brightness magnitude distance parsec unit equator ecliptic ascension declination eclipse "
    "tide force law relativity radio infrared ultraviolet detector resolution aperture focal mission satellite "
    "station mars jupiter saturn venus mercury uranus neptune belt cloud interstellar medium disk fusion hydrogen "
    "helium element abundance evolution formation collapse accretion jet magnetic field plasma corona wind flare "
    "variable observe measure compute model theory data result show explain describe answer question reason "
    "because therefore however first second important change process method scientist student teacher write "
    "summarize list three example simple short story poem email letter customer product company market health "
    "water food city history language computer program function number value list table report plan idea"
)
EN_ENDS = (".", ".", ".", "?", "!", ";")
ZH_WORDS, ZH_TRADITIONAL, EN_WORDS = (tuple(t.split()) for t in (_ZH_WORDS, _ZH_TRADITIONAL, _EN_WORDS))


COMMON_HAN = (
    "一七万三上下不与专两严个中为主么之乐也习买了事二于亮人亿什今介从他仙代以们件众伟传位体作你使依保借倾"
    "假做健像先光入全八公关兴其典再写准出分列初判利到力加务动助励化北区千半协单南卫原去又及双发取变句叫可"
    "史吃各同名向吗否吧员周命和唯器四回因团图圆土在地均坍垂型城域外多夜大天太奇女好如始子字季学它完实家容"
    "察对射小少尺山工差已市师帮常幕年并序应度座康建开异式引强形影很律得忙态怎性恒息悉您想意愿懂成我或所手"
    "打技把拟持按挡排推提播改教散数整文斑料斜断方无日时明易星是昼晚普晴智更最月有服朗望朝期木末本术机条来"
    "析果染标样案楚模横次止正段每比气水汐污没河法波洁洋洞活流测海消涨深清潮火点照熟片物王现球理瑞生用由界"
    "白的目相看真眼睛睡知短码研确示离种科程究空穿突第等筒答简算米类糊系红约线练绍结给编翻考者聊肉胆背能自"
    "至色英荐菜落蓝蔬虑行衡表被要见观规角解言计认训议讲论设识词译诗话语误说请谁谨象购资走起足距跨身车轨转"
    "轮软轴轻较输辨过运近还这进远述逃选通造遇道遮部都释重量金钟银错镜长门问间阳随面顶项题飞食饮馆首高黑鼓"
)
"""Simplified characters common in instruction data (those of the project's samples and templates)."""


def zh_vocabulary(rng: np.random.Generator, size: int = 8000) -> tuple[str, ...]:
    """Made-up words of 1-3 common characters.

    A few hundred real words alone would make every 8-character window recur across the corpus,
    which real Chinese text does not do; thousands of words keep n-gram statistics closer to it.
    """
    chars = np.array(list(COMMON_HAN))
    sizes = rng.choice([1, 2, 2, 2, 3], size=size)
    return tuple("".join(rng.choice(chars, size=int(k))) for k in sizes)


def _zh_sentence(rng: np.random.Generator, vocabulary: tuple[str, ...]) -> str:
    count = int(rng.integers(4, 13))
    common = rng.random(count) < 0.15  # astronomy words, the rest from the large vocabulary
    words = [str(rng.choice(ZH_WORDS)) if c else vocabulary[int(rng.integers(len(vocabulary)))] for c in common]
    for i in range(1, len(words), 3):
        words[i] = words[i] + ZH_JOINERS[int(rng.integers(len(ZH_JOINERS)))]
    if rng.random() < 0.04:
        words[int(rng.integers(len(words)))] = str(rng.choice(ZH_TRADITIONAL))
    if rng.random() < 0.002:
        words.append(ZH_PROTECTED)
    if rng.random() < 0.05:
        words.insert(int(rng.integers(len(words))), str(rng.choice(EN_WORDS[25:])))
    return "".join(words) + ZH_ENDS[int(rng.integers(len(ZH_ENDS)))]


def _en_sentence(rng: np.random.Generator) -> str:
    words = [str(w) for w in rng.choice(EN_WORDS, size=int(rng.integers(5, 18)))]
    if rng.random() < 0.1:
        words.insert(int(rng.integers(len(words))), str(int(rng.integers(2, 100_000))))
    words[0] = words[0].capitalize()
    return " ".join(words) + EN_ENDS[int(rng.integers(len(EN_ENDS)))]


class TextMaker:
    """Texts of given lengths in one language, from a seeded pool of sentences."""

    def __init__(self, lang: str, rng: np.random.Generator, pool_size: int = 40_000) -> None:
        if lang == "zh":
            vocabulary = zh_vocabulary(rng)
            make = lambda r: _zh_sentence(r, vocabulary)  # noqa: E731
        else:
            make = _en_sentence
        self.lang = lang
        self._sep = "" if lang == "zh" else " "
        self._pool = np.array([make(rng) for _ in range(pool_size)], dtype=object)
        self._mean = float(np.mean([len(s) for s in self._pool])) + len(self._sep)
        self._rng = rng

    def texts(self, lengths: np.ndarray) -> list[str]:
        """One text per wanted length (characters), cut at the length and stripped."""
        counts = np.ceil(lengths / self._mean).astype(np.int64) + 1
        picks = self._rng.integers(0, len(self._pool), size=int(counts.sum()))
        ends = np.cumsum(counts)
        out = []
        for start, end, length in zip(ends - counts, ends, lengths, strict=True):
            out.append(self._sep.join(self._pool[picks[start:end]])[: int(length)].strip())
        return out


def lengths(rng: np.random.Generator, n: int, median: float, sigma: float, low: int, high: int) -> np.ndarray:
    """Log-normal lengths clipped to [low, high]: many short texts, a long tail."""
    return np.clip(rng.lognormal(np.log(median), sigma, size=n), low, high).astype(np.int64)
