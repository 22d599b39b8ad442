//! kafka-python (a pure-Python client, nothing shared with librdkafka) runs consumer-group scenarios
//! and drives the controller's admin APIs (leader elections, partition reassignments).

use std::process::Command;

use crate::common::{BrokerProcess, run_ok};

/// Runs a scenario; on failure, panics with the scenario's output and the broker's log.
fn run_with_log(broker: &BrokerProcess, cmd: &mut Command) -> String {
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout:\n{stdout}\nstderr:\n{}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    stdout
}

/// The interpreter with kafka-python running the consumer-group scenarios.
fn python() -> Command {
    python_script("consumer_group.py")
}

/// The interpreter with kafka-python: `ODRADEK_PYTHON`, else the venv `.ci/run` makes, else
/// `python3`; running `e2e/python/<script>`.
fn python_script(script: &str) -> Command {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let venv = format!("{root}/e2e/.venv/bin/python");
    let exe = std::env::var("ODRADEK_PYTHON")
        .ok()
        .or_else(|| std::path::Path::new(&venv).exists().then_some(venv))
        .unwrap_or_else(|| "python3".into());
    let check = Command::new(&exe)
        .args(["-c", "import kafka"])
        .output()
        .expect("python");
    assert!(
        check.status.success(),
        "{exe} has no kafka-python: run .ci/run or pip install kafka-python"
    );
    let mut cmd = Command::new(exe);
    cmd.arg(format!("{root}/e2e/python/{script}"));
    cmd
}

#[test]
fn a_group_of_three_rebalances_as_members_join_and_leave() {
    let broker = BrokerProcess::start(&[]);
    let out = run_with_log(&broker, python().args(["rebalance", &broker.bootstrap()]));
    assert!(out.contains("\"ok\": true"), "{out}");
}

#[test]
fn a_group_resumes_from_committed_offsets_after_a_broker_restart() {
    let mut broker = BrokerProcess::start(&[]);
    run_ok(python().args(["commit-half", &broker.bootstrap()]));
    // kill -9: the committed offsets must be in the log, not only in memory.
    broker.restart();
    let out = run_ok(python().args(["resume", &broker.bootstrap()]));
    assert!(
        out.contains("\"first\": {\"0\": 150, \"1\": 150, \"2\": 150}"),
        "{out}"
    );
}

#[test]
fn kafka_pythons_admin_client_elects_leaders_and_reassigns_partitions() {
    let broker = BrokerProcess::start(&[]);
    let out = run_with_log(
        &broker,
        python_script("controller_admin.py").arg(broker.bootstrap()),
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
}
