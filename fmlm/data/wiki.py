"""MediaWiki markup -> plain prose paragraphs (for the embedded Wikipedia sample).

Pipeline of one article (``wiki_to_paragraphs``):
1. cut the article at the first trailing section (References, See also, External links, ...);
2. ``clean_wiki_markup``: drop comments, ``<ref>`` notes, other non-prose tags (math, gallery, ...),
   templates ``{{..}}`` (nested, innermost first; a few inline ones such as ``{{lang|grc|X}}`` keep X),
   tables ``{|..|}`` (nested), ``[[File:/Image:/Category:..]]`` and interlanguage links; turn
   ``[[a|b]]`` into ``b`` and ``[[a]]`` into ``a``, ``[http://x label]`` into ``label``; drop bold/italic
   quote runs, turn headings ``==x==`` into ``x``, strip remaining HTML tags and entities;
3. ``prose_paragraphs``: keep only lines that read as prose (no list/table/indent markers, at least
   ``MIN_PROSE_WORDS`` words, ending in sentence punctuation, no leftover markup, mostly letters).
   Headings become plain lines in step 2 and then fall out here (they are not sentences).
"""

from __future__ import annotations

import bz2
import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

MIN_PROSE_WORDS = 8  # shorter lines are captions, list fragments or headings, not prose
MIN_LETTER_FRACTION = 0.75  # below this a line is mostly numbers/symbols (scores, tables, coordinates)
MAX_NESTING_PASSES = 50  # innermost-first removal loops stop here; deeper nesting does not occur in articles

TRAILING_SECTIONS = (
    "see also", "references", "notes", "footnotes", "further reading", "external links",
    "bibliography", "sources", "citations", "notes and references", "references and notes",
    "works cited", "selected works", "works", "discography", "filmography", "gallery",
)
DROP_LINK_PREFIXES = ("file", "image", "category", "media", "wikipedia", "wp", "template", "help",
                      "portal", "special", "talk", "user", "s", "q", "commons", "meta", "n", "v", "b")
DICTIONARY_PREFIXES = ("wikt", "wiktionary")  # [[wikt:x|label]]: the label is ordinary prose
DROP_TAGS = ("ref", "math", "gallery", "timeline", "score", "syntaxhighlight", "source", "imagemap",
             "table", "chem", "ce", "hiero", "graph", "mapframe", "templatestyles", "references")
KEEP_CONTENT_TEMPLATES = {"lang": -1, "nowrap": -1, "transl": -1, "nobr": -1, "small": -1, "em": -1,
                          "abbr": 1, "sic": -1, "lang-en": -1}  # template name -> argument kept

_SECTION_RE = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.MULTILINE)
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_SELF_CLOSING_RE = re.compile(r"<(?:%s)\b[^>]*/>" % "|".join(DROP_TAGS), re.IGNORECASE)
_DROP_TAG_RE = re.compile(r"<(%s)\b[^>]*>.*?</\1\s*>" % "|".join(DROP_TAGS), re.IGNORECASE | re.DOTALL)
_TEMPLATE_RE = re.compile(r"\{\{([^{}]*)\}\}")
_TABLE_RE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.DOTALL)
_LINK_RE = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXT_LINK_RE = re.compile(r"\[(?:https?:|ftp:|//)[^\s\]]*\s*([^\]]*)\]")
_URL_RE = re.compile(r"(?:https?|ftp)://\S+")
_QUOTES_RE = re.compile(r"'{2,}")
_TAG_RE = re.compile(r"</?[a-zA-Z][^>]*>")
_MAGIC_RE = re.compile(r"__[A-Z]+__")
_SPACES_RE = re.compile(r"[ \t\u00a0\u2009\u200b]+")
_EMPTY_PARENS_RE = re.compile(r"\(\s*[,;:]?\s*\)")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([,.;:!?)])")
_REPEATED_SEP_RE = re.compile(r"([,;])(?:\s*[,;])+")
_OPEN_PAREN_SEP_RE = re.compile(r"\(\s*[,;]?\s*")
_SEP_CLOSE_PAREN_RE = re.compile(r"\s*[,;]\s*\)")
_MARKUP_LEFT_RE = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|\||<|>|==|\bhttps?:")
_TERMINAL = (".", "!", "?", '."', '!"', '?"', ".'", ".\u201d", ".)", "?)", "!)")


def _strip_trailing_sections(text: str) -> str:
    """Cut ``text`` at the first heading whose title is a trailing section (references, links, ...)."""
    for m in _SECTION_RE.finditer(text):
        if m.group(2).strip().lower() in TRAILING_SECTIONS:
            return text[: m.start()]
    return text


def _template_sub(m: re.Match) -> str:
    """Innermost template -> '' except a few inline ones whose text argument is prose."""
    parts = [p.strip() for p in m.group(1).split("|")]
    name = parts[0].lower().replace("_", " ")
    if name in KEEP_CONTENT_TEMPLATES and len(parts) > 1:
        args = [p for p in parts[1:] if "=" not in p]
        return args[KEEP_CONTENT_TEMPLATES[name]] if args else ""
    return ""


def _link_sub(m: re.Match) -> str:
    """Innermost ``[[target|label]]`` -> label (or target); namespaced/interlanguage links -> ''."""
    inner = m.group(1)
    target, _, label = inner.partition("|")
    target = target.strip().lstrip(":")
    prefix, colon, rest = target.partition(":")
    prefix = prefix.strip().lower()
    if colon and prefix in DICTIONARY_PREFIXES:
        return label.split("|")[-1] if label else rest
    if colon and (prefix in DROP_LINK_PREFIXES or re.fullmatch(r"[a-z]{2,3}(-[a-z]+)?", prefix)):
        return ""
    if label:
        return label.split("|")[-1]
    return target.split("#")[0]


def _repeat_sub(pattern: re.Pattern, repl, text: str) -> str:
    """Apply an innermost-first substitution until nothing changes (removes nested constructs)."""
    for _ in range(MAX_NESTING_PASSES):
        new = pattern.sub(repl, text)
        if new == text:
            return new
        text = new
    return text


def _tidy_line(line: str) -> str:
    """Collapse spaces and repair the punctuation that removed markup leaves behind: ' ,' '(, x)' '()'."""
    line = _SPACES_RE.sub(" ", line).strip()
    line = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", line)
    line = _REPEATED_SEP_RE.sub(r"\1", line)
    line = _OPEN_PAREN_SEP_RE.sub("(", line)
    line = _SEP_CLOSE_PAREN_RE.sub(")", line)
    line = _EMPTY_PARENS_RE.sub("", line)
    line = _SPACES_RE.sub(" ", line)
    return _SPACE_BEFORE_PUNCT_RE.sub(r"\1", line).strip()


def clean_wiki_markup(text: str) -> str:
    """Wikitext -> plain text lines (markup removed, headings kept as plain lines)."""
    text = _COMMENT_RE.sub("", text)
    text = _SELF_CLOSING_RE.sub("", text)
    text = _DROP_TAG_RE.sub("", text)
    text = _repeat_sub(_TEMPLATE_RE, _template_sub, text)
    text = _repeat_sub(_TABLE_RE, "", text)
    text = _repeat_sub(_LINK_RE, _link_sub, text)
    text = _EXT_LINK_RE.sub(lambda m: m.group(1), text)
    text = _URL_RE.sub("", text)
    text = _QUOTES_RE.sub("", text)
    text = _SECTION_RE.sub(lambda m: m.group(2), text)
    text = _MAGIC_RE.sub("", text)
    text = _TAG_RE.sub("", text)
    text = html.unescape(text)
    return "\n".join(_tidy_line(line) for line in text.split("\n"))


def is_prose(line: str) -> bool:
    """True when ``line`` reads as a prose paragraph (see module docstring, step 3)."""
    if not line or line[0] in "*#:;|!{}=-" or len(line.split()) < MIN_PROSE_WORDS:
        return False
    if not line.endswith(_TERMINAL) or _MARKUP_LEFT_RE.search(line):
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in line)
    return letters / len(line) >= MIN_LETTER_FRACTION


def prose_paragraphs(cleaned: str) -> list[str]:
    """The prose lines of cleaned text, in order."""
    return [line for line in cleaned.split("\n") if is_prose(line)]


def wiki_to_paragraphs(wikitext: str) -> list[str]:
    """One article's wikitext -> its prose paragraphs (trailing sections, markup and non-prose removed)."""
    return prose_paragraphs(clean_wiki_markup(_strip_trailing_sections(wikitext)))


def read_wiki_dump(path: str | Path) -> list[tuple[str, str]]:
    """(title, wikitext) of every main-namespace, non-redirect page of a (bz2) MediaWiki XML dump."""
    path = Path(path)
    opener = bz2.open if path.suffix == ".bz2" else open
    pages = []
    with opener(path, "rb") as fh:
        for _event, elem in ET.iterparse(fh, events=("end",)):
            if elem.tag.rsplit("}", 1)[-1] != "page":
                continue
            ns = elem.findtext("{*}ns")
            title = elem.findtext("{*}title") or ""
            text = elem.findtext("{*}revision/{*}text") or ""
            redirect = elem.find("{*}redirect") is not None or text.lstrip().upper().startswith("#REDIRECT")
            if ns == "0" and not redirect:
                pages.append((title, text))
            elem.clear()
    return pages
