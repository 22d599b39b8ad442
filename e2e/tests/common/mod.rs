//! Helpers shared by the end-to-end suites: real `odradek` processes on free loopback ports, in
//! temporary directories, killed and cleaned up on drop.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod wire;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `odradek` binary built for these tests.
pub fn odradek_bin() -> &'static str {
    env!("CARGO_BIN_EXE_odradek")
}

/// A free loopback port (bound then released; the broker binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Polls `check` until it returns true or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A broker process.
pub struct BrokerProcess {
    pub child: Option<Child>,
    pub kafka: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    extra: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    /// Starts a broker in a fresh temporary directory and waits until it serves.
    pub fn start(extra: &[&str]) -> Self {
        let mut b = Self::launch(extra);
        b.wait_serving();
        b
    }

    /// Starts a broker in a fresh temporary directory without waiting for it to serve (brokers of
    /// one cluster only serve once a metadata quorum is up, so they must start together).
    pub fn launch(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("broker.log");
        let mut b = BrokerProcess {
            child: None,
            kafka: SocketAddr::from(([127, 0, 0, 1], free_port())),
            http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            data_dir,
            log_path,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            _dir: Some(dir),
        };
        b.spawn_child();
        b
    }

    /// The bootstrap address for clients.
    pub fn bootstrap(&self) -> String {
        self.kafka.to_string()
    }

    fn spawn(&mut self) {
        self.spawn_child();
        self.wait_serving();
    }

    fn spawn_child(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let child = Command::new(odradek_bin())
            .arg("broker")
            .arg("--listen")
            .arg(self.kafka.to_string())
            .arg("--http")
            .arg(self.http.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--group-initial-rebalance-delay-ms")
            .arg("0")
            .args(&self.extra)
            .env(
                "ODRADEK_LOG",
                std::env::var("ODRADEK_TEST_BROKER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn odradek broker");
        self.child = Some(child);
    }

    /// Waits until the Kafka listener accepts connections and `/readyz` answers 200, panicking with
    /// the log after 30 s or if the process exits.
    pub fn wait_serving(&mut self) {
        let kafka = self.kafka;
        let log_path = self.log_path.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = self.http;
        loop {
            // Serving means ready: the listener accepts and /readyz says the broker is unfenced,
            // caught up and leading what it should.
            if TcpStream::connect_timeout(&kafka, Duration::from_millis(200)).is_ok()
                && http_get(http, "/readyz").is_some_and(|(code, _)| code == 200)
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "broker exited with {status} before serving:\n{}",
                    read_log(&log_path)
                );
            }
            if Instant::now() > deadline {
                panic!("broker did not serve within 30s:\n{}", read_log(&log_path));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Runs a command to completion, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}:\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// A simple HTTP GET on loopback: status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}
