"""The MediaWiki cleaner: each kind of markup on crafted strings, and the prose filter."""

from fmlm.data.wiki import clean_wiki_markup, is_prose, prose_paragraphs, wiki_to_paragraphs

MARKUP_CHARS = ("{{", "}}", "[[", "]]", "{|", "|}", "''", "<", ">", "==")


def test_templates_nested_are_removed():
    text = "Alpha {{Infobox|name={{nowrap|X}}|inner={{cite|a={{b}}}}}} beta {{pp-move}}gamma."
    assert clean_wiki_markup(text) == "Alpha beta gamma."


def test_inline_language_template_keeps_its_text():
    assert clean_wiki_markup("from {{lang|grc|ἀναρχία}} meaning") == "from ἀναρχία meaning"


def test_refs_comments_and_tags():
    text = ('Fact one.<ref name="a">{{cite web|url=x}} Note</ref> Fact two.<ref name=b/> '
            "<!-- hidden -->Fact <b>three</b>.<br/>")
    assert clean_wiki_markup(text) == "Fact one. Fact two. Fact three."


def test_tables_nested_are_removed():
    text = "Before.\n{| class=wikitable\n|-\n| a || b\n{|\n| inner\n|}\n|}\nAfter."
    assert [line for line in clean_wiki_markup(text).split("\n") if line] == ["Before.", "After."]


def test_links():
    text = ("A [[political philosophy]] of [[self-governance|self-governed]] [[cat]]s, see "
            "[[wikt:anarchism|anarchism]].[[Category:Anarchism]][[fr:Anarchisme]]")
    assert clean_wiki_markup(text) == "A political philosophy of self-governed cats, see anarchism."


def test_file_links_with_nested_links_vanish():
    text = "Start [[File:Flag.svg|thumb|200px|The [[flag]] of [[Spain|Spanish]] towns]] end."
    assert clean_wiki_markup(text) == "Start end."
    assert clean_wiki_markup("x [[Image:a.png|left|a [[b]] c]] y") == "x y"


def test_external_links_bold_italic_headings_entities():
    text = "'''Bold''' and ''italic'' [http://example.org the site] [http://bare.org] &nbsp;x&ndash;y"
    assert clean_wiki_markup(text) == "Bold and italic the site x–y"
    assert clean_wiki_markup("== History ==\n=== Early life===") == "History\nEarly life"


def test_punctuation_left_by_removed_markup_is_repaired():
    text = "Achilles ({{IPAc-en|x}}; {{lang-grc|A}}, ''Akhilleus'',) was a hero {{citation needed}}."
    assert clean_wiki_markup(text) == "Achilles (Akhilleus) was a hero."
    assert clean_wiki_markup("Andorra ({{IPA|x}}), officially") == "Andorra, officially"


def test_prose_filter():
    assert is_prose("This is a plain sentence with enough words to count as prose.")
    assert not is_prose("Too short.")
    assert not is_prose("* A list item with quite a lot of words in it to pass the count.")
    assert not is_prose("A line of more than eight words that never ends with punctuation")
    assert not is_prose("1990 2000 2010 2020 3.5 4.5 5.5 6.5 7.5 8.5 9.5 10.5.")
    assert not is_prose("A sentence with a leftover | pipe from some table that we did not parse.")


def test_article_to_paragraphs_drops_headings_lists_and_trailing_sections():
    article = (
        "{{Infobox person|name=Ada}}\n'''Ada''' was a [[mathematician]] who wrote the first published program "
        "for a machine.<ref>{{cite book|title=T}}</ref>\n\n== Life ==\n* Born 1815\n"
        "She worked with [[Charles Babbage|Babbage]] on the design of the analytical engine for years.\n"
        "== References ==\nA reference paragraph with many words that should not appear anywhere.\n"
    )
    paragraphs = wiki_to_paragraphs(article)
    assert paragraphs == [
        "Ada was a mathematician who wrote the first published program for a machine.",
        "She worked with Babbage on the design of the analytical engine for years.",
    ]
    for p in paragraphs:
        assert not any(m in p for m in MARKUP_CHARS)


def test_prose_paragraphs_keeps_order():
    cleaned = ("First line of prose that is long enough to be kept here.\nHeading\n"
               "Second kept prose line with enough words in it too.")
    assert prose_paragraphs(cleaned) == [cleaned.split("\n")[0], cleaned.split("\n")[2]]
