//! kcat (librdkafka 2.0 from Debian) produces and consumes with keys, headers and every codec.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::admin::create_topic;
use crate::common::{BrokerProcess, run_ok};

fn kcat() -> Command {
    // A missing kcat is a broken test machine, not a reason to skip: .ci/run installs it.
    let which = Command::new("sh")
        .arg("-c")
        .arg("command -v kcat")
        .output()
        .expect("sh");
    assert!(
        which.status.success(),
        "kcat is not installed (apt-get install kcat)"
    );
    Command::new("kcat")
}

fn produce(bootstrap: &str, topic: &str, codec: &str, lines: &[String]) {
    let mut child = kcat()
        .args([
            "-P",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-K",
            ":",
            "-z",
            codec,
            "-H",
            "trace=abc",
            "-H",
            "origin=kcat",
        ])
        .args(["-X", "linger.ms=5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    {
        let stdin = child.stdin.as_mut().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write");
        }
    }
    let out = child.wait_with_output().expect("kcat");
    assert!(
        out.status.success(),
        "kcat -P failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn consume(bootstrap: &str, topic: &str) -> Vec<String> {
    let out = run_ok(kcat().args([
        "-C",
        "-b",
        bootstrap,
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%p|%o|%k|%s|%h\n",
    ]));
    out.lines().map(str::to_owned).collect()
}

#[test]
fn kcat_round_trips_keys_headers_and_every_codec() {
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("kcat-{codec}");
        create_topic(broker.kafka, &topic, 1, &[]);
        let lines: Vec<String> = (0..500)
            .map(|i| format!("key-{i}:value {i} {}", "x".repeat(i % 50)))
            .collect();
        produce(&bootstrap, &topic, codec, &lines);
        let got = consume(&bootstrap, &topic);
        assert_eq!(
            got.len(),
            lines.len(),
            "{codec}: consumed {} of {}",
            got.len(),
            lines.len()
        );
        for (i, (line, sent)) in got.iter().zip(&lines).enumerate() {
            let (key, value) = sent.split_once(':').expect("key:value");
            let expected = format!("0|{i}|{key}|{value}|trace=abc,origin=kcat");
            assert_eq!(line, &expected, "{codec}: record {i}");
        }
    }
}

#[test]
fn kcat_lists_metadata_and_consumes_across_partitions() {
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(broker.kafka, "kcat-multi", 4, &[]);
    let lines: Vec<String> = (0..400).map(|i| format!("k{i}:v{i}")).collect();
    produce(&bootstrap, "kcat-multi", "lz4", &lines);
    let meta = run_ok(kcat().args(["-L", "-b", &bootstrap, "-t", "kcat-multi"]));
    assert!(
        meta.contains("topic \"kcat-multi\" with 4 partitions"),
        "{meta}"
    );
    let got = consume(&bootstrap, "kcat-multi");
    assert_eq!(got.len(), 400);
    let mut values: Vec<String> = got
        .iter()
        .map(|l| l.split('|').nth(3).unwrap_or_default().to_owned())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..400).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
    // Keys hash to partitions: one key, one partition.
    let mut by_key = std::collections::HashMap::new();
    for l in &got {
        let mut f = l.split('|');
        let p = f.next().unwrap_or_default().to_owned();
        let k = f.nth(1).unwrap_or_default().to_owned();
        assert_eq!(by_key.entry(k).or_insert_with(|| p.clone()), &p);
    }
    assert!(
        by_key
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1,
        "all keys in one partition"
    );
}
