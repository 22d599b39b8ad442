//! `odradek dev`, the README's first command: a broker, the demo topics, the demo pipeline with its
//! live line of top pages, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{free_port, odradek_bin};

#[test]
fn odradek_dev_runs_the_demo_pipeline_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let kafka = free_port();
    let mut child = Command::new(odradek_bin())
        .arg("dev")
        .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
        .args(["--state-dir", dir.path().join("state").to_str().unwrap()])
        .args(["--listen", &addr(kafka)])
        .args(["--http", &addr(free_port())])
        .args(["--pageview-http", &addr(free_port())])
        .args(["--profile-http", &addr(free_port())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn odradek dev");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let live = line.contains("top pages: /");
                seen.push(line);
                if live {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        found,
        "no live line of top pages; output:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter().any(|l| l.contains("kcat -b")),
        "no kcat instructions:\n{}",
        seen.join("\n")
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "odradek dev did not exit 0 on SIGTERM: {status:?}"
    );
}
