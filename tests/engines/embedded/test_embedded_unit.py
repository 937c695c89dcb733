"""Unit tests of the embedded engine's pieces (no broker)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from engines.embedded.config import parse_config
from engines.embedded.instance import fencing_kind
from harness.api import Guarantee
from harness.errors import ConfigError


@pytest.mark.parametrize("code,kind", [
    (KafkaError._FENCED, "producer"),
    (KafkaError.PRODUCER_FENCED, "producer"),
    (KafkaError.INVALID_PRODUCER_EPOCH, "producer"),
    (KafkaError.UNKNOWN_MEMBER_ID, "generation"),
    (KafkaError.ILLEGAL_GENERATION, "generation"),
    (KafkaError.REQUEST_TIMED_OUT, None),
])
def test_fencing_is_classified_by_error_code(code, kind):
    assert fencing_kind(KafkaError(code)) == kind


def test_fencing_is_recognised_in_a_per_partition_commit_error():
    err = KafkaError(KafkaError._INCONSISTENT, "Failed to commit offsets to transaction: input[2](Broker: Unknown member)")
    assert fencing_kind(err) == "generation"


def test_commit_interval_defaults_follow_kafka_streams():
    cfg = parse_config({})
    assert cfg.effective_commit_interval_ms(Guarantee.exactly_once) == 100
    assert cfg.effective_commit_interval_ms(Guarantee.at_least_once) == 30_000
    assert parse_config({"commit_interval_ms": 250}).effective_commit_interval_ms(Guarantee.exactly_once) == 250


def test_bad_engine_config_names_the_key_and_value():
    with pytest.raises(ConfigError, match=r"engine_config.embedded.session_timeout_ms.*found 5"):
        parse_config({"session_timeout_ms": 5})
    with pytest.raises(ConfigError, match=r"engine_config\.embedded\.colour"):
        parse_config({"colour": "blue"})
