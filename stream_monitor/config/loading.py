"""Settings from their sources: command line over environment over YAML file, and errors that
name the field and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from stream_monitor.config.settings import Settings


class ConfigError(Exception):
    """A configuration that cannot start the monitor; the message names field and reason."""


class _MappingSource(PydanticBaseSettingsSource):
    """A settings source over a dict already read (the YAML file)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_settings(cli: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Build the settings with the precedence command line > environment > YAML file.

    `cli` holds only the options given on the command line. Errors become a ConfigError
    whose message names every offending field, its source value and the reason.
    """
    file_data = read_yaml(config_file) if config_file is not None else {}

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _MappingSource(settings_cls, file_data))

    try:
        layered = _Layered(**cli)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    return layered  # a Settings (its subclass only chose the sources)


def format_validation_error(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(settings)"
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown option"
        elif err["type"] == "value_error":  # our own validators' reasons, without the prefix
            reason = reason.removeprefix("Value error, ")
        value = err.get("input")
        secret = bool(err["loc"]) and err["loc"][0] in ("webhooks", "kafka")  # URLs, passwords
        shown = "" if secret or isinstance(value, dict) or value is None else f" (got {value!r})"
        lines.append(f"  {field}: {reason}{shown}")
    return "\n".join(lines)
