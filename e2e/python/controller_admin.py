"""The controller's admin APIs through kafka-python's admin client (a client nobody here wrote):
ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments on a single broker.

Usage: controller_admin.py <bootstrap>. Prints "ok" when every check holds.
"""

import sys

import kafka.errors as errors
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition


def main(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("elected", 2, 1)])

    # The only replica already leads: nothing to elect, per partition.
    r = admin.elect_leaders(0, {"elected": [0, 1]}, raise_errors=False)
    codes = sorted(
        (p.partition_id, p.error_code)
        for t in r.replica_election_results
        for p in t.partition_result
    )
    assert codes == [(0, 84), (1, 84)], codes

    assert admin.list_partition_reassignments() == {}
    tp = TopicPartition("elected", 0)
    assert admin.alter_partition_reassignments({tp: [0]}) == {tp: None}
    cancelled = admin.alter_partition_reassignments({tp: None})
    assert cancelled == {tp: errors.NoReassignmentInProgressError}, cancelled
    unknown_broker = admin.alter_partition_reassignments({tp: [0, 7]})
    assert unknown_broker == {tp: errors.InvalidReplicationAssignmentError}, unknown_broker
    assert admin.list_partition_reassignments() == {}
    admin.close()
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
