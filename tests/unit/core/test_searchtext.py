"""What search sees of a message and how a query becomes terms (core/searchtext.py): pure rules."""

from __future__ import annotations

from hubbub.core import searchtext as st


def test_searchable_text_by_type() -> None:
    assert st.searchable_text("text", {"text": "Hello 北京"}) == "Hello 北京"
    assert st.searchable_text("file", {"name": "Report.pdf", "caption": "Q3"}) == "Q3\nReport.pdf"
    assert st.searchable_text("image", {"name": "a.png"}) == "a.png"
    assert st.searchable_text("system", {"text": "x"}) == ""
    assert st.searchable_text("recall", {"seq": 3}) == ""
    assert st.searchable_text("text", {"text": 5}) == ""
    assert st.index_text("text", {"text": "MiXeD Ünïcode"}) == "mixed ünïcode"
    assert st.index_text("text", {"text": "gone"}, recalled=True) == ""


def test_terms_are_lowered_deduplicated_and_contained_ones_dropped() -> None:
    assert st.terms_of("  Meeting  MEET friday ") == ["meeting", "friday"]
    assert st.terms_of("北京 北京开会") == ["北京开会"]
    assert st.terms_of("") == [] and st.terms_of(" \t\n") == []


def test_highlights_merge_and_count_code_points() -> None:
    assert st.highlights("我们明天去北京开会", ["北京"]) == [(5, 7)]
    assert st.highlights("The Meeting moved to Friday", ["meet", "fri"]) == [(4, 8), (21, 24)]
    assert st.highlights("aaaa", ["aa"]) == [(0, 4)]  # adjacent occurrences merge
    assert st.highlights("abcabc", ["abc", "bca"]) == [(0, 6)]
    assert st.highlights("😀 hi", ["hi"]) == [(2, 4)]  # one code point for the emoji
    assert st.highlights("İstanbul", ["stan"]) == []  # lower() changes the length: no wrong ranges


def test_terms_never_become_query_syntax() -> None:
    assert st.fts5_phrase('say "hi" OR NEAR(x)') == '"say ""hi"" OR NEAR(x)"'
    assert st.like_contains("100%_\\") == "%100\\%\\_\\\\%"
