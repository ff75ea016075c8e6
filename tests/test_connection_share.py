"""dosewise.connection_share: when a worker holds more than its share of the connections."""

from __future__ import annotations

import pytest

from dosewise.connection_share import ConnectionShare, over_share


@pytest.mark.parametrize(
    ("mine", "counts", "over"),
    [
        (0, [0, 0], False),
        (1, [1, 0], False),  # one connection: someone must hold it
        (2, [2, 0], True),
        (21, [21, 19], True),
        (20, [20, 20], False),
        (21, [21, 20], False),  # 41 over two: 21 is the share, rounded up
        (22, [22, 19], True),
        (14, [14, 13, 13], False),
        (15, [15, 13, 12], True),
    ],
)
def test_over_share_is_more_than_the_even_share_rounded_up(
    mine: int, counts: list[int], over: bool
) -> None:
    assert over_share(mine, counts) is over


def test_a_share_publishes_its_count_where_the_others_read_it() -> None:
    counts = [0, 0]
    first, second = ConnectionShare(counts, 0), ConnectionShare(counts, 1)
    first.publish(3)
    assert counts == [3, 0]
    assert second.should_close(1) is False
    assert first.should_close(3) is True  # 3 of 4: over the share of 2
    second.publish(3)
    assert first.should_close(3) is False
    assert counts == [3, 3]
