"""SMS segment counting: GSM-7 (extension table counts double) and UCS-2."""

from __future__ import annotations

import pytest

from notifier.segments import count_segments, is_gsm7, segments


@pytest.mark.parametrize(
    ("text", "encoding", "units", "count"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 162, 2),  # 76 per concatenated segment
        ("[" * 153, "GSM-7", 306, 3),
        ("ж" * 70, "UCS-2", 70, 1),
        ("ж" * 71, "UCS-2", 71, 2),
        ("ж" * 134, "UCS-2", 134, 2),
        ("ж" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: a surrogate pair each
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 159 + "ê", "UCS-2", 160, 3),  # one non-GSM character switches it all
    ],
)
def test_counts(text: str, encoding: str, units: int, count: int) -> None:
    counted = count_segments(text)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, count)
    assert segments(text) == count


def test_an_escape_pair_is_never_split_across_segments() -> None:
    # 306 septets would fit two segments of 153, but the euro sign would straddle them.
    text = "a" * 152 + "€" + "a" * 152
    assert count_segments(text).units == 306
    assert segments(text) == 3


def test_a_surrogate_pair_is_never_split_across_segments() -> None:
    text = "ж" * 66 + "😀" + "ж" * 66  # 134 units: two segments of 67 only if split
    assert segments(text) == 3


def test_the_reminder_from_the_issue_fits_one_segment() -> None:
    text = (
        "dosewise 11:30: iron 18 mg + vitamin C 250 mg. Keep dairy away until 14:30. "
        "Reply TAKEN, SKIP or LATER"
    )
    assert count_segments(text).encoding == "GSM-7"
    assert segments(text) == 1


def test_the_alphabet() -> None:
    assert is_gsm7("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà\n\r")
    assert is_gsm7("^{}\\[~]|€\f")
    assert not is_gsm7("µ")  # micro sign: "100 µg" costs UCS-2
    assert not is_gsm7("`")
    assert not is_gsm7("ê")
    assert not is_gsm7("\x1b")  # the escape itself is not a character one may send
