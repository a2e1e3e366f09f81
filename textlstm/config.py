"""One run's configuration: sections `data`, `model`, `train`, each a dataclass that lives
next to the code it configures (data.py, model.py, train.py).

Precedence, lowest first: the dataclass defaults, a TOML file (`--config`), `--set
section.field=value` overrides, then the dedicated CLI flags (`--data`, `--seed`,
`--device`). Unknown sections or fields are errors that list the valid ones.
"""

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from textlstm import TextlstmError
from textlstm.data import DataConfig
from textlstm.model import ModelConfig
from textlstm.train import TrainConfig


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """The effective config as TOML-like lines, printed at the start of a run."""
        lines = []
        for section, values in self.as_dict().items():
            lines.append(f"[{section}]")
            lines += [f"  {key} = {json.dumps(value)}" for key, value in values.items()]
        return "\n".join(lines)


def coerce(value, kind, key: str):
    """`value` (from TOML or a --set string) as the field's type, or a clear error."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        kind = args[0]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise TextlstmError(f"{key}: {value!r} is not a valid {getattr(kind, '__name__', kind)}")


def apply(cfg: RunConfig, section: str, key: str, value) -> None:
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    if section not in sections:
        raise TextlstmError(f"unknown config section {section!r}; sections: {', '.join(sections)}")
    target = sections[section]
    hints = typing.get_type_hints(type(target))
    if key not in hints:
        raise TextlstmError(
            f"unknown config key {section}.{key}; valid keys: "
            + ", ".join(f"{section}.{k}" for k in hints)
        )
    setattr(target, key, coerce(value, hints[key], f"{section}.{key}"))


def build(config_file: str | None = None, overrides: tuple[str, ...] = ()) -> RunConfig:
    cfg = RunConfig()
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise TextlstmError(f"config file {path} does not exist")
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise TextlstmError(f"{path} is not valid TOML: {exc}") from exc
        for section, values in table.items():
            if not isinstance(values, dict):
                raise TextlstmError(f"{path}: {section!r} must be a [section] table")
            for key, value in values.items():
                apply(cfg, section, key, value)
    for item in overrides:
        apply(cfg, *split_override(item))
    return cfg


def split_override(item: str) -> tuple[str, str, str]:
    """ "train.epochs=3" -> ("train", "epochs", "3")."""
    dotted, sep, value = item.partition("=")
    section, dot, key = dotted.strip().partition(".")
    if not sep or not dot:
        raise TextlstmError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=3")
    return section, key, value.strip()


def from_dict(values: dict) -> RunConfig:
    """The RunConfig saved in a checkpoint's config.json."""
    cfg = RunConfig()
    for section in ("data", "model", "train"):
        for key, value in values.get(section, {}).items():
            apply(cfg, section, key, value)
    return cfg
