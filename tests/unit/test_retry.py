"""How long a mail waits before its next try, and which server answers are tried again at all."""

from __future__ import annotations

import random

import pytest

from daemon.mail.ledger import RETRY_BASE_S, RETRY_CAP_S, retry_delay_s
from daemon.mail.smtp import Outcome


@pytest.mark.parametrize("attempt", range(1, 16))
def test_delays_double_within_equal_jitter_up_to_the_cap(attempt: int) -> None:
    full = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempt - 1))
    delays = [retry_delay_s(attempt) for _ in range(200)]
    # between half and all of the doubled delay, and never the same for all mails failed together
    assert all(full / 2 <= d <= full for d in delays)
    assert len(set(delays)) > 100


def test_the_first_retry_comes_after_about_the_base_and_never_beyond_the_cap() -> None:
    assert RETRY_BASE_S / 2 <= retry_delay_s(1) <= RETRY_BASE_S
    assert retry_delay_s(0) <= RETRY_BASE_S  # a row that never tried counts as a first try
    assert max(retry_delay_s(n) for n in range(1, 60)) <= RETRY_CAP_S


def test_base_and_cap_are_the_callers() -> None:
    random.seed(7)
    assert 5.0 <= retry_delay_s(3, base_s=2.5, cap_s=100) <= 10.0
    assert 1.5 <= retry_delay_s(30, base_s=2.5, cap_s=3) <= 3.0


@pytest.mark.parametrize("code, kind", [(421, "retry"), (450, "retry"), (451, "retry"), (452, "retry"),
                                        (499, "retry"), (500, "failed"), (550, "failed"),
                                        (554, "failed"), (250, "failed"), (999, "failed")])
def test_4xx_is_tried_again_and_everything_else_is_final(code: int, kind: str) -> None:
    outcome = Outcome.from_reply(code, "words\r\nof the server")
    assert (outcome.kind, outcome.code) == (kind, code)
    assert outcome.text == "words of the server"  # kept on one line, as last_error


def test_a_long_answer_is_kept_short() -> None:
    assert len(Outcome.from_reply(550, "x" * 5000).text) <= 500
