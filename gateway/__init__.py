"""Gateway stage: SL 651-2014 and HJ 212-2017 devices over TCP → readings on MQTT (QoS 1, confirmed after PUBACK)."""

from gateway.server import GatewayService

__all__ = ["GatewayService"]
