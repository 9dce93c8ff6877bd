"""Classification (事项分类) of Chinese text by the configured keyword rules.

All keywords and exclusion phrases of the category tree go into one Aho-Corasick automaton, so a text is scanned
once whatever the number of rules. The order of evidence: an upstream category code the 12345 platform sent; an
alarm's type; then keywords (an inspection line narrows them to its branch of the tree). Every answer carries its
evidence: the keywords found, the score and a confidence (the winner's share of all scores).

The learned layer (``learned.py``), when a model is configured, is consulted wherever the rules read text (not for
upstream codes or alarm types): its answer and probability go into the evidence; where no keyword is found and it is
confident (≥ ``min_probability``) it decides (method ``model``); where keywords decided and a confident model says
otherwise, the rules' answer is kept and the disagreement is marked, so the decision goes to the manual queue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ahocorasick

from civicbus.district import District, LearnedModelSettings
from civicbus.events import CategoryEvidence

if TYPE_CHECKING:
    from .learned import TrainedModel

FALLBACK_CATEGORY = "other"


@dataclass(frozen=True)
class Classification:
    code: str
    evidence: CategoryEvidence
    disagreement: bool = False
    """the keyword rules decided, and the learned model confidently named another category"""


@dataclass(frozen=True)
class _Rule:
    category: str
    weight: float
    excludes: bool


class Classifier:
    def __init__(self, district: District, model: TrainedModel | None = None) -> None:
        self._district = district
        self.model = model
        settings = district.categories.model
        self.min_probability: float = (
            settings.min_probability if settings else LearnedModelSettings.model_fields["min_probability"].default
        )
        self._automaton = ahocorasick.Automaton()
        rules: dict[str, list[_Rule]] = defaultdict(list)
        self._upstream: dict[str, str] = {}
        self._alarm_types: dict[str, str] = {}
        self._inspection_types: dict[str, str] = {}
        for category, _ in district.iter_categories():
            for keyword in category.keywords:
                rules[keyword.term].append(_Rule(category.code, keyword.weight, excludes=False))
            for phrase in category.exclude:
                rules[phrase].append(_Rule(category.code, 0.0, excludes=True))
            for code in category.upstream_codes:
                self._upstream[code] = category.code
            for alarm_type in category.alarm_types:
                self._alarm_types[alarm_type] = category.code
            for inspection_type in category.inspection_types:
                self._inspection_types[inspection_type] = category.code
        for term, term_rules in rules.items():
            self._automaton.add_word(term, (term, tuple(term_rules)))
        if rules:
            self._automaton.make_automaton()
        self._has_rules = bool(rules)
        self.fallback = FALLBACK_CATEGORY if FALLBACK_CATEGORY in district.category_by_code else ""

    def classify(
        self,
        text: str,
        *,
        upstream_code: str = "",
        alarm_type: str = "",
        inspection_type: str = "",
    ) -> Classification:
        if upstream_code in self._upstream:
            return Classification(
                self._upstream[upstream_code],
                CategoryEvidence(method="upstream_code", keywords=[upstream_code], confidence=1.0),
            )
        if alarm_type in self._alarm_types:
            return Classification(
                self._alarm_types[alarm_type],
                CategoryEvidence(method="alarm_type", keywords=[alarm_type], confidence=1.0),
            )
        branch = self._inspection_types.get(inspection_type, "")
        scores, found = self._score(text, branch)
        # An inspection line narrows the model to its branch too (probabilities not renormalised).
        prediction = self.model.predict(text, within=branch) if self.model is not None and text.strip() else None
        model = {"model_label": prediction.label, "model_probability": prediction.probability} if prediction else {}
        confident = (
            prediction if prediction and prediction.label and prediction.probability >= self.min_probability else None
        )
        if scores:
            ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
            best, best_score = ranked[0]
            runner_up = ranked[1][0] if len(ranked) > 1 else ""
            return Classification(
                best,
                CategoryEvidence(
                    method="keywords",
                    keywords=sorted(found[best]),
                    score=best_score,
                    confidence=round(best_score / sum(scores.values()), 3),
                    runner_up=runner_up,
                    **model,
                ),
                disagreement=confident is not None and confident.label != best,
            )
        if confident is not None:
            return Classification(
                confident.label,
                CategoryEvidence(method="model", confidence=confident.probability, runner_up=confident.runner_up, **model),
            )
        if branch:
            return Classification(
                branch, CategoryEvidence(method="inspection_type", keywords=[inspection_type], confidence=1.0, **model)
            )
        return Classification(self.fallback, CategoryEvidence(method="none", confidence=0.0, **model))

    def _score(self, text: str, branch: str) -> tuple[dict[str, float], dict[str, set[str]]]:
        if not self._has_rules or not text:
            return {}, {}
        found: dict[str, set[str]] = defaultdict(set)
        weights: dict[str, dict[str, float]] = defaultdict(dict)
        excluded: set[str] = set()
        for _, (term, rules) in self._automaton.iter(text):
            for rule in rules:
                if rule.excludes:
                    excluded.add(rule.category)
                elif not branch or rule.category == branch or rule.category.startswith(branch + "."):
                    # A keyword counts once however often it occurs.
                    weights[rule.category][term] = rule.weight
                    found[rule.category].add(term)
        scores = {code: sum(terms.values()) for code, terms in weights.items() if code not in excluded}
        return scores, found
