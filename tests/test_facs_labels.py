"""The AU-string parser over the variety measured in the databases' sheets, and the emotion class sets.

AU examples are those listed in shared/research/databases-and-peers.md §1.8; class-set expectations
follow §1.9 (MEGC2019 composite, CASME II 5-class, SAMM 5-class, CAS(ME)^3 7/4/3-class).
"""

from __future__ import annotations

import math

import pytest

from unimer_builder import labels
from unimer_builder.facs import AUS, parse_aus


def toks(text):
    """(au, side, intensity, uncertain, the other choices of an or-group as codes) per token."""
    return [(t.au, t.side, t.intensity, t.uncertain, tuple(a.code() for a in t.alternatives))
            for t in parse_aus(text).tokens]


@pytest.mark.parametrize("text, expected", [
    # CASME II
    ("4+L10", [(4, None, None, False, ()), (10, "L", None, False, ())]),
    ("1+R2+25", [(1, None, None, False, ()), (2, "R", None, False, ()), (25, None, None, False, ())]),
    ("R6+R12", [(6, "R", None, False, ()), (12, "R", None, False, ())]),
    # SAMM
    ("4D+9B", [(4, None, "D", False, ()), (9, None, "B", False, ())]),
    ("A1B+A2C", [(1, "A", "B", False, ()), (2, "A", "C", False, ())]),
    ("L12A+25", [(12, "L", "A", False, ()), (25, None, None, False, ())]),
    ("R14A or 17A or 24A", [(14, "R", "A", False, ("17A", "24A"))]),
    ("(R6 or R12) + R15", [(6, "R", None, False, ("R12",)), (15, "R", None, False, ())]),
    ("10A/B", [(10, None, "A", False, ("10B",))]),
    ("A/L12", [(12, "A", None, False, ("L12",))]),
    ("T18+39", [(18, "T", None, False, ()), (39, None, None, False, ())]),
    ("B18+25", [(18, "B", None, False, ()), (25, None, None, False, ())]),
    ("L12 + 61", [(12, "L", None, False, ()), (61, None, None, False, ())]),
    ("12+15 ", [(12, None, None, False, ()), (15, None, None, False, ())]),
    # CAS(ME)^3 (prefix T/B, unordered; Part C's Chinese comma)
    ("L2+L1", [(2, "L", None, False, ()), (1, "L", None, False, ())]),
    ("B28", [(28, "B", None, False, ())]),
    ("4，7", [(4, None, None, False, ()), (7, None, None, False, ())]),
    # MMEW suffix laterality, 4DME (k) markers and AU prefix
    ("12L", [(12, "L", None, False, ())]),
    ("4R+7", [(4, "R", None, False, ()), (7, None, None, False, ())]),
    ("AU4+AU12(k)", [(4, None, None, False, ()), (12, None, None, True, ())]),
    # a side in parentheses is a side, not 4DME's uncertainty marker (it was read as "(k)" and the side lost)
    ("12(L)", [(12, "L", None, False, ())]),
    ("AU14(R)+4", [(14, "R", None, False, ()), (4, None, None, False, ())]),
    # uncertainty marks
    ("(4)", [(4, None, None, True, ())]),
    ("12?", [(12, None, None, True, ())]),
])
def test_parse_aus_tokens(text, expected):
    p = parse_aus(text)
    assert toks(text) == expected
    assert p.unparsed == () and p.unknown == ()


@pytest.mark.parametrize("text, expected", [
    # an "or" between whole combinations, told by the AU both sides repeat (read as "4+(L10 or 4)+R10" before)
    ("4+L10 or 4+R10", [(4, None, None, False, ()), (10, "L", None, False, ("R10",))]),
    ("(4+L10) or (4+R10)", [(4, None, None, False, ()), (10, "L", None, False, ("R10",))]),
    ("4+5 or 4+7 or 4+43", [(4, None, None, False, ()), (5, None, None, False, ("7", "43"))]),
    ("4+L10 or 4", [(4, None, None, False, ()), (10, "L", None, True, ())]),  # L10 may not be there: uncertain
    ("4+L10 or 4+R10 or 4", [(4, None, None, False, ()), (10, "L", None, True, ("R10",))]),
    ("12A+25 or 12B+25", [(25, None, None, False, ()), (12, None, "A", False, ("12B",))]),  # intensity counts
    ("(4)+L10 or 4+R10", [(4, None, None, True, ()), (10, "L", None, False, ("R10",))]),
    ("12+25 or 12+26+27", [(12, None, None, False, ()), (25, None, None, True, ()), (26, None, None, True, ()),
                           (27, None, None, True, ())]),
    # no AU repeated: the "or" stays within its part, as coders list an uncertain last AU
    ("12+25 or 26", [(12, None, None, False, ()), (25, None, None, False, ("26",))]),
])
def test_an_or_between_combinations_that_repeat_an_au_is_read_as_whole_combinations(text, expected):
    p = parse_aus(text)
    assert toks(text) == expected
    assert p.unparsed == () and p.unknown == ()


def test_an_or_between_combinations_keeps_unknown_codes_apart_and_needs_a_shared_au():
    assert parse_aus("4+L10 or 4+R10+99").unknown == ("99",)
    assert parse_aus("(1+2) or 4").unparsed == ("(1+2) or 4",)  # nothing shared: no reading, said so
    assert toks("1+2 or 5+4") == [(1, None, None, False, ()), (2, None, None, False, ("5",)),
                                  (4, None, None, False, ())]  # as before: nothing tells the combinations apart


def test_parse_aus_free_text_and_references():
    p = parse_aus("R14+17+soft focus")
    assert [t.au for t in p.tokens] == [14, 17] and p.unparsed == ("soft focus",)
    p = parse_aus("ref(7B)+43")
    assert [t.au for t in p.tokens] == [43] and p.unparsed == ("ref(7B)",)
    q = parse_aus("?")  # the AUs were not coded: unknown, not "no AUs"
    assert q.label_unknown and q.tokens == () and q.unparsed == ()
    assert not parse_aus("none").label_unknown


@pytest.mark.parametrize("blank", [None, "", "none", "None", "nan", "-", math.nan])
def test_parse_aus_blank(blank):
    p = parse_aus(blank)
    assert p.tokens == () and p.unparsed == () and p.unknown == ()


def test_parse_aus_unknown_codes():
    p = parse_aus("4+99")
    assert [t.au for t in p.tokens] == [4] and p.unknown == ("99",)
    assert parse_aus("L3").unknown == ("L3",)  # AU 3 is not a FACS code
    assert 3 not in AUS and 99 not in AUS


def test_parse_aus_keeps_raw_and_code():
    (t,) = parse_aus(" L12B ").tokens
    assert t.raw == "L12B" and t.code() == "L12B"
    (t,) = parse_aus(12).tokens  # a lone AU stored as a number in the sheet
    assert t.au == 12


def test_parse_aus_never_raises():
    for text in ["((", "))4", "+", "or", "L", "AU", "12++4", "/", "4 or", object()]:
        parse_aus(text)


# --- emotion class sets ---------------------------------------------------------------------------

@pytest.mark.parametrize("label, word", [
    ("happiness", "happiness"), ("Happiness", "happiness"), ("happy", "happiness"), ("  Others ", "others"),
    ("Other", "others"), ("others", "others"), ("sad", "sadness"), ("ne", "negative"), ("sur", "surprise"),
    ("weird", "weird"), (None, None), ("", None), (math.nan, None),
])
def test_canonical(label, word):
    assert labels.canonical(label) == word


@pytest.mark.parametrize("db, label, comp", [
    ("casme2", "disgust", "negative"), ("casme2", "repression", "negative"), ("casme2", "happiness", "positive"),
    ("casme2", "surprise", "surprise"), ("casme2", "others", None), ("casme2", "fear", None),
    ("casme2", "sadness", None),
    ("samm", "Anger", "negative"), ("samm", "Contempt", "negative"), ("samm", "Fear", "negative"),
    ("samm", "Happiness", "positive"), ("samm", "Other", None),
    ("smic", "negative", "negative"), ("smic", "positive", "positive"), ("smic", "surprise", "surprise"),
    ("casme3", "Others", None), ("casme3", "sad", "negative"), ("casme3", "happy", "positive"),
])
def test_composite(db, label, comp):
    assert labels.composite(db, label) == comp


def test_database_class_sets():
    assert labels.default_class_set("casme2") == "casme2_5"
    assert labels.database_class("casme2", "fear") is None  # not in the 5-class set
    assert labels.database_class("casme2", "others") == "others"
    assert labels.database_class("samm", "Other") == "others"
    assert labels.database_class("samm", "Disgust") is None
    assert labels.database_class("casme3", "Others") == labels.database_class("casme3", "others") == "others"
    assert labels.database_class("casme3", "sad", "casme3_4") == "negative"
    assert labels.database_class("casme3", "others", "casme3_3") is None
    assert labels.database_class("casme3", "happy", "casme3_3") == "positive"
    assert labels.database_class("manifest", "happy") == "happiness"  # no class set: the canonical word
    assert labels.default_class_set("manifest") is None


def test_three_digit_code_is_unknown_not_free_text():
    from unimer_builder.facs import parse_aus

    p = parse_aus("4+L10+100")
    assert [t.au for t in p.tokens] == [4, 10]
    assert p.unknown == ("100",) and p.unparsed == ()
