"""stack/broker.py without a running broker: the command line its JVMs start with."""

from __future__ import annotations

from stack.broker import KafkaBroker


def flags(broker: KafkaBroker) -> list[str]:
    """The JIT and GC flags of the broker's command line (between the heap and the system properties)."""
    cmd = broker._java("kafka.Kafka", "server.properties")
    assert cmd[-2:] == ["kafka.Kafka", "server.properties"]
    return cmd[cmd.index("-Xms256m") + 1 : cmd.index("-Djava.awt.headless=true")]


def test_the_broker_runs_on_g1_unless_kafkas_own_variable_names_other_flags(tmp_path, monkeypatch):
    broker = KafkaBroker(tmp_path, 19092, 19093, tmp_path / "kafka.log")
    monkeypatch.delenv("KAFKA_JVM_PERFORMANCE_OPTS", raising=False)
    assert flags(broker) == ["-XX:+UseG1GC"]
    monkeypatch.setenv("KAFKA_JVM_PERFORMANCE_OPTS", "")
    assert flags(broker) == ["-XX:+UseG1GC"]
    monkeypatch.setenv("KAFKA_JVM_PERFORMANCE_OPTS", " -XX:+UseSerialGC   -XX:TieredStopAtLevel=1 ")
    assert flags(broker) == ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
