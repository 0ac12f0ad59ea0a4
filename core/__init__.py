"""Shared domain code: settings, the domain model and the storage ports with their adapters.

Stage packages (ingest, alerts, api, simulators) import this package, never each other.
"""
