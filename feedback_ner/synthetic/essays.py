"""Synthetic student essays: a writer with per-essay habits fills class templates from a prompt's vocabulary.

Essays follow the real structure (optional Lead, a Position early, Claims mostly followed by Evidence, occasional
Counterclaim + Rebuttal, a Concluding Statement) over 15 prompts with their own vocabulary
(:mod:`feedback_ner.synthetic.vocabulary`). Cue phrases make the classes learnable; template variants, missing or
misplaced cues, unmarked Claim/Evidence boundaries, unannotated text, typos and imperfect offsets keep them from
being trivial.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from feedback_ner.labels import offsets_to_word_indices
from feedback_ner.synthetic.vocabulary import MISSPELLINGS, PROMPTS, TEMPLATES, Prompt

MIN_WORDS = 150

# ---- sentence templates per class; {slot}s are drawn from the prompt (capitalised name: capitalised value) ----
_LEAD_OPEN = TEMPLATES["lead_open"]
_LEAD_MORE = TEMPLATES["lead_more"]
_POSITION = TEMPLATES["position"]
_POSITION_CUED = tuple(t for t in _POSITION if t.endswith(" {stance}."))
_CLAIM_FIRST = TEMPLATES["claim_first"]
_CLAIM_NEXT = TEMPLATES["claim_next"]
_CLAIM_LAST = TEMPLATES["claim_last"]
_CLAIM_BODY = TEMPLATES["claim_body"]
_EVIDENCE_OPEN = TEMPLATES["evidence_open"]
_EVIDENCE_MORE = TEMPLATES["evidence_more"]
_COUNTER = TEMPLATES["counter"]
_REBUTTAL = TEMPLATES["rebuttal"]
_COUNTER_MORE = TEMPLATES["counter_more"]
_REBUTTAL_CLAUSE = TEMPLATES["rebuttal_clause"]
_CONCLUDE = TEMPLATES["conclude"]
_CONCLUDE_MORE = TEMPLATES["conclude_more"]
_FILLER = TEMPLATES["filler"]
_CLOSING = TEMPLATES["closing"]
_RELATIVES = TEMPLATES["relatives"]
_NAMES = TEMPLATES["names"]
_GLUE_CLAIM_EVIDENCE = TEMPLATES["glue_claim_evidence"]
_MISSPELL = MISSPELLINGS
_MISSPELL_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in _MISSPELL) + r")\b")
_CAP_I_RE = re.compile(r"\bI\b")
_CONTRACT = (
    (re.compile(r"\b(do|does|did|is|are|was|would|could|should) not\b"), r"\1n't"),
    (re.compile(r"\b(can ?not)\b"), "can't"),
    (re.compile(r"\bwill not\b"), "won't"),
    (re.compile(r"\b([Ii]t|[Tt]hat|[Tt]here) is\b"), r"\1's"),
    (re.compile(r"\bI am\b"), "I'm"),
)


@dataclass(frozen=True)
class Element:
    """One annotated discourse element: class, character offsets ``[start, end)`` and its competition word indices."""

    cls: str
    start: int
    end: int
    words: tuple[int, ...] = ()


@dataclass(frozen=True)
class Essay:
    """A generated essay: its text, annotated elements in order, and the prompt it answers."""

    text: str
    elements: tuple[Element, ...]
    prompt: str


@dataclass(frozen=True)
class _Style:
    """Per-writer habits, drawn once per essay, so that noise is consistent within an essay like in real data."""

    para_sep: str
    sent_sep: str
    lower_start: float  # share of sentences starting lowercase
    typo_rate: float  # typos per word
    contractions: bool
    drop_apostrophes: bool
    small_i: bool
    all_lower: bool
    trailing: str


def _draw_style(rng: random.Random) -> _Style:
    u = rng.random()
    para_sep = "\n\n" if u < 0.66 else " \n\n" if u < 0.78 else "\n" if u < 0.88 else "\n\n\n" if u < 0.92 else " "
    return _Style(
        para_sep=para_sep,
        sent_sep="  " if rng.random() < 0.06 else " ",
        lower_start=rng.choice((0.0, 0.0, 0.0, 0.05, 0.15, 0.5)),
        typo_rate=rng.choice((0.0, 0.0, 0.003, 0.008, 0.015, 0.03)),
        contractions=rng.random() < 0.5,
        drop_apostrophes=rng.random() < 0.25,
        small_i=rng.random() < 0.1,
        all_lower=rng.random() < 0.015,
        trailing=rng.choice(("", "", "", "", "\n", " ", "\n\n")),
    )


# One paragraph item: (class, or None for unannotated text; text; glue placed before it).
_Item = tuple[str | None, str, str]


class _Slots(dict):
    """``str.format_map`` mapping that draws a slot value the first time a template asks for it."""

    def __init__(self, writer: _Writer, **fixed: str) -> None:
        super().__init__(fixed)
        self.writer = writer

    def __missing__(self, key: str) -> str:
        value = self.writer.draw(key)
        self[key] = value
        return value


class _Writer:
    """Writes one essay: its sentences, its element texts and its paragraph layout."""

    def __init__(self, rng: random.Random, prompt: Prompt) -> None:
        self.rng = rng
        self.p = prompt
        self.style = _draw_style(rng)
        pro = rng.random() < 0.7
        self.stances = prompt.pro if pro else prompt.con
        self.ostances = prompt.con if pro else prompt.pro
        self.reasons = list(prompt.pro_reasons if pro else prompt.con_reasons)
        self.counters = list(prompt.con_reasons if pro else prompt.pro_reasons)
        self.facts = list(prompt.facts)
        rng.shuffle(self.reasons)
        rng.shuffle(self.facts)
        self.n_reason = 0
        self.n_fact = 0
        self.used = 0  # words written so far
        self.pools: dict[str, tuple[str, ...]] = {
            "stance": self.stances, "ostance": self.ostances, "counter": tuple(self.counters),
            "reason": tuple(self.reasons), "reason2": tuple(self.reasons), "topic": prompt.topic,
            "people": prompt.people, "noun": prompt.nouns, "action": prompt.actions, "source": prompt.sources,
            "rel": _RELATIVES, "name": _NAMES,
        }

    # ---- slot values ----
    def pick(self, seq: tuple[str, ...] | list[str]) -> str:
        return seq[int(self.rng.random() * len(seq))]

    def next_reason(self) -> str:
        """Reasons cycle through a shuffled list, so that an essay's claims differ."""
        value = self.reasons[self.n_reason % len(self.reasons)]
        self.n_reason += 1
        return value

    def draw(self, key: str) -> str:
        """A value for template slot ``key`` (``Key``: the same, capitalised)."""
        if key[0].isupper():
            return _cap(self.draw(key.lower()))
        pool = self.pools.get(key)
        if pool is not None:
            return self.pick(pool)
        if key == "fact":  # facts cycle too: an essay rarely repeats one
            value = self.facts[self.n_fact % len(self.facts)]
            self.n_fact += 1
            return value
        if key == "num":
            return str(self.rng.randint(2, 95))
        if key == "par":
            return str(self.rng.randint(1, 9))
        raise KeyError(f"unknown template slot {{{key}}}")

    def lognorm(self, median: float, sigma: float, lo: int, hi: int) -> int:
        """A log-normal length in words, clipped to ``[lo, hi]``."""
        return int(min(hi, max(lo, median * math.exp(sigma * self.rng.gauss(0.0, 1.0)))))

    def item(self, cls: str | None, text: str, glue: str | None = None) -> _Item:
        """A paragraph item with this writer's noise; ``glue`` defaults to the sentence separator."""
        text = self.noisy(text)
        self.used += text.count(" ") + 1
        return (cls, text, self.style.sent_sep if glue is None else glue)

    # ---- sentences ----
    def sentence(self, templates: tuple[str, ...], **fixed: str) -> str:
        """A filled template, capitalised unless this writer starts it lowercase."""
        return self.start_case(self.pick(templates).format_map(_Slots(self, **fixed)))

    def start_case(self, text: str) -> str:
        if self.rng.random() < self.style.lower_start:
            return text[:1].lower() + text[1:]
        return text[:1].upper() + text[1:]

    def sentences(self, first: tuple[str, ...], more: tuple[str, ...], budget: int, **fixed: str) -> str:
        """Sentences (first from ``first``, then from ``more``) until about ``budget`` words, none repeated."""
        out = [self.sentence(first, **fixed)]
        words = out[0].count(" ") + 1
        while words < budget:
            s = self.sentence(more, **fixed)
            if s in out:  # one more draw; a student may still repeat themselves now and then
                s = self.sentence(more, **fixed)
            if words + (s.count(" ") + 1) / 2 > budget and len(out) > 1:
                break
            out.append(s)
            words += s.count(" ") + 1
        return self.style.sent_sep.join(out)

    def noisy(self, text: str) -> str:
        """Writer habits and noise: contractions, dropped apostrophes, lowercase 'i', misspellings, letter swaps."""
        st = self.style
        rng = self.rng
        if st.contractions:
            for pattern, repl in _CONTRACT:
                text = pattern.sub(repl, text)
        if st.all_lower:
            text = text.lower()
        if st.drop_apostrophes:
            text = text.replace("'", "")
        if st.small_i:
            text = _CAP_I_RE.sub("i", text)
        if st.typo_rate:
            n_words = text.count(" ") + 1
            n_typos = int(n_words * st.typo_rate + rng.random())
            if n_typos:
                if rng.random() < 0.4:
                    text = _MISSPELL_RE.sub(lambda m: _MISSPELL[m.group(1)] if rng.random() < 0.5 else m.group(1),
                                            text, count=n_typos)
                else:
                    words = text.split(" ")
                    for _ in range(n_typos):
                        i = int(rng.random() * len(words))
                        words[i] = _typo(words[i], rng)
                    text = " ".join(words)
        return text


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _typo(word: str, rng: random.Random) -> str:
    """One letter swap, drop or double inside a word (never touching its edges' whitespace)."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randint(1, len(word) - 3)
    kind = rng.random()
    if kind < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind < 0.75:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def _compose(w: _Writer, target_words: int) -> list[list[_Item]]:
    """Plan and write the paragraphs of one essay of about ``target_words`` words."""
    r = w.rng.random
    scale = max(1.0, target_words / 400) ** 0.4  # long essays have longer elements, not only more of them
    w.used = 0
    paras: list[list[_Item]] = []
    letter = bool(w.p.greetings) and r() < 0.55
    if letter:
        paras.append([w.item(None, w.pick(w.p.greetings), "")])
    elif r() < 0.08:
        paras.append([w.item(None, w.pick(w.p.titles), "")])
    paras.extend(_introduction(w, scale))
    has_counter = r() < 0.26
    has_conclusion = r() < 0.845
    reserve = (40 * scale if has_conclusion else 0) + (45 if has_counter else 0)
    body, ev_budget = _body(w, max(40.0, target_words - w.used - reserve), scale)
    if has_counter:
        where = len(body) if r() < 0.7 else int(r() * (len(body) + 1))
        body.insert(where, _counter_paragraph(w, scale, ev_budget))
    paras.extend(body)
    concl = _conclusion(w, scale, has_conclusion)
    if concl:
        paras.append(concl)
    if (letter and r() < 0.8) or r() < 0.04:
        paras.append([w.item(None, w.sentence(_CLOSING), "")])
    return paras


def _introduction(w: _Writer, scale: float) -> list[list[_Item]]:
    """Hook (Lead), then the Position, sometimes with the claims listed in the same sentence."""
    r = w.rng.random
    intro: list[_Item] = []
    if r() < 0.59:
        intro.append(w.item("Lead", w.sentences(_LEAD_OPEN, _LEAD_MORE, w.lognorm(38 * scale, 0.45, 10, 160))))
    elif r() < 0.15:  # a hook the annotators left unlabelled
        intro.append(w.item(None, w.sentences(_LEAD_OPEN, _LEAD_MORE, w.lognorm(25, 0.4, 8, 60))))
    if intro and r() < 0.25:  # background the annotators did not count as part of the Lead
        intro.append(w.item(None, w.sentences(_LEAD_MORE, _LEAD_MORE, w.lognorm(14, 0.5, 5, 50))))
    own_para = bool(intro) and r() < 0.2
    position: list[_Item] = []
    if r() < 0.962:
        if r() < 0.21:  # "I think X because A, B and C": the Position and each reason annotated separately
            n_claims = 2 if r() < 0.45 else 3
            position.append(w.item("Position", w.sentence(_POSITION_CUED).rstrip(".")))
            glue_first = " because " if r() < 0.75 else ", because "
            for i in range(n_claims):
                last = i == n_claims - 1
                glue = glue_first if i == 0 else (w.pick((" and ", ", and ")) if last else ", ")
                position.append(w.item("Claim", w.next_reason() + ("." if last else ""), glue))
        else:
            position.append(w.item("Position", w.sentence(_POSITION)))
    if r() < 0.1:
        position.append(w.item(None, w.sentence(_FILLER)))
    if own_para and position:
        return [intro, position]
    return [intro + position] if intro or position else []


def _body(w: _Writer, body_words: float, scale: float) -> tuple[list[list[_Item]], float]:
    """Body paragraphs of Claims and Evidence filling about ``body_words``; also returns the Evidence budget."""
    rng = w.rng
    r = rng.random
    k = max(1, int(round(body_words / (rng.uniform(97, 164) * scale**0.5))))
    patterns = [rng.choices(_BODY_PATTERNS, _BODY_WEIGHTS)[0] for _ in range(k)]
    if not any("E" in p for p in patterns):
        patterns[0] = "CE"
    n_claims = sum(p.count("C") for p in patterns)
    n_evidence = sum(p.count("E") for p in patterns)
    # part of the body is left to unannotated remarks, as in the real essays
    ev_budget = max(14.0, (0.88 * body_words - 10 * n_claims) / n_evidence)
    body: list[list[_Item]] = []
    i_claim = 0
    for pattern in patterns:
        para: list[_Item] = []
        if r() < 0.14:
            para.append(w.item(None, w.sentence(_FILLER)))
        prev = None
        for kind in pattern:
            if kind == "C":
                para.extend(_claim(w, i_claim, n_claims))
                i_claim += 1
            else:
                text = w.sentences(_EVIDENCE_OPEN, _EVIDENCE_MORE, int(ev_budget * rng.uniform(0.55, 1.45)))
                glue = w.style.sent_sep
                if prev == "C" and r() < 0.22:  # no sentence boundary between the Claim and its Evidence
                    cls, claim_text, claim_glue = para[-1]
                    para[-1] = (cls, claim_text.rstrip("."), claim_glue)
                    glue = w.pick(_GLUE_CLAIM_EVIDENCE)
                    text = text[:1].lower() + text[1:]
                para.append(w.item("Evidence", text, glue))
                if r() < 0.2:  # a closing remark left unannotated
                    para.append(w.item(None, w.sentences(_EVIDENCE_MORE, _EVIDENCE_MORE, w.lognorm(16, 0.5, 4, 50))))
            prev = kind
        if r() < 0.1:
            para.append(w.item(None, w.sentence(_FILLER if r() < 0.5 else _CONCLUDE_MORE)))
        body.append(para)
    if r() < 0.08:  # a whole paragraph the annotators left unlabelled
        ramble = w.sentences(_FILLER, _EVIDENCE_MORE + _FILLER, w.lognorm(45 * scale, 0.5, 12, 160))
        body.insert(int(r() * (len(body) + 1)), [w.item(None, ramble)])
    return body, ev_budget


def _claim(w: _Writer, index: int, total: int) -> list[_Item]:
    """Body Claim number ``index`` of ``total``, with an ordinal connective that is sometimes part of it."""
    r = w.rng.random
    text = w.sentence(_CLAIM_BODY, reason=w.next_reason())
    if r() < 0.6:
        conn = w.start_case(w.pick(_CLAIM_FIRST if index == 0 else _CLAIM_LAST if index == total - 1 else _CLAIM_NEXT))
        lowered = text[:1].lower() + text[1:]
        if r() < 0.65:
            return [w.item("Claim", conn + " " + lowered)]
        return [w.item(None, conn), w.item("Claim", lowered, " ")]
    return [w.item("Claim", text)]


def _counter_paragraph(w: _Writer, scale: float, ev_budget: float) -> list[_Item]:
    """One or two Counterclaims, most answered by a Rebuttal, sometimes backed by Evidence."""
    r = w.rng.random
    para: list[_Item] = []
    for _ in range(2 if r() < 0.39 else 1):
        counter = w.pick(w.counters)
        if r() >= 0.725:  # a Counterclaim left without a Rebuttal
            cc = w.sentences(_COUNTER, _COUNTER_MORE, w.lognorm(16, 0.4, 6, 50), counter=counter)
            para.append(w.item("Counterclaim", cc))
            continue
        budget = w.lognorm(20 * scale**0.5, 0.45, 6, 70)
        if r() < 0.15:  # "Although A, B." in one sentence
            reb = w.sentences(_REBUTTAL_CLAUSE, _EVIDENCE_MORE, budget)
            para.append(w.item("Counterclaim", w.start_case(f"although {counter},")))
            para.append(w.item("Rebuttal", reb[:1].lower() + reb[1:], " "))
        else:
            reb = w.sentences(_REBUTTAL, _EVIDENCE_MORE, budget)
            cc = w.sentences(_COUNTER, _COUNTER_MORE, w.lognorm(16, 0.4, 6, 50), counter=counter)
            para.append(w.item("Counterclaim", cc))
            para.append(w.item("Rebuttal", reb))
        if r() < 0.3:
            para.append(w.item("Evidence", w.sentences(_EVIDENCE_OPEN, _EVIDENCE_MORE, int(ev_budget))))
    return para


def _conclusion(w: _Writer, scale: float, annotated: bool) -> list[_Item]:
    """The closing paragraph: a Concluding Statement (rarely a restated Position), or an unlabelled ending."""
    r = w.rng.random
    concl: list[_Item] = []
    if annotated:
        text = w.sentences(_CONCLUDE, _CONCLUDE_MORE, w.lognorm(38 * scale, 0.45, 8, 160))
        concl.append(w.item("Concluding Statement", text))
        if r() < 0.025:
            concl.append(w.item("Position", w.sentence(_POSITION)))
        if r() < 0.02:
            concl.append(w.item(None, w.sentence(_FILLER)))
            concl.append(w.item("Concluding Statement", w.sentence(_CONCLUDE_MORE)))
        if r() < 0.15:
            concl.append(w.item(None, w.sentence(_CONCLUDE_MORE + _FILLER)))
    elif r() < 0.5:  # an ending the annotators did not label
        concl.append(w.item(None, w.sentences(_CONCLUDE, _CONCLUDE_MORE, w.lognorm(20, 0.5, 6, 80))))
    return concl


# Body paragraph shapes: C = Claim, E = Evidence (weights tuned so that the class shares match the real data).
_BODY_PATTERNS = ("CE", "CEE", "CCE", "CECE", "C", "EC", "CEC", "E", "ECE")
_BODY_WEIGHTS = (0.52, 0.11, 0.06, 0.08, 0.05, 0.04, 0.05, 0.05, 0.04)


def _render(paras: list[list[_Item]], style: _Style) -> tuple[str, list[Element]]:
    """Join paragraphs into the essay text and record each element's character offsets."""
    parts: list[str] = []
    elements: list[Element] = []
    pos = 0
    for pi, para in enumerate(paras):
        if not para:
            continue
        if pi:
            parts.append(style.para_sep)
            pos += len(style.para_sep)
        for ii, (cls, text, glue) in enumerate(para):
            if ii:
                parts.append(glue)
                pos += len(glue)
            if cls is not None:
                elements.append(Element(cls, pos, pos + len(text)))
            parts.append(text)
            pos += len(text)
    parts.append(style.trailing)
    return "".join(parts), elements


def _jitter(rng: random.Random, text: str, el: Element) -> Element:
    """Imperfect annotation offsets as in the real data: mid-word starts/ends, surrounding whitespace.

    Drawn for ~6.5% of rows; about 4% keep it (the rest would make words overlap a neighbour's).
    """
    u = rng.random()
    if u >= 0.065:
        return el
    s, e = el.start, el.end
    if u < 0.024:  # starts one or two characters into its first word
        s += 1 if rng.random() < 0.8 else 2
    elif u < 0.032:  # starts on the whitespace before it
        s = max(0, s - 1)
    elif u < 0.047:  # ends one or two characters before the end of its last word
        e -= 1 if rng.random() < 0.7 else 2
    elif u < 0.060:  # includes the whitespace after it
        while e < len(text) and text[e].isspace() and e - el.end < 3:
            e += 1
    else:  # runs into the next word
        while e < len(text) and text[e].isspace():
            e += 1
        e = min(len(text), e + rng.randint(1, 3))
    return Element(el.cls, s, e)


def generate_essay(
    rng: random.Random, target_words: int = 400, prompt: Prompt | None = None, min_words: int = MIN_WORDS
) -> Essay:
    """One synthetic essay of about ``target_words`` words, at least ``min_words`` (``prompt`` drawn when not given).

    Element offsets are already jittered like the real annotations; every element has a non-empty word span and
    no two elements share a word under the competition's offsets rule.
    """
    if prompt is None:
        prompt = rng.choices(PROMPTS, weights=[p.weight for p in PROMPTS])[0]
    w = _Writer(rng, prompt)
    for _ in range(20):  # a plan that falls short is drawn again
        text, clean = _render(_compose(w, target_words), w.style)
        if len(text.split()) >= min_words:
            break
    spans = [offsets_to_word_indices(text, el.start, el.end) for el in clean]
    for i, span in enumerate(spans):
        if not span or (i and spans[i - 1][-1] >= span[0]):
            raise RuntimeError(f"generator bug: element {i} of a {prompt.name!r} essay has bad words {span}")
    elements = list(clean)
    for i, el in enumerate(clean):
        jittered = _jitter(rng, text, el)
        if jittered is el:
            continue
        span = offsets_to_word_indices(text, jittered.start, jittered.end)
        # keep the jitter only if the words stay non-empty and clear of the neighbours (else keep clean offsets)
        if span and (i == 0 or spans[i - 1][-1] < span[0]) and (i == len(clean) - 1 or span[-1] < spans[i + 1][0]):
            elements[i] = jittered
            spans[i] = span
    return Essay(text, tuple(Element(e.cls, e.start, e.end, tuple(s)) for e, s in zip(elements, spans)), prompt.name)

