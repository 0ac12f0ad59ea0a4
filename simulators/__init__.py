"""Simulated stations: a Jimo-sized district, scenario values, and a publisher that replays them over MQTT."""

from simulators.district import generate_district
from simulators.runner import Simulator
from simulators.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "Scenario", "Simulator", "generate_district"]
