"""Consumer-group scenarios run with kafka-python against a live Odradek broker.

Usage: consumer_group.py PHASE BOOTSTRAP
  rebalance    a group of three that rebalances when a member joins and when one leaves, commits,
               and together reads every record exactly once per partition offset
  commit-half  produce 900 records to 3 partitions, consume and commit the first half of each
  resume       a new member of the same group resumes exactly at the committed offsets

Exits non-zero with a message on any failed expectation.
"""

import json
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, IllegalGenerationError, RebalanceInProgressError, UnknownMemberIdError

DEADLINE_S = 60


def wait_for(what, check, timeout=DEADLINE_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def create_topic(bootstrap, name, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="e2e-admin")
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    admin.close()


def produce(bootstrap, topic, count, partitions):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(count):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % partitions)
    producer.flush()
    producer.close()


class Member(threading.Thread):
    """A consumer in a thread: polls, records what it got and its assignment, commits synchronously."""

    def __init__(self, bootstrap, group, topic, name):
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            heartbeat_interval_ms=300,
            session_timeout_ms=6000,
        )
        self.name = name
        self.seen = []
        self.assignment = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.error = None
        self.failed_commits = 0
        self.dirty = False

    def commit(self):
        """Commits what was polled. A commit racing a rebalance is refused by the coordinator
        (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION): as any consumer does, carry on and commit
        again after rejoining."""
        try:
            self.consumer.commit()
        except (CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError):
            self.failed_commits += 1
            self.dirty = True

    def run(self):
        try:
            while not self.stop.is_set():
                # Long enough for a rejoin to finish inside one poll: kafka-python 3.0 can spin on
                # short polls while its join is in flight, starving its own session.
                batch = self.consumer.poll(timeout_ms=1000)
                with self.lock:
                    self.assignment = {tp.partition for tp in self.consumer.assignment()}
                    for tp, records in batch.items():
                        self.seen.extend((tp.partition, r.offset, r.value) for r in records)
                if batch or self.dirty:
                    self.dirty = False
                    self.commit()
            self.commit()
        except Exception as e:  # reported by the main thread
            self.error = e
        finally:
            self.consumer.close()

    def parts(self):
        with self.lock:
            return set(self.assignment)


def rebalance(bootstrap):
    topic, partitions = "py-rebalance", 6
    create_topic(bootstrap, topic, partitions)
    produce(bootstrap, topic, 600, partitions)
    a = Member(bootstrap, "py-group", topic, "a")
    b = Member(bootstrap, "py-group", topic, "b")
    a.start()
    b.start()
    everything = set(range(partitions))

    def covers(members, each):
        for m in (a, b):
            if m.error:
                raise SystemExit(f"member {m.name} failed: {m.error!r}")
        ps = [m.parts() for m in members]
        union = set().union(*ps)
        disjoint = sum(len(p) for p in ps) == len(union)
        return union == everything and disjoint and all(len(p) == each for p in ps)

    wait_for("two members to split six partitions", lambda: covers([a, b], 3))
    c = Member(bootstrap, "py-group", topic, "c")
    c.start()
    wait_for("a third member to get its share", lambda: covers([a, b, c], 2))
    c.stop.set()
    c.join(timeout=30)
    wait_for("the two remaining members to take over", lambda: covers([a, b], 3))
    produce(bootstrap, topic, 600, partitions)

    def all_read():
        got = set()
        for m in (a, b, c):
            with m.lock:
                got.update((p, o) for p, o, _ in m.seen)
        return len(got) == 1200

    wait_for("every record to be read", all_read)
    for m in (a, b):
        m.stop.set()
        m.join(timeout=30)
    for m in (a, b, c):
        if m.error:
            raise SystemExit(f"member {m.name} failed: {m.error!r}")
    # Committed offsets are at the end of every partition.
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id="py-group", enable_auto_commit=False)
    for p in range(partitions):
        committed = probe.committed(TopicPartition(topic, p))
        if committed != 200:
            raise SystemExit(f"partition {p}: committed {committed}, expected 200")
    probe.close()
    print(json.dumps({"ok": True, "members": {m.name: len(m.seen) for m in (a, b, c)}}))


def commit_half(bootstrap):
    topic, partitions = "py-resume", 3
    create_topic(bootstrap, topic, partitions)
    produce(bootstrap, topic, 900, partitions)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="py-resume-group", enable_auto_commit=False,
                             auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    read = {p: 0 for p in range(partitions)}
    deadline = time.monotonic() + DEADLINE_S
    while any(n < 150 for n in read.values()):
        if time.monotonic() > deadline:
            raise SystemExit(f"read only {read}")
        for tp, records in consumer.poll(timeout_ms=200).items():
            read[tp.partition] = max(read[tp.partition], records[-1].offset + 1)
    from kafka.structs import OffsetAndMetadata
    consumer.commit({tp: OffsetAndMetadata(150, "", -1) for tp in tps})
    consumer.close()
    print(json.dumps({"ok": True}))


def resume(bootstrap):
    topic, partitions = "py-resume", 3
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="py-resume-group", enable_auto_commit=False,
                             auto_offset_reset="earliest", heartbeat_interval_ms=300)
    first = {}
    count = 0
    deadline = time.monotonic() + DEADLINE_S
    while count < 450:
        if time.monotonic() > deadline:
            raise SystemExit(f"resumed and read only {count} records, first offsets {first}")
        for tp, records in consumer.poll(timeout_ms=200).items():
            first.setdefault(tp.partition, records[0].offset)
            count += len(records)
    consumer.close()
    if first != {0: 150, 1: 150, 2: 150} or count != 450:
        raise SystemExit(f"resume started at {first} and read {count}; expected 150 on each and 450")
    print(json.dumps({"ok": True, "first": first}, sort_keys=True))


if __name__ == "__main__":
    phase, bootstrap = sys.argv[1], sys.argv[2]
    {"rebalance": rebalance, "commit-half": commit_half, "resume": resume}[phase](bootstrap)
