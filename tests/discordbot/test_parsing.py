"""The typed values a quote or a button carries are checked as strictly as typed text: a forged
or outdated button gets the same clear refusal a typo gets, never a stack trace."""

from __future__ import annotations

import pytest

from discordbot import parsing
from markets.amm import SHARE_SCALE
from points.errors import InvalidInput

LABELS = ["Yes", "No", "Maybe"]


def test_an_outcome_position_in_range_is_kept():
    assert parsing.outcome_position(2, LABELS, market_id=7) == 2


@pytest.mark.parametrize("position", [-1, 3, 99])
def test_an_outcome_position_out_of_range_names_the_outcomes(position):
    with pytest.raises(InvalidInput) as refused:
        parsing.outcome_position(position, LABELS, market_id=7)
    assert refused.value.message == parsing.MSG_OUTCOME_REF.format(
        value=position + 1, market_id=7, labels="1. Yes, 2. No, 3. Maybe"
    )


def test_share_counts_keep_all_and_positive_amounts():
    assert parsing.share_count(None) is None
    assert parsing.share_count(2_500_000) == 2_500_000


@pytest.mark.parametrize("micro", [0, -1, 10**15 * SHARE_SCALE])
def test_share_counts_refuse_what_typed_shares_refuse(micro):
    with pytest.raises(InvalidInput) as refused:
        parsing.share_count(micro)
    assert refused.value.message.startswith("“")
    assert refused.value.message.endswith(parsing.MSG_SHARES.split("”", 1)[1])


def test_a_share_count_matches_the_typed_number_it_came_from():
    assert parsing.share_count(parsing.shares("2.5")) == parsing.shares("2.5") == 2_500_000
