#!/usr/bin/env python3
"""Writes transcripts.json: a reference transcript and copies of it with controlled errors.

Each variant applies an exact number of edits: up to 20 %, substitutions and insertions of
words that never occur in the reference and deletions, at least four tokens apart; above,
substitutions by novel words only. Either way the edit distance to the reference is exactly
the number of edits. Seeded: the output is
the same on every run.
"""
import json
import random
from pathlib import Path

HERE = Path(__file__).parent

ENGLISH = (
    "good morning and welcome to the weekly briefing of the river valley water board "
    "this week the board reviewed the spring flood report and agreed on three measures "
    "first the old levee north of the mill bridge will be raised by half a metre before "
    "the autumn rains second every farm along the lower river will receive a warning "
    "siren that is linked to the upstream gauges third the board will publish the gauge "
    "readings online every hour so that residents can follow the water level themselves "
    "the engineers estimate that the work will cost about two million and take five months "
    "the chair thanked the volunteers who filled sandbags during the march floods and "
    "reminded residents that the public meeting on the new reservoir takes place on the "
    "first thursday of next month in the school hall questions can be sent to the board "
    "office by post or by email until the end of the month thank you for listening"
)

CHINESE = (
    "今天上午市政府召开新闻发布会介绍了今年春季防汛工作的主要安排"
    "城市北部的旧堤坝将在秋季雨季到来之前加高半米下游沿河的农户将安装与上游水位站联动的警报器"
    "水位数据将每小时在网上公布方便居民随时了解河流的情况"
)

NOVEL_WORDS = [f"zq{n}x" for n in range(400)]
NOVEL_CHARS = list("鑫淼焱垚犇骉鱻羴猋麤")


def corrupt(tokens, rate, rng, novel):
    count = round(rate * len(tokens))
    # Up to 20 %, a mix of edits four tokens apart; above, substitutions only (every novel
    # token costs one edit, so the distance stays exact even when edits are close).
    mixed = rate <= 0.2
    slots = list(range(2, len(tokens) - 2, 4 if mixed else 1))
    positions = sorted(rng.sample(slots, count))
    kinds = [("sub", "ins", "del")[i % 3] if mixed else "sub" for i in range(count)]
    rng.shuffle(kinds)
    out = list(tokens)
    fresh = iter(novel)
    for position, kind in sorted(zip(positions, kinds), reverse=True):
        if kind == "sub":
            out[position] = next(fresh)
        elif kind == "ins":
            out.insert(position, next(fresh))
        else:
            del out[position]
    return out, count


def variants(tokens, rng, novel, join):
    rows = []
    for rate in (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5):
        out, edits = corrupt(tokens, rate, rng, novel)
        rows.append({"edits": edits, "text": join(out)})
    return rows


def main():
    rng = random.Random(20261125)
    words = ENGLISH.split()
    chars = list(CHINESE)
    corpus = {
        "en": {
            "reference": ENGLISH,
            "tokens": len(words),
            "variants": variants(words, rng, NOVEL_WORDS, " ".join),
        },
        "zh": {
            "reference": CHINESE,
            "tokens": len(chars),
            "variants": variants(chars, rng, NOVEL_CHARS * 10, "".join),
        },
    }
    (HERE / "transcripts.json").write_text(json.dumps(corpus, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
