"""The secrets table: every made-up secret is replaced, every look-alike stays byte for byte."""

from __future__ import annotations

import pytest

from python_worker.dataset.config import ScrubConfig
from python_worker.dataset.scrub import Scrubber, is_secret_value, shannon_entropy
from python_worker.tests.scrub_table import LOOK_ALIKES, SECRETS, Case

SCRUBBER = Scrubber(ScrubConfig())


def test_the_table_is_big_enough_and_ids_are_unique() -> None:
    assert len(SECRETS) >= 40 and len(LOOK_ALIKES) >= 40
    ids = [c.id for c in SECRETS + LOOK_ALIKES]
    assert len(ids) == len(set(ids))
    assert all(c.secret and c.secret in c.text for c in SECRETS)


@pytest.mark.parametrize("case", SECRETS, ids=lambda c: c.id)
def test_secret_is_replaced(case: Case) -> None:
    out, found = SCRUBBER.scrub(case.text)
    assert case.secret not in out, out
    assert "<SECRET>" in out or "<AWS_KEY>" in out or "<PRIVATE_KEY>" in out, out
    assert sum(found.values()) >= 1


@pytest.mark.parametrize("case", LOOK_ALIKES, ids=lambda c: c.id)
def test_look_alike_stays(case: Case) -> None:
    out, found = SCRUBBER.scrub(case.text)
    assert out == case.text
    assert not found


def test_only_the_value_is_replaced() -> None:
    out, found = SCRUBBER.scrub('config :app, aws_key: "AKIAQ3X9ZL2M7WB4KD0"\n')
    assert out == 'config :app, aws_key: "<SECRET>"\n'
    assert found == {"token": 1}
    out, found = SCRUBBER.scrub('url: "ecto://app:Zq81mPw0xLr4@db.internal/app"')
    assert out == 'url: "ecto://app:<SECRET>@db.internal/app"'
    assert found == {"db_password": 1}
    out, _ = SCRUBBER.scrub('put_req_header(conn, "authorization", "Bearer Q2h8mZ0pLx7Vt4Rk9Ws1Yb6N")')
    assert out == 'put_req_header(conn, "authorization", "Bearer <SECRET>")'


def test_a_value_reached_from_two_key_words_counts_once() -> None:
    _, found = SCRUBBER.scrub('secret_api_token_key: "Q2h8mZ0pLx7Vt4Rk9Ws1Yb6N"')
    assert found == {"token": 1}


def test_config_tokens_off_leaves_generic_secrets() -> None:
    text = 'api_key: "Q2h8mZ0pLx7Vt4Rk9Ws1Yb6N"'
    assert Scrubber(ScrubConfig(config_tokens=False)).scrub(text) == (text, {})


def test_entropy_and_thresholds() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    # A key-like name needs a random-looking value; a password-like name less so.
    assert is_secret_value("api_key", "Q2h8mZ0pLx7Vt4Rk9Ws1Yb6N")
    assert not is_secret_value("api_key", "aaaaaaaaaaaaaaaa")
    assert not is_secret_value("api_key", "users_by_email")
    assert is_secret_value("password", "hunter2hunter2")
    assert not is_secret_value("password", "postgres")
    assert is_secret_value("signing_salt", "Xk3mPq9Z")
    assert not is_secret_value("token_env", "Q2h8mZ0pLx7Vt4Rk9Ws1Yb6N")
