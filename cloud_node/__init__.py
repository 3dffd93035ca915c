"""The cloud node: the model repository, serving the catalog and model files over MQTT."""
