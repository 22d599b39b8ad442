//! Compares redb and fjall on the processor's store workload, to choose the local store.
//!
//! The workload of a task's store: every commit writes a batch of changed keys (small values: a
//! count, a profile) plus the checkpoint, atomically and durably; between commits, reads miss the
//! in-memory overlay only for keys not touched since the last commit; a restore bulk-loads the
//! changelog in large batches that need durability only at the end.
//!
//! Run: `cargo run --release -p odradek-processor --example store_bench [keys_per_commit] [commits]`

use std::time::Instant;

use fjall::{Database as FjallDb, KeyspaceCreateOptions, PersistMode};
use rand::Rng;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

const DATA: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("data");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");

struct Workload {
    keys_per_commit: usize,
    commits: usize,
    key_space: usize,
    reads: usize,
    restore_records: usize,
    restore_chunk: usize,
    value_len: usize,
}

fn key(i: usize) -> Vec<u8> {
    // The shape of pageview-count's keys: prefix, 8-byte window start, page.
    let mut k = vec![b'w'];
    k.extend_from_slice(&((i / 1000) as u64).to_be_bytes());
    k.extend_from_slice(format!("/page/{}", i % 1000).as_bytes());
    k
}

fn report(engine: &str, phase: &str, ops: usize, bytes: usize, secs: f64) {
    #[allow(clippy::cast_precision_loss)]
    let (ops_s, mb_s) = (ops as f64 / secs, bytes as f64 / secs / 1e6);
    println!(
        "{engine:6} {phase:22} {ops:>9} ops {secs:>8.3} s {ops_s:>12.0} ops/s {mb_s:>9.1} MB/s"
    );
}

fn bench_redb(w: &Workload, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = Database::create(dir.join("bench.redb"))?;
    let mut rng = rand::rng();
    let value = vec![7u8; w.value_len];
    let start = Instant::now();
    for c in 0..w.commits {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut data = txn.open_table(DATA)?;
            for _ in 0..w.keys_per_commit {
                data.insert(
                    key(rng.random_range(0..w.key_space)).as_slice(),
                    value.as_slice(),
                )?;
            }
            txn.open_table(META)?
                .insert("absorbed", i64::try_from(c)?)?;
        }
        txn.commit()?;
    }
    let n = w.commits * w.keys_per_commit;
    report(
        "redb",
        "commit (fsync each)",
        n,
        n * w.value_len,
        start.elapsed().as_secs_f64(),
    );

    let start = Instant::now();
    let txn = db.begin_read()?;
    let data = txn.open_table(DATA)?;
    let mut found = 0;
    for _ in 0..w.reads {
        found += usize::from(
            data.get(key(rng.random_range(0..w.key_space)).as_slice())?
                .is_some(),
        );
    }
    report(
        "redb",
        "point read",
        w.reads,
        0,
        start.elapsed().as_secs_f64(),
    );
    drop(data);
    drop(txn);
    assert!(found > 0);

    let start = Instant::now();
    let restore = Database::create(dir.join("restore.redb"))?;
    let mut written = 0;
    while written < w.restore_records {
        let mut txn = restore.begin_write()?;
        let last = written + w.restore_chunk >= w.restore_records;
        txn.set_durability(if last {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        {
            let mut data = txn.open_table(DATA)?;
            for i in written..(written + w.restore_chunk).min(w.restore_records) {
                data.insert(key(i).as_slice(), value.as_slice())?;
            }
        }
        txn.commit()?;
        written += w.restore_chunk;
    }
    let bytes = w.restore_records * (w.value_len + 20);
    report(
        "redb",
        "restore bulk load",
        w.restore_records,
        bytes,
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn bench_fjall(w: &Workload, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = FjallDb::builder(dir.join("fjall")).open()?;
    let data = db.keyspace("data", KeyspaceCreateOptions::default)?;
    let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
    let mut rng = rand::rng();
    let value = vec![7u8; w.value_len];
    let start = Instant::now();
    for c in 0..w.commits {
        let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
        for _ in 0..w.keys_per_commit {
            batch.insert(&data, key(rng.random_range(0..w.key_space)), value.clone());
        }
        batch.insert(&meta, "absorbed", c.to_be_bytes().to_vec());
        batch.commit()?;
    }
    let n = w.commits * w.keys_per_commit;
    report(
        "fjall",
        "commit (fsync each)",
        n,
        n * w.value_len,
        start.elapsed().as_secs_f64(),
    );

    let start = Instant::now();
    let mut found = 0;
    for _ in 0..w.reads {
        found += usize::from(data.get(key(rng.random_range(0..w.key_space)))?.is_some());
    }
    report(
        "fjall",
        "point read",
        w.reads,
        0,
        start.elapsed().as_secs_f64(),
    );
    assert!(found > 0);

    let start = Instant::now();
    let rdb = FjallDb::builder(dir.join("fjall-restore")).open()?;
    let rdata = rdb.keyspace("data", KeyspaceCreateOptions::default)?;
    let mut written = 0;
    while written < w.restore_records {
        let mut batch = rdb.batch();
        for i in written..(written + w.restore_chunk).min(w.restore_records) {
            batch.insert(&rdata, key(i), value.clone());
        }
        batch.commit()?;
        written += w.restore_chunk;
    }
    rdb.persist(PersistMode::SyncAll)?;
    let bytes = w.restore_records * (w.value_len + 20);
    report(
        "fjall",
        "restore bulk load",
        w.restore_records,
        bytes,
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let keys_per_commit = args.next().map_or(Ok(2_000), |a| a.parse())?;
    let commits = args.next().map_or(Ok(200), |a| a.parse())?;
    let w = Workload {
        keys_per_commit,
        commits,
        key_space: 200_000,
        reads: 200_000,
        restore_records: 1_000_000,
        restore_chunk: 50_000,
        value_len: 64,
    };
    println!(
        "workload: {} commits of {} keys ({} B values), {} point reads, restore of {} records",
        w.commits, w.keys_per_commit, w.value_len, w.reads, w.restore_records
    );
    let dir = tempfile::tempdir()?;
    bench_redb(&w, dir.path())?;
    bench_fjall(&w, dir.path())?;
    Ok(())
}
