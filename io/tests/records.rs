//! Call records through the batching writer and the on-disk outbox, against the real Postgres
//! (127.0.0.1:5432, database `test`) reached through a loopback proxy the test can cut: the
//! database "goes away" in the middle of a run and comes back, and every record ends up in it
//! exactly once, in the order it was submitted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermes_io::records::{
    CallOutcome, CallRecord, EventRecord, Outbox, RecordSink, RecordWriter, SinkFuture,
    ToolCallRecord, ToolStatus, TurnRecord, WriterSettings, decode_records,
};
use hermes_io::store::PgStore;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

fn url() -> String {
    std::env::var("HERMES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn record(n: usize) -> CallRecord {
    CallRecord {
        call_id: format!("call-{n:03}"),
        business: "Maple Street Hair".into(),
        direction: "inbound".into(),
        caller: "+15555550100".into(),
        callee: "+15555550199".into(),
        started_at_ms: 1_764_000_000_000 + n as i64 * 1000,
        ended_at_ms: 1_764_000_030_000 + n as i64 * 1000,
        outcome: CallOutcome::Completed,
        end_reason: "goodbye".into(),
        handle_ms: 30_000,
        cost_usd: Some(0.02),
        turns: vec![
            TurnRecord {
                speaker: "caller".into(),
                text: "Do you have anything tomorrow?".into(),
                heard: "Do you have anything tomorrow?".into(),
                at_ms: 4000,
                voice_to_voice_ms: None,
                stages: Vec::new(),
            },
            TurnRecord {
                speaker: "agent".into(),
                text: "I have 3 pm. Shall I book it?".into(),
                heard: "I have 3 pm.".into(),
                at_ms: 5000,
                voice_to_voice_ms: Some(640),
                stages: vec![("stt_final".into(), 150), ("llm_first_token".into(), 380)],
            },
        ],
        tool_calls: vec![ToolCallRecord {
            name: "check_availability".into(),
            arguments: r#"{"service":"cut"}"#.into(),
            result: r#"{"slots":[]}"#.into(),
            status: ToolStatus::Ok,
            latency_ms: 12,
            at_ms: 4500,
        }],
        events: vec![EventRecord { at_ms: 5200, kind: "barge_in".into() }],
    }
}

/// A fresh schema, migrated, and a direct client to read it back.
async fn schema() -> (String, tokio_postgres::Client) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mine = format!("hermes_r{}_", std::process::id());
    let name = format!("{mine}{}", N.fetch_add(1, Ordering::Relaxed));
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("Postgres on 127.0.0.1:5432 (run scripts/setup)");
    tokio::spawn(connection);
    let old = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hermes\\_r%'", &[])
        .await
        .expect("list schemas");
    for row in old {
        let stale: String = row.get(0);
        if stale.starts_with(&mine) {
            continue;
        }
        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {stale} CASCADE")).await;
    }
    client.batch_execute(&format!("CREATE SCHEMA {name}")).await.expect("create schema");
    PgStore::connect(&url(), Some(&name)).expect("config").migrate().await.expect("migrates");
    client.batch_execute(&format!("SET search_path = {name}")).await.expect("search path");
    (name, client)
}

/// A TCP proxy to Postgres that can be cut (listener closed, every connection reset) and
/// restored on the same port: the database going away and coming back, as the client sees it.
struct Proxy {
    port: u16,
    accepting: Option<AbortHandle>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut proxy = Proxy { port, accepting: None, connections: Arc::default() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let connections = self.connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut db) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        // Without it every round trip waits out a delayed ACK.
                        let _ = (client.set_nodelay(true), db.set_nodelay(true));
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut db).await;
                    }
                });
                connections.lock().expect("links").push(link.abort_handle());
            }
        });
        self.accepting = Some(task.abort_handle());
    }

    fn down(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
        for link in self.connections.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("rebind");
        self.serve(listener);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }
}

fn quick() -> WriterSettings {
    WriterSettings {
        batch_max: 8,
        linger: Duration::from_millis(20),
        write_timeout: Duration::from_secs(2),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        queue: 1024,
    }
}

async fn call_ids_in_write_order(db: &tokio_postgres::Client) -> Vec<String> {
    db.query("SELECT call_id FROM calls ORDER BY seq", &[])
        .await
        .expect("reads")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_while_the_database_is_away_arrive_once_each_in_order() {
    let (schema, db) = schema().await;
    let mut proxy = Proxy::start().await;
    let store = PgStore::connect(&proxy.url(), Some(&schema)).expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(dir.path().join("outbox.jsonl"), 1 << 20).expect("outbox");
    let writer = RecordWriter::start(Arc::new(store), outbox, quick());
    let counters = writer.counters();

    for n in 0..10 {
        writer.submit(record(n));
    }
    writer.flush().await;
    assert_eq!(counters.written.load(Ordering::Relaxed), 10);

    // The database goes away in the middle of the run.
    proxy.down();
    for n in 10..30 {
        writer.submit(record(n));
        if n % 7 == 0 {
            writer.flush().await;
        }
    }
    writer.flush().await;
    assert_eq!(counters.outbox_depth.load(Ordering::Relaxed), 20, "all waiting on disk");
    assert_eq!(counters.outboxed.load(Ordering::Relaxed), 20);
    assert!(counters.store_errors.load(Ordering::Relaxed) >= 1);
    assert_eq!(call_ids_in_write_order(&db).await.len(), 10);

    // It comes back; new records queue behind the outbox, not ahead of it.
    proxy.up().await;
    for n in 30..40 {
        writer.submit(record(n));
    }
    writer.flush().await;
    for _ in 0..100 {
        if counters.outbox_depth.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counters.outbox_depth.load(Ordering::Relaxed), 0, "the outbox drained");
    // The 20 from the outage, and the 10 after it too when they came before the retry was due.
    let replayed = counters.replayed.load(Ordering::Relaxed);
    assert_eq!(replayed, counters.outboxed.load(Ordering::Relaxed), "what went in came out");
    assert!(replayed == 20 || replayed == 30, "{replayed}");
    assert_eq!(counters.written.load(Ordering::Relaxed), 40, "each written once");
    assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);

    let expected: Vec<String> = (0..40).map(|n| record(n).call_id).collect();
    assert_eq!(call_ids_in_write_order(&db).await, expected, "every record once, in order");
    let turns: i64 =
        db.query_one("SELECT count(*) FROM call_turns", &[]).await.expect("counts").get(0);
    let stages: i64 = db
        .query_one("SELECT count(*) FROM call_stage_latencies", &[])
        .await
        .expect("counts")
        .get(0);
    let tools: i64 =
        db.query_one("SELECT count(*) FROM call_tool_calls", &[]).await.expect("counts").get(0);
    assert_eq!((turns, stages, tools), (80, 80, 40));
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_left_by_a_crash_is_replayed_at_start_without_duplicating_what_landed() {
    let (schema, db) = schema().await;
    let store = PgStore::connect(&url(), Some(&schema)).expect("config");
    // call-000 reached the database, but the crash came before it left the outbox.
    store.write_calls(&[record(0)]).await.expect("writes");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("outbox.jsonl");
    // The single outbox file an older build kept at the configured path, one record a line…
    let mut text = Vec::new();
    for n in 0..3 {
        serde_json::to_writer(&mut text, &record(n)).expect("json");
        text.push(b'\n');
    }
    // …and a torn last line from an append the crash interrupted.
    text.extend_from_slice(br#"{"call_id":"call-0"#);
    std::fs::write(&path, text).expect("writes");

    let outbox = Outbox::open(&path, 1 << 20).expect("reopens");
    assert_eq!((outbox.len(), outbox.corrupt_lines()), (3, 1), "the torn line is cut off");
    let writer = RecordWriter::start(Arc::new(store.clone()), outbox, quick());
    writer.submit(record(3));
    writer.flush().await;
    let counters = writer.counters();
    assert_eq!(counters.outbox_depth.load(Ordering::Relaxed), 0);
    assert_eq!(
        call_ids_in_write_order(&db).await,
        ["call-000", "call-001", "call-002", "call-003"]
    );
    let shown = store.show_call("call-001").await.expect("reads").expect("recorded");
    assert_eq!(shown, record(1), "read back exactly as written");
    let listed = store.list_calls(2).await.expect("lists");
    assert_eq!(listed[0].call_id, "call-003", "newest first");
    assert_eq!(listed[0].turns, 2);
    writer.shutdown().await;
}

#[test]
fn a_full_outbox_refuses_a_batch_whole_and_keeps_what_it_has() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = serde_json::to_string(&record(0)).expect("json").len() as u64 + 1;
    let mut outbox = Outbox::open(dir.path().join("o.jsonl"), one * 2).expect("outbox");
    outbox.append(&[record(0)]).expect("fits");
    assert!(outbox.append(&[record(1), record(2)]).is_err(), "two more do not fit");
    outbox.append(&[record(1)]).expect("one more fits");
    assert_eq!(outbox.len(), 2);
    outbox.pop(1).expect("pops");
    let left = outbox.peek(10).expect("peeks");
    assert_eq!(left, [record(1)]);
    let reopened = Outbox::open(dir.path().join("o.jsonl"), one * 2).expect("reopens");
    assert_eq!(reopened.len(), 1, "what is on disk is what was kept");
}

/// The newest outbox segment, where the next append goes.
fn newest_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .expect("lists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[test]
fn a_torn_tail_left_by_a_failed_append_is_cut_before_the_next_one_and_nothing_whole_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("outbox.jsonl");
    let mut outbox = Outbox::open(&path, 1 << 20).expect("outbox");
    outbox.append(&[record(0)]).expect("appends");
    // The disk filled mid-append: half a line is left, and the outbox stays open.
    let torn = &serde_json::to_vec(&record(1)).expect("json")[..40];
    std::fs::OpenOptions::new()
        .append(true)
        .open(newest_segment(dir.path()))
        .and_then(|mut f| std::io::Write::write_all(&mut f, torn))
        .expect("tears");
    // Space again: the next append must not join the torn half on one unreadable line.
    outbox.append(&[record(2)]).expect("appends");
    assert_eq!(outbox.peek(10).expect("peeks"), [record(0), record(2)]);
    assert_eq!(outbox.corrupt_lines(), 1, "the torn half is counted");
    drop(outbox);
    let mut reopened = Outbox::open(&path, 1 << 20).expect("reopens");
    assert_eq!(reopened.len(), 2, "every whole record is read back after a reopen");
    assert_eq!(reopened.peek(10).expect("peeks"), [record(0), record(2)]);
}

#[test]
fn replaying_a_full_outbox_writes_bytes_in_proportion_to_it_not_to_its_square() {
    const N: usize = 2000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outbox = Outbox::open(dir.path().join("outbox.jsonl"), 64 << 20).expect("outbox");
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        outbox.append(&chunk.iter().map(|&n| record(n)).collect::<Vec<_>>()).expect("appends");
    }
    let appended = outbox.io().bytes_written;
    let mut replayed = Vec::new();
    while !outbox.is_empty() {
        // The writer's replay: a batch of 64 read, delivered, then popped.
        let batch = outbox.peek(64).expect("peeks");
        replayed.extend(batch.iter().map(|r| r.call_id.clone()));
        outbox.pop(batch.len()).expect("pops");
    }
    let replay_writes = outbox.io().bytes_written - appended;
    assert_eq!(replayed, (0..N).map(|n| record(n).call_id).collect::<Vec<_>>());
    // Rewriting the remainder after each batch would write ~N²/128 records' worth (≈ 15 times
    // the outbox here); moving a cursor writes a few bytes a batch.
    eprintln!("appended {appended} bytes; replay wrote {replay_writes} bytes for {N} records");
    assert!(replay_writes * 100 < appended, "replay wrote {replay_writes} of {appended} bytes");
    assert_eq!(outbox.bytes(), 0);
    assert_eq!(
        std::fs::read_dir(dir.path())
            .expect("lists")
            .filter(|e| {
                e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            })
            .count(),
        0,
        "delivered segments are deleted"
    );
}

#[test]
fn the_outbox_reader_is_a_pure_function_over_bytes_that_survives_any_damage() {
    let mut bytes = serde_json::to_vec(&record(0)).expect("json");
    bytes.extend_from_slice(b"\nnot a record\n\xff\xfe\n");
    bytes.extend_from_slice(&serde_json::to_vec(&record(1)).expect("json"));
    bytes.extend_from_slice(b"\n{\"call_id\":\"half");
    let decoded = decode_records(&bytes);
    let ids: Vec<&str> = decoded.records.iter().map(|(r, _)| r.call_id.as_str()).collect();
    assert_eq!(ids, ["call-000", "call-001"]);
    assert_eq!((decoded.bad_lines, decoded.torn_tail), (2, 16));
    // Every prefix of it too: no panic, never more records than whole lines.
    for end in 0..bytes.len() {
        let d = decode_records(&bytes[..end]);
        assert!(d.records.len() <= 2 && d.records.iter().all(|(_, at)| *at <= end));
    }
}

/// A store that is down: counts the writes tried.
#[derive(Debug, Default)]
struct DownStore {
    tries: std::sync::atomic::AtomicU64,
}

impl RecordSink for DownStore {
    fn write<'a>(&'a self, _records: &'a [CallRecord]) -> SinkFuture<'a> {
        self.tries.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Err("connection refused".to_string()) })
    }
}

#[tokio::test(start_paused = true)]
async fn while_the_store_is_down_it_is_tried_only_when_the_backoff_is_due_not_for_every_batch() {
    let store = Arc::new(DownStore::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(dir.path().join("outbox.jsonl"), 64 << 20).expect("outbox");
    let settings = WriterSettings {
        batch_max: 8,
        linger: Duration::from_millis(10),
        write_timeout: Duration::from_secs(1),
        retry_min: Duration::from_secs(1),
        retry_max: Duration::from_secs(8),
        queue: 1024,
    };
    let writer = RecordWriter::start(store.clone(), outbox, settings);
    // A call ends every 100 ms for 30 s (virtual time): 300 batches.
    for n in 0..300 {
        writer.submit(record(n));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writer.flush().await;
    let counters = writer.counters();
    assert_eq!(counters.outboxed.load(Ordering::Relaxed), 300, "every record kept");
    // Tries at 0, 1, 3, 7, 15 and 23 s (doubling from 1 s, at most 8 s apart): six, not 300.
    let tries = store.tries.load(Ordering::Relaxed);
    assert!((5..=7).contains(&tries), "the store was tried {tries} times in 30 s");
    assert!(!counters.database_ready());
    writer.shutdown().await;
}
