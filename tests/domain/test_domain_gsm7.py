"""GSM-7 SMS text: what is in the alphabet, transliteration, honest segment counts (pure)."""

from __future__ import annotations

from visio.domain import gsm7


def test_e_acute_is_gsm7_e_circumflex_is_not() -> None:
    """é stays, ê becomes e; œ becomes oe; the text stays in one GSM-7 encoding."""
    assert gsm7.is_gsm7("é")
    assert not gsm7.is_gsm7("ê")
    assert gsm7.transliterate("fenêtre, œuvre, été, Noël") == "fenetre, oeuvre, été, Noel"
    assert gsm7.segments(gsm7.transliterate("Rendez-vous à Orchies, fenêtre")).encoding == \
        "gsm7"


def test_segment_counts() -> None:
    """160 septets in one segment; 161 in two of 153; extension characters count twice."""
    assert gsm7.segments("a" * 160) == gsm7.Segments("gsm7", 160, 1)
    assert gsm7.segments("a" * 161) == gsm7.Segments("gsm7", 161, 2)
    assert gsm7.segments("€" * 80).count == 1
    assert gsm7.segments("€" * 81) == gsm7.Segments("gsm7", 162, 2)
    assert gsm7.segments("ê" * 70) == gsm7.Segments("ucs2", 70, 1)
    assert gsm7.segments("ê" * 71).count == 2


def test_fit_keeps_essentials_and_drops_optional_parts() -> None:
    """Head and link always stay; optional parts only while one segment holds."""
    head, tail = "RDV vidéo CAF lun. 30 nov. 09:00, Hondschoote.", "https://x.fr/u/" + "t" * 50
    text = gsm7.fit(head, ["Apportez une pièce d'identité."], tail)
    assert gsm7.segments(text).count == 1
    assert text.endswith(tail)
    long_optional = "x" * 100
    assert gsm7.fit(head, [long_optional], tail) == f"{head} {tail}"
