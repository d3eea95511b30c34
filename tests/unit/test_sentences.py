"""nerloop.documents.split_sentences: where a paragraph is cut into sentences.

The rule: a cut after . ! or ? followed by white space, when the next piece starts (after any
opening quote or bracket) with an upper-case letter of any script or a digit.
"""

from __future__ import annotations

from nerloop.documents import split_sentences


def test_sentences_end_at_full_stops_exclamation_and_question_marks() -> None:
    assert split_sentences("Amazon S3 adds a class. It is new! Is it cheap? Yes.") == [
        "Amazon S3 adds a class.", "It is new!", "Is it cheap?", "Yes."]


def test_sentences_come_out_stripped_and_blank_text_gives_none() -> None:
    assert split_sentences("  One.\n\tTwo.  ") == ["One.", "Two."]
    assert split_sentences(" \t\n ") == []


def test_accented_and_other_scripts_capitals_start_a_sentence() -> None:
    assert split_sentences("Das ist gut. Über alles.") == ["Das ist gut.", "Über alles."]
    assert split_sentences("Done. Élan follows. Ωmega too. Привет.") == [
        "Done.", "Élan follows.", "Ωmega too.", "Привет."]


def test_a_digit_starts_a_sentence() -> None:
    assert split_sentences("Amazon EC2 adds regions. 3 more arrive in 2019.") == [
        "Amazon EC2 adds regions.", "3 more arrive in 2019."]


def test_an_opening_quote_or_bracket_before_a_capital_starts_a_sentence() -> None:
    text = ('It ended. "Quoted" words follow. \u201cCurly\u201d ones too. (Bracketed) ones also. '
            "\u2018Single\u2019 last.")
    assert split_sentences(text) == [
        "It ended.", '"Quoted" words follow.', "\u201cCurly\u201d ones too.", "(Bracketed) ones also.",
        "\u2018Single\u2019 last."]


def test_an_opening_quote_before_a_lower_case_word_continues_the_sentence() -> None:
    assert split_sentences('It ended. "quoted" words follow.') == ['It ended. "quoted" words follow.']


def test_a_full_stop_inside_closing_quotes_is_no_boundary() -> None:
    # The mark must be right before the white space: '." ' is not a candidate end.
    assert split_sentences('It said "stop." Then it went.') == ['It said "stop." Then it went.']


def test_a_lower_case_word_after_a_full_stop_continues_the_sentence() -> None:
    assert split_sentences("Costs fall, e.g. for storage. Regions grow.") == [
        "Costs fall, e.g. for storage.", "Regions grow."]


def test_the_pieces_glued_back_are_joined_with_one_space() -> None:
    assert split_sentences("See e.g.\n\tthis one.") == ["See e.g. this one."]


def test_an_abbreviation_before_a_capital_is_cut_there() -> None:
    # Documented limitation: there is no list of abbreviations, so "Inc." or "Mr." before a
    # capitalised word ends a sentence.
    assert split_sentences("Amazon EC2 Inc. Blah is new.") == ["Amazon EC2 Inc.", "Blah is new."]
    assert split_sentences("Mr. Smith launched it.") == ["Mr.", "Smith launched it."]


def test_no_cut_without_white_space_after_the_mark() -> None:
    assert split_sentences("Version 1.2 is out.Now with v3.") == ["Version 1.2 is out.Now with v3."]


def test_cjk_text_without_capitals_stays_one_sentence() -> None:
    # The ideographic full stop is no candidate end, and CJK letters have no case.
    assert split_sentences("これはペンです。それは本です。") == ["これはペンです。それは本です。"]
    assert split_sentences("东京很大. 大阪也很大.") == ["东京很大. 大阪也很大."]
