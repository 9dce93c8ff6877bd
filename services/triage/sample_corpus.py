"""A labelled sample corpus of 12345-style work orders (样例标注工单), written by the project itself.

The demo and the tests need a trained classifier, and real work orders are personal data that cannot ship with the
code. So this module writes, deterministically (fixed seed: the same file on every machine), 25–40 sentences for
every leaf category of the configured tree, from the wording in the configuration folder's ``training/phrases.yaml``
(data, kept beside the corpus it makes): the category's own keywords in natural phrasing, and paraphrases that
contain no configured keyword at all, so the model learns something the rules do not know. Places come from the
address keywords of ``areas.geojson``; time words and the hotline's polite phrasing vary the rest. A category without
written phrases gets generic sentences built from its keywords.

``civicbus classifier sample-corpus`` writes it to ``config/sample/training/work_orders.csv`` (columns 工单编号, 内容,
类别), the file ``scripts/setup.sh`` trains the sample model from.
"""

from __future__ import annotations

import csv
import io
import os
import random
from datetime import date, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from civicbus.district import District, load_config_file, load_district
from civicbus.settings import DEFAULT_CONFIG_DIR

SEED = 12345
CORPUS_FILE = Path("training") / "work_orders.csv"
"""where the corpus lives inside a configuration folder"""
DEFAULT_CORPUS_PATH = DEFAULT_CONFIG_DIR / CORPUS_FILE
PHRASES_FILE = Path("training") / "phrases.yaml"
"""where the wording it is written from lives inside a configuration folder"""
COLUMNS = ("工单编号", "内容", "类别")
MIN_PER_CATEGORY, MAX_PER_CATEGORY = 25, 40
PARAPHRASE_SHARE = 0.45


class Phrases(BaseModel):
    """What citizens say about one category. ``with_keywords`` use the category's configured keywords;
    ``paraphrases`` say the same things in other words and must contain no configured keyword of any category.
    ``scene``: the text describes a place (it follows a place name); otherwise it is the caller's own matter and
    the place is given as the caller's address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    with_keywords: tuple[str, ...] = ()
    paraphrases: tuple[str, ...] = ()
    scene: bool = True


class Wording(BaseModel):
    """The phrases file: each category's phrases, and the hotline's phrasing around them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    openers: tuple[str, ...] = Field(min_length=1)
    times: tuple[str, ...] = Field(min_length=1)
    place_forms: tuple[str, ...] = Field(min_length=1, description="{} is a place name, then a house number")
    tails: tuple[str, ...] = Field(min_length=1)
    closers: tuple[str, ...] = Field(min_length=1)
    generic_with_keyword: tuple[str, ...] = Field(min_length=1, description="for a category without phrases")
    categories: dict[str, Phrases]


def load_wording(config_dir: str | Path) -> Wording:
    return load_config_file(Wording, Path(config_dir) / PHRASES_FILE)


def configured_terms(district: District) -> list[str]:
    """Every keyword and exclusion phrase of the category tree: what the rules react to."""
    terms = set()
    for category, _ in district.iter_categories():
        terms.update(keyword.term for keyword in category.keywords)
        terms.update(category.exclude)
    return sorted(terms)


def leaf_categories(district: District) -> list[str]:
    return [category.code for category, _ in district.iter_categories() if not category.children]


def _places(district: District, terms: list[str]) -> list[str]:
    """Address keywords that do not themselves contain a category keyword (``中心幼儿园`` would teach 子女入学)."""
    names = [name for area in district.areas for name in area.address_keywords]
    return [name for name in names if not any(term in name for term in terms)]


def generate(district: District, seed: int = SEED) -> list[tuple[str, str, str]]:
    """The rows (工单编号, 内容, 类别), the same for the same configuration and seed."""
    wording = load_wording(district.folder)
    rng = random.Random(seed)
    terms = configured_terms(district)
    places = _places(district, terms) or [district.name]
    rows: list[tuple[str, str]] = []
    for code in leaf_categories(district):
        category = district.category_by_code[code]
        phrases = wording.categories.get(code) or Phrases(with_keywords=tuple(
            frame.format(kw=keyword.term) for keyword in category.keywords for frame in wording.generic_with_keyword
        ))
        with_keywords = phrases.with_keywords or phrases.paraphrases
        paraphrases = phrases.paraphrases or phrases.with_keywords
        if not with_keywords:
            continue  # a leaf with neither keywords nor phrases: nothing to say about it
        wanted = rng.randint(MIN_PER_CATEGORY, MAX_PER_CATEGORY)
        seen: set[str] = set()
        attempts = 0
        while len(seen) < wanted and attempts < wanted * 50:
            attempts += 1
            pool = paraphrases if rng.random() < PARAPHRASE_SHARE else with_keywords
            text = _sentence(rng, wording, rng.choice(pool), places, phrases.scene)
            if text not in seen:
                seen.add(text)
                rows.append((text, code))
    rng.shuffle(rows)
    start = date(2026, 1, 5)
    numbered = []
    for index, (text, code) in enumerate(rows, start=1):
        day = start + timedelta(days=index * 300 // max(len(rows), 1))
        numbered.append((f"{day:%Y%m%d}{index:05d}", text, code))
    return numbered


def _sentence(rng: random.Random, wording: Wording, description: str, places: list[str], scene: bool) -> str:
    place_form = rng.choice(wording.place_forms)
    place = place_form.format(rng.choice(places), rng.randint(1, 188))
    opener = rng.choice(wording.openers)
    tail = rng.choice(wording.tails)
    closer = rng.choice(wording.closers)
    if scene:
        time = rng.choice(wording.times)
        body = f"{time}，{place}{description}" if rng.random() < 0.7 else f"{place}{description}"
    else:
        body = description
        if rng.random() < 0.5:
            body = f"来电人家住{rng.choice(places)}，{description}"
        elif rng.random() < 0.5:
            body = f"{description}（地址：{place}）"
    return f"{opener}{body}{tail}{closer}"


def write_sample_corpus(path: str | Path = DEFAULT_CORPUS_PATH, config_dir: str | Path = DEFAULT_CONFIG_DIR) -> int:
    """Write the sample corpus as UTF-8 CSV (with a BOM, so Excel opens it as Chinese); return the number of rows."""
    district = load_district(config_dir)
    rows = generate(district)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8-sig")
    os.replace(temporary, path)
    return len(rows)
