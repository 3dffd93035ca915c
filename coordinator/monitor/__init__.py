"""`testbed monitor`: a view of a bench from its MQTT messages (docs/telemetry.md)."""
