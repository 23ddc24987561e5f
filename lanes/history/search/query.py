"""The search query language.

User text is never passed through as query syntax: words become quoted
terms (all must match), "double quotes" make a phrase, a trailing * a
prefix and a leading - excludes a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dispatchsite.core.errors import ValidationError

PREFIX_MIN_CHARS = 3
TERM = re.compile(r'(-?)"([^"]*)"|(\S+)')
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Term:
    text: str
    prefix: bool = False
    negated: bool = False
    phrase: bool = False

    @property
    def words(self) -> list[str]:
        return WORD.findall(self.text.lower())


@dataclass
class ParsedQuery:
    terms: list[Term] = field(default_factory=list)

    @property
    def positive(self) -> list[Term]:
        return [t for t in self.terms if not t.negated]

    @property
    def highlight_words(self) -> list[str]:
        return [w for t in self.positive for w in t.words]


def query_parse(text: str) -> ParsedQuery:
    terms: list[Term] = []
    for match in TERM.finditer(text):
        if match.group(2) is not None:
            phrase = match.group(2).strip()
            if WORD.search(phrase):
                terms.append(Term(phrase, negated=bool(match.group(1)), phrase=True))
            continue
        raw = match.group(3)
        negated = raw.startswith("-") and len(raw) > 1
        raw = raw[1:] if negated else raw
        prefix = raw.endswith("*")
        raw = raw.rstrip("*")
        if prefix and len("".join(WORD.findall(raw))) < PREFIX_MIN_CHARS:
            # Shorter prefixes match thousands of words: the index keeps
            # 3-character prefixes (migration 0002) and no shorter ones.
            raise ValidationError(
                f"prefix {raw}* is too short",
                hint=f"give at least {PREFIX_MIN_CHARS} characters before *",
            )
        if WORD.search(raw):
            terms.append(Term(raw, prefix=prefix, negated=negated))
    parsed = ParsedQuery(terms)
    if not parsed.positive:
        raise ValidationError(
            f"search query {text!r} has no words to look for",
            hint='pass at least one word; use "..." for a phrase, word* for a prefix',
        )
    return parsed
