"""Lab helper: create Kafka topics and produce sample click events (confluent-kafka).

    ./bootstrap.sh topic clicks 4        # create topic `clicks` with 4 partitions
    ./bootstrap.sh produce clicks 10000  # produce 10,000 sample events matching pipelines/clicks.yaml
"""
import json
import random
import sys
import time
from datetime import datetime, timedelta, timezone

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

BROKERS = "127.0.0.1:9092"
TAGS = ["web", "ios", "android", "promo", "beta"]


def create_topic(name: str, partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": BROKERS})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    try:
        futures[name].result(timeout=30)
        print(f"created topic {name} with {partitions} partitions")
    except Exception as err:  # noqa: BLE001 - "already exists" is fine, anything else is fatal
        if "TOPIC_ALREADY_EXISTS" in str(err):
            print(f"topic {name} already exists")
        else:
            raise SystemExit(f"could not create topic {name}: {err}; is Kafka up? ./bootstrap.sh status")


def sample_event(run: int, i: int, count: int, start: datetime) -> dict:
    """Event i of count, spread evenly over the three hours after start; ids unique per run."""
    ts = start + timedelta(microseconds=i * 3 * 3600 * 1_000_000 // max(1, count))
    return {
        "id": f"evt-{run}-{i:09d}",
        "user_id": random.randint(1, 1_000_000),
        "amount": f"{random.randint(0, 99999) / 100:.2f}",
        "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "tags": random.sample(TAGS, k=2),
        "geo": {"lat": round(random.uniform(-90, 90), 4), "lon": round(random.uniform(-180, 180), 4)},
    }


def produce(topic: str, count: int = 1000) -> None:
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20, "enable.idempotence": True})
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    t0 = time.time()
    run = int(t0)
    for i in range(count):
        while True:
            try:
                producer.produce(topic, json.dumps(sample_event(run, i, count, start)).encode())
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    if left:
        raise SystemExit(f"{left} messages not delivered; is Kafka up? ./bootstrap.sh status")
    print(f"produced {count} events to {topic} in {time.time() - t0:.1f}s")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in ("create-topic", "produce"):
        raise SystemExit(__doc__)
    if argv[0] == "create-topic":
        create_topic(argv[1], int(argv[2]) if len(argv) > 2 else 4)
    else:
        produce(argv[1], int(argv[2]) if len(argv) > 2 else 1000)


if __name__ == "__main__":
    main(sys.argv[1:])
