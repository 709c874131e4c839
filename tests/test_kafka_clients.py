"""The clients' librdkafka settings: what the monitor sets and what the user's `kafka:`
settings override."""

from __future__ import annotations

from pathlib import Path

from stream_monitor.config.loading import load_settings
from stream_monitor.service.kafka_clients import consumer_config, producer_config


def test_a_group_member_fetches_again_soon_after_its_queue_filled() -> None:
    settings = load_settings({"bootstrap_servers": "127.0.0.1:1", "topic": "p"})
    config = consumer_config(settings)
    # librdkafka's default (1 s) leaves a consumer that works per message idle: see
    # CONSUMER_FETCH
    assert config["fetch.queue.backoff.ms"] == 10
    assert config["isolation.level"] == "read_committed"
    assert config["group.id"] == settings.group_id


def test_the_users_kafka_settings_win(tmp_path: Path) -> None:
    yaml = tmp_path / "monitor.yaml"
    yaml.write_text("kafka:\n  fetch.queue.backoff.ms: 250\n  client.id: mine\n")
    settings = load_settings({"bootstrap_servers": "127.0.0.1:1", "topic": "p"}, yaml)
    config = consumer_config(settings)
    assert config["fetch.queue.backoff.ms"] == 250 and config["client.id"] == "mine"


def test_a_transactional_producer_retries_a_busy_coordinator_soon(tmp_path: Path) -> None:
    settings = load_settings({"bootstrap_servers": "127.0.0.1:1", "topic": "p"})
    config = producer_config(settings, "g-1")
    # librdkafka's 100 ms retry of CONCURRENT_TRANSACTIONS was in every alert right after a
    # commit: see TRANSACTIONAL_RETRY
    assert config["retry.backoff.ms"] == 10
    assert config["transactional.id"] == "g-1" and config["enable.idempotence"]
    assert "retry.backoff.ms" not in producer_config(settings)  # not transactional
    yaml = tmp_path / "monitor.yaml"
    yaml.write_text("kafka:\n  retry.backoff.ms: 100\n")
    mine = load_settings({"bootstrap_servers": "127.0.0.1:1", "topic": "p"}, yaml)
    assert producer_config(mine, "g-1")["retry.backoff.ms"] == 100
