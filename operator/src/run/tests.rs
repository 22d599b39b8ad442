//! Tests of `run`.

use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: OperatorArgs,
}

fn parse(argv: &[&str]) -> OperatorArgs {
    let mut full = vec!["operator"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full).unwrap().args
}

#[test]
fn defaults_are_valid_and_namespaces_split_on_commas() {
    let args = parse(&["--namespaces", "a,b", "--leader-election", "false"]);
    assert!(args.validate().is_ok());
    assert_eq!(args.namespaces, vec!["a".to_owned(), "b".to_owned()]);
    assert!(!args.leader_election);
    assert_eq!(args.http, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(args.controller_config().resync, Duration::from_secs(300));
}

/// Controllers that run until stopped and record that they ran.
fn controllers(
    ran: &Arc<AtomicBool>,
) -> impl FnOnce(CancellationToken) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    let ran = ran.clone();
    move |stop: CancellationToken| {
        Box::pin(async move {
            ran.store(true, Ordering::SeqCst);
            stop.cancelled().await;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_standby_never_runs_controllers_and_shuts_down_cleanly() {
    let (_tx, mut rx) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let ran = Arc::new(AtomicBool::new(false));
    let task = {
        let shutdown = shutdown.clone();
        let ran = ran.clone();
        tokio::spawn(async move {
            follow_leadership(&mut rx, &shutdown, || {}, controllers(&ran)).await
        })
    };
    tokio::task::yield_now().await;
    shutdown.cancel();
    assert_eq!(task.await.unwrap().unwrap(), Term::ShutdownWhileStandby);
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_leader_runs_controllers_until_shutdown() {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let ran = Arc::new(AtomicBool::new(false));
    let led = Arc::new(AtomicBool::new(false));
    let task = {
        let (shutdown, ran, led) = (shutdown.clone(), ran.clone(), led.clone());
        tokio::spawn(async move {
            follow_leadership(
                &mut rx,
                &shutdown,
                move || led.store(true, Ordering::SeqCst),
                controllers(&ran),
            )
            .await
        })
    };
    tx.send(true).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !ran.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "controllers never started"
        );
        tokio::task::yield_now().await;
    }
    assert!(led.load(Ordering::SeqCst));
    shutdown.cancel();
    assert_eq!(task.await.unwrap().unwrap(), Term::Finished);
}

#[tokio::test]
async fn losing_the_lease_stops_the_controllers() {
    let (tx, mut rx) = tokio::sync::watch::channel(true);
    let shutdown = CancellationToken::new();
    let ran = Arc::new(AtomicBool::new(false));
    let task = {
        let (shutdown, ran) = (shutdown.clone(), ran.clone());
        tokio::spawn(async move {
            follow_leadership(&mut rx, &shutdown, || {}, controllers(&ran)).await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !ran.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "controllers never started"
        );
        tokio::task::yield_now().await;
    }
    tx.send(false).unwrap();
    // The controllers only return once their stop token is cancelled.
    let term = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap();
    assert_eq!(term.unwrap().unwrap(), Term::Lost);
    assert!(
        !shutdown.is_cancelled(),
        "losing the lease is not a process shutdown"
    );
}

#[test]
fn replicas_write_the_lease_under_distinct_field_managers() {
    let (a, b) = (identity(), identity());
    assert_ne!(a, b);
    assert_ne!(lease_field_manager(&a), lease_field_manager(&b));
    assert_ne!(lease_field_manager(&a), crate::controllers::FIELD_MANAGER);
}

#[test]
fn validate_names_the_bad_flag() {
    let blank = parse(&["--namespaces", ""]);
    assert!(blank.watched_namespaces().is_empty());
    let spaced = parse(&["--namespaces", " a ,,b"]);
    assert_eq!(
        spaced.watched_namespaces(),
        vec!["a".to_owned(), "b".to_owned()]
    );
    let args = parse(&["--lease-grace-seconds", "20"]);
    assert_eq!(
        args.validate(),
        Err(ConfigError::LeaseGrace {
            grace: 20,
            duration: 15
        })
    );
    let args = parse(&["--poll-seconds", "0"]);
    assert_eq!(
        args.validate().unwrap_err().to_string(),
        "--poll-seconds must be at least 1 second, got 0"
    );
}
