"""One settings tree, loaded in one place: defaults < default.toml < --config < env < flags."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# The packaged defaults (a real file both in the checkout and in an installed wheel).
DEFAULT_CONFIG = Path(str(files("simsignal.config").joinpath("default.toml")))
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RedisSettings(_Section):
    """Where signals go; a URL may carry an ACL user and password, so it is a secret."""

    url: SecretStr | None = None
    prefix: str = "simsignal"
    retention_days: Annotated[float, Field(gt=0)] = 5.0
    max_pending_signals: Annotated[int, Field(gt=0)] = 100_000  # in memory while Redis fails
    drain_seconds: Annotated[float, Field(ge=0)] = 30.0  # retry at the end, then spill


class HistorySettings(_Section):
    """How raw bars become day curves."""

    template: Literal["cn", "us", "auto"] = "cn"
    max_missing_slots: Annotated[int, Field(ge=0)] = 12
    max_gap_days: Annotated[int, Field(ge=0)] = 4
    cache_dir: str = "data/curves"  # day-curves cache; "" turns it off


class InputSettings(_Section):
    """How far a live bar may stray before it is refused (its damage could not be undone)."""

    max_move: Annotated[float, Field(gt=0)] | None = None  # None: the session template's
    max_prev_close_gap: Annotated[float, Field(gt=0)] = 0.25  # a bar's prev_close vs history


class EngineSettings(_Section):
    """What is scored each minute and how the history is spread over shards."""

    algorithms: tuple[str, ...] = ("sq", "var", "sq_norm", "var_norm")
    k: Annotated[int, Field(gt=0)] = 40
    shards: Annotated[int, Field(gt=0)] | Literal["auto"] = "auto"  # auto: the cluster's CPUs
    partition: Literal["auto", "ticker", "day"] = "auto"
    pooled: bool = False
    channels: dict[str, float] = Field(default_factory=lambda: {"price": 1.0})
    dtw_band: Annotated[int, Field(ge=0)] = 10
    motif_window: Annotated[int, Field(ge=1, le=390)] = 30
    direct_links: bool = True  # the minute's fan-out over a socket per shard (false: Ray calls)
    calibration: str = ""  # up_prob calibration from `simsignal evaluate`; "" = raw share
    # a minute's batch closes when every live ticker sent its bar, or this long after the first
    batch_deadline_ms: Annotated[float, Field(gt=0, le=60_000)] = 50.0

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        from simsignal.engine.core.channels import parse_channels  # noqa: PLC0415

        return parse_channels(value)

    @property
    def params(self) -> Any:
        """The algorithms' tunables."""
        from simsignal.engine.core.algorithms import Params  # noqa: PLC0415

        return Params(dtw_band=self.dtw_band, motif_window=self.motif_window)

    @field_validator("algorithms", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("algorithms")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from simsignal.engine.core.algorithms import KNOWN, REGISTRY  # noqa: PLC0415 - avoids an import cycle

        unknown = [name for name in value if name not in KNOWN]
        if unknown or not any(name in REGISTRY for name in value):
            raise ValueError(
                f"unknown algorithm(s) {unknown or value!r}; known: {', '.join(KNOWN)} "
                "(ensemble needs at least one other)"
            )
        return value


class SignalsSettings(_Section):
    """The derived signals: timing and rebalance (derived.py), rest-of-day risk (risk_model.py)."""

    timing: bool = True
    rebalance: bool = True
    risk: bool = True  # rest-of-day volatility and range left, per ticker and minute
    algo: str = ""  # whose forecasts they use; "": the ensemble when it runs, else the first
    prob_margin: Annotated[float, Field(ge=0, lt=0.5)] = 0.05  # timing: |up_prob − ½| at least
    min_edge: Annotated[float, Field(ge=0)] = 0.25  # timing: |pred_move| / dispersion at least
    cap: Annotated[float, Field(gt=0, le=1)] = 0.1  # rebalance: largest weight of one ticker
    max_turnover: Annotated[float, Field(gt=0, le=2)] = 0.2  # rebalance: Σ|Δw| per minute
    pairs: tuple[tuple[str, str], ...] = ()  # (A, B): the spread A − B, matched as `A~B`

    @field_validator("pairs", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """Pairs as "A~B,C~D" (a flag or an environment variable) or a list of [A, B]."""
        if isinstance(value, str):
            value = [p.split("~") for p in value.split(",") if p.strip()]
        out = []
        for pair in value or ():
            if isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"pair {pair!r}: two different tickers, A~B")
            a, b = (str(t).strip() for t in pair)
            if not a or not b or a == b or "~" in a + b:
                raise ValueError(f"pair {pair!r}: two different tickers, A~B")
            out.append((a, b))
        return tuple(out)

    def rules(self) -> tuple[Any, Any]:
        """(TimingRule | None, RebalanceRule | None) as configured."""
        from simsignal.engine.core.derived import RebalanceRule, TimingRule  # noqa: PLC0415

        timing = TimingRule(self.prob_margin, self.min_edge)
        return (timing if self.timing else None,
                RebalanceRule(self.cap, self.max_turnover) if self.rebalance else None)  # fmt: skip


class DashboardSettings(_Section):
    """The read-only web page, and which tickers the engine draws for it."""

    view_tickers: tuple[str, ...] = ()  # the engine writes {prefix}:view:{ticker} for these
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8050


class ClusterSettings(_Section):
    """Ray and Spark sizing; Ray's own defaults where unset."""

    address: str | None = None  # auto, HOST:PORT (this machine is a node) or ray://HOST:PORT
    num_cpus: Annotated[int, Field(gt=0)] | None = None
    executor_memory: str = "auto"  # "auto": 2 GB + 0.3 GB per million bars, ≤ half the RAM
    executor_cores: Annotated[int, Field(gt=0)] | None = None  # default: a node's cores
    executors: Annotated[int, Field(gt=0)] | None = None  # default: one per node with CPUs
    shard_cpus: Annotated[float, Field(gt=0)] | None = None  # default: CPUs / shards, at most 1


class Settings(BaseSettings):
    """The whole configuration. Frozen; unknown keys are errors, not silently ignored."""

    model_config = SettingsConfigDict(
        env_prefix="SIMSIGNAL_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    redis: RedisSettings = RedisSettings()
    history: HistorySettings = HistorySettings()
    input: InputSettings = InputSettings()
    engine: EngineSettings = EngineSettings()
    signals: SignalsSettings = SignalsSettings()
    dashboard: DashboardSettings = DashboardSettings()
    cluster: ClusterSettings = ClusterSettings()

    @model_validator(mode="after")
    def _derived_algo_runs(self) -> Settings:
        algo = self.signals.algo
        if algo and algo not in self.engine.algorithms:
            raise ValueError(f"signals.algo {algo!r} is not among engine.algorithms "
                             f"{', '.join(self.engine.algorithms)}")  # fmt: skip
        if self.signals.pairs and (self.engine.pooled or set(self.engine.channels) != {"price"}):
            raise ValueError("signals.pairs needs engine.pooled = false and the price channel "
                             f"only (channels: {', '.join(self.engine.channels)})")  # fmt: skip
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init) over env over --config over config/default.toml."""
        files = [DEFAULT_CONFIG, *_EXTRA_FILES]
        tomls = [TomlConfigSettingsSource(settings_cls, toml_file=f) for f in reversed(files)]
        return (init_settings, env_settings, *tomls)


_EXTRA_FILES: list[Path] = []


def describe(err: ValidationError) -> str:
    """A validation error as one line per setting: `section.name = value: why`, joined by `; `.

    Pydantic's own text spans lines and ends with a link; an operator needs the setting, the
    value and the reason, as every other error of the engine gives them.
    """
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "settings"
        why = str(e["msg"]).removeprefix("Value error, ")
        value = e.get("input")
        secret = any(word in where for word in ("url", "password"))  # never printed
        shown = "" if isinstance(value, dict) or secret else f" = {value!r}"
        parts.append(f"{where}{shown}: {why}")
    return "; ".join(parts)


def load_settings(config_file: Path | None = None, **overrides: dict[str, Any]) -> Settings:
    """Build the settings tree; `overrides` are per-section dicts from command-line flags."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"--config {config_file}: no such file")
    _EXTRA_FILES[:] = [config_file] if config_file else []
    try:
        merged: dict[str, Any] = {}
        if overrides:
            base = Settings()
            for section, values in overrides.items():
                clean = {k: v for k, v in values.items() if v is not None}
                if clean:
                    current = getattr(base, section).model_dump()
                    merged[section] = {**current, **clean}
        return Settings(**merged)
    finally:
        _EXTRA_FILES.clear()
