"""The gateway's configuration section (assembled into the root model by
``homevitals/vocab/config.py``): pure pydantic, as the Pi loads it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from homevitals.vocab.config_base import MetricsConfig, Model, MqttLogin

__all__ = ["GatewayConfig", "HomeAssistantConfig"]


class HomeAssistantConfig(Model):
    """Home Assistant MQTT discovery: retained config topics so a family's HA shows the
    devices (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery). Off by default."""

    enabled: bool = False
    discovery_prefix: str = "homeassistant"


class GatewayConfig(Model):
    home: str
    metrics: MetricsConfig | None = None
    transport: Literal["bleak", "simulated"] = "bleak"
    queue_path: str = "homevitals-gateway-queue.sqlite"
    queue_max_messages: int = Field(1_000_000, ge=100)
    max_inflight: int = Field(100, ge=1, le=1000)
    heartbeat_seconds: float = Field(60.0, gt=0)
    client_id: str | None = None
    mqtt: MqttLogin | None = None  # this daemon's broker user (MqttLogin)
    # Deprecated: earlier bleak gateways kept the last RACP sequence number per meter in this
    # file. The mark now lives in the queue database, committed with the readings; a file
    # named here is read once at start to carry its marks over (gateway/app.py).
    sequence_state_path: str | None = None
    # What happens when queue_max_messages are waiting (the home offline for a long time):
    # drop_oldest makes room by deleting the oldest messages; drop_new_readings refuses new
    # readings instead. Call-button events are always queued. Either way every drop is logged
    # and counted in the heartbeat ("dropped").
    queue_full: Literal["drop_oldest", "drop_new_readings"] = "drop_oldest"
    racp_timeout_seconds: float = Field(30.0, gt=0, description="glucose record download")
    home_assistant: HomeAssistantConfig = Field(default_factory=lambda: HomeAssistantConfig())
