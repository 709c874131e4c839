"""Settings precedence (command line > environment > YAML) and clear start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_monitor.cli import main
from stream_monitor.config.loading import ConfigError, load_settings


def test_precedence_cli_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("window_size: 500\ncheck_every: 50\ntopic: from-file\ngroup-id: file-group\n")
    monkeypatch.setenv("STREAM_MONITOR_CHECK_EVERY", "25")
    monkeypatch.setenv("STREAM_MONITOR_TOPIC", "from-env")
    s = load_settings({"topic": "from-cli"}, cfg)
    assert s.window_size == 500  # file only
    assert s.check_every == 25  # env over file
    assert s.topic == "from-cli"  # cli over env
    assert s.group_id == "file-group"  # dashed keys accepted in YAML
    assert s.dead_letter_topic == "from-cli.dlq"


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings({})
    assert (s.bootstrap_servers, s.topic, s.alerts_topic, s.group_id) == (
        "localhost:9092",
        "predictions",
        "alerts",
        "stream-monitor",
    )
    assert (s.window_size, s.check_every, s.metrics_port, s.auto_offset_reset) == (
        1000,
        100,
        9108,
        "earliest",
    )
    assert s.reference is None


@pytest.mark.parametrize(
    ("cli", "yaml_text", "field"),
    [
        ({"window_size": "0"}, "", "window_size"),
        ({}, "check_every: many\n", "check_every"),
        ({}, "no_such_option: 1\n", "no_such_option"),
        ({"auto_offset_reset": "middle"}, "", "auto_offset_reset"),
        ({"reference": "/does/not/exist"}, "", "reference"),
        ({"topic": "x", "alerts_topic": "x"}, "", "alerts_topic"),
        ({"native_threads": "0"}, "", "native_threads"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path: Path, cli: dict[str, str], yaml_text: str, field: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(cli, cfg)
    assert field in str(err.value)


def test_bad_config_fails_the_command_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--window-size", "-5"]) == 2
    assert "window_size" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- not a mapping\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "expected a mapping" in capsys.readouterr().err


def test_kafka_secrets_are_hidden_but_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_monitor.service.kafka_clients import client_config

    monkeypatch.setenv("STREAM_MONITOR_KAFKA", '{"sasl.password": "s3cret", "acks": "all"}')
    settings = load_settings({})
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert client_config(settings)["sasl.password"] == "s3cret"
    assert client_config(settings)["acks"] == "all"
