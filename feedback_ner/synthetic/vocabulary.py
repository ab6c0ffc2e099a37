"""The vocabulary of the synthetic essays, read from the package data file ``vocabulary.json``.

The file holds the 15 prompts (each with its own topic words, stances, reasons and facts), the sentence templates
per discourse class (``{slot}`` placeholders filled from the prompt) and common student misspellings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

VOCABULARY_FILE = "vocabulary.json"


@dataclass(frozen=True)
class Prompt:
    """One essay prompt and the vocabulary its essays draw on (clauses start lowercase, no final period)."""

    name: str
    weight: float  # share of essays, roughly as in the real set
    titles: tuple[str, ...]
    greetings: tuple[str, ...]  # letter-style prompts open with one of these
    topic: tuple[str, ...]
    people: tuple[str, ...]
    nouns: tuple[str, ...]
    actions: tuple[str, ...]  # verb phrases, base form
    sources: tuple[str, ...]
    pro: tuple[str, ...]  # stance clauses for each side
    con: tuple[str, ...]
    pro_reasons: tuple[str, ...]
    con_reasons: tuple[str, ...]
    facts: tuple[str, ...]


def load_vocabulary() -> tuple[tuple[Prompt, ...], dict[str, tuple[str, ...]], dict[str, str]]:
    """The prompts, the templates by name and the misspellings (correct -> misspelt) from ``vocabulary.json``."""
    data = json.loads(resources.files(__package__).joinpath(VOCABULARY_FILE).read_text(encoding="utf-8"))
    prompts = tuple(
        Prompt(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()}) for p in data["prompts"]
    )
    templates = {name: tuple(values) for name, values in data["templates"].items()}
    return prompts, templates, dict(data["misspellings"])


PROMPTS, TEMPLATES, MISSPELLINGS = load_vocabulary()
