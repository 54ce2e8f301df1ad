"""The local stack: settings shared by every part, the embedded Kafka broker, topics and `make up`."""
