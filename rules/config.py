"""The rules stage's configuration section (``rules:``): its daemon's settings and the rule
definitions, each of one of the kinds in ``rules/kinds/``. Pure pydantic: the root model in
``homevitals/vocab/config.py`` assembles it, and the Raspberry Pi loads that."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from homevitals.rules.kinds import RuleConfig, episode_of
from homevitals.vocab.config_base import AmqpConnection, MetricsConfig, Model, MqttLogin
from homevitals.vocab.readings import check_id

__all__ = ["RulesAmqpConfig", "RulesConfig"]


class RulesAmqpConfig(AmqpConnection):
    """The rules' source in the cluster profile (docs/cluster.md "Rules ownership"): one input
    queue bound to the MQTT plugin's exchange, a partitioner that re-keys each message by its
    home, and ``partitions`` single-active-consumer queues behind a consistent-hash exchange.
    Every worker of one deployment must name the same queues and the same ``partitions``."""

    queue: str = Field("homevitals.rules.in", min_length=1, description="the partitioner's input")
    partition_exchange: str = Field("homevitals.rules", min_length=1)
    partitions: int = Field(8, ge=1, le=1024, description="queues <partition_exchange>.p<i>")


class RulesConfig(Model):
    client_id: str = "homevitals-rules"
    # mqtt: its own MQTT subscription (the embedded profile); amqp: partitions of a RabbitMQ
    # cluster (the cluster profile). Decisions go out over MQTT either way.
    source: Literal["mqtt", "amqp"] = "mqtt"
    amqp: RulesAmqpConfig | None = None
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    metrics: MetricsConfig | None = None
    state_path: str = "homevitals-rules-state.sqlite"
    state_url: str | None = Field(
        None, description="the rules' state in PostgreSQL (postgresql+psycopg://...), shared by"
        " the rules workers of a cluster (docs/cluster.md); default: SQLite in state_path",
    )
    definitions: list[RuleConfig] = []
    # Unused since the checks' due times are rows of the state (issue 16); kept so that a
    # configuration naming APScheduler's old job store still loads.
    schedule_path: str | None = None
    tick_seconds: float = Field(
        30.0, ge=0, description="the timer of missing-data checks looks at their due times at"
        " least this often in wall time (rows another worker wrote); 0: no timer, only on"
        " message times",
    )

    @model_validator(mode="after")
    def _source_settings(self) -> RulesConfig:
        if self.source == "amqp" and self.amqp is None:
            raise ValueError("source amqp needs an amqp section (urls)")
        if self.source == "amqp" and self.state_url is None:
            # Workers that hand patients to each other share their state: one SQLite file per
            # worker would lose it at each takeover (docs/cluster.md "Rules ownership").
            raise ValueError("source amqp needs state_url (the workers' shared PostgreSQL)")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesConfig:
        ids = [r.id for r in self.definitions]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"rule ids must be unique: {', '.join(dup)}")
        for r in self.definitions:
            if r.episode is not None:
                check_id("episode", r.episode)
            wrong = r.names_unknown(set(ids))
            if wrong:
                raise ValueError(wrong)
            if r.opens():
                continue
            if not any(
                o is not r and episode_of(o) == episode_of(r) and o.opens()
                for o in self.definitions
            ):
                raise ValueError(
                    f"rule {r.id}: opens_episode is false, so it needs an episode shared with a"
                    " rule that opens it"
                )
        return self
