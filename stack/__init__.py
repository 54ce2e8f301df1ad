"""The launcher: the embedded Kafka broker, the topics, `make up`, the tests' harness, local clusters, demo data.

It may import every other package; none of them imports it.
"""
