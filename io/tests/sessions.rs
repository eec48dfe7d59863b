//! Session state and the lookup cache against the real Redis (127.0.0.1:6379; `scripts/setup`
//! starts it) and in memory: snapshots survive for a reconnect, every node sees active calls,
//! cached answers expire with their TTL, and the hit rate counts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hermes_core::call::{Context, Message};
use hermes_io::records::{CallOutcome, CallRecord};
use hermes_io::store::sessions::{SNAPSHOT_VERSION, SessionSnapshot, Sessions};

fn redis_url() -> String {
    std::env::var("HERMES_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// Call ids unique to this run, so parallel tests and earlier runs never collide.
fn call_id(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("test-{}-{}-{tag}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn snapshot(call_id: &str) -> SessionSnapshot {
    SessionSnapshot {
        version: SNAPSHOT_VERSION,
        call_id: call_id.into(),
        business: "Maple Street Hair".into(),
        direction: "inbound".into(),
        started_at_ms: 1,
        updated_at_ms: 2,
        turns: 1,
        context: Context {
            messages: vec![
                Message::System("You are Sam.".into()),
                Message::User("I'd like a haircut".into()),
                Message::Assistant("What day would suit you?".into()),
            ],
        },
        record: CallRecord {
            call_id: call_id.into(),
            business: "Maple Street Hair".into(),
            direction: "inbound".into(),
            caller: "+15555550100".into(),
            callee: String::new(),
            started_at_ms: 1,
            ended_at_ms: 0,
            outcome: CallOutcome::Abandoned,
            end_reason: String::new(),
            handle_ms: 4000,
            cost_usd: None,
            turns: Vec::new(),
            tool_calls: Vec::new(),
            events: Vec::new(),
        },
    }
}

fn both(session_ttl: Duration, cache_ttl: Duration) -> [Sessions; 2] {
    [
        Sessions::redis(&redis_url(), session_ttl, cache_ttl).expect("redis url"),
        Sessions::in_memory(session_ttl, cache_ttl),
    ]
}

#[tokio::test]
async fn a_saved_session_is_found_by_another_node_and_listed_as_active_until_it_ends() {
    let ttl = Duration::from_secs(60);
    let node_a = Sessions::redis(&redis_url(), ttl, ttl).expect("redis url");
    let node_b = Sessions::redis(&redis_url(), ttl, ttl).expect("redis url");
    let id = call_id("shared");
    node_a.save(&snapshot(&id)).await;
    assert_eq!(node_a.counters().errors.load(Ordering::Relaxed), 0, "Redis on 127.0.0.1:6379");
    assert_eq!(node_b.load(&id).await, Some(snapshot(&id)), "the other node resumes it");
    assert!(node_b.active().await.contains(&id));
    // The line dropped: not active any more, but still resumable.
    node_a.end(&id, true).await;
    assert!(!node_b.active().await.contains(&id));
    assert!(node_b.load(&id).await.is_some());
    // Ended for good.
    node_a.end(&id, false).await;
    assert_eq!(node_b.load(&id).await, None);
}

#[tokio::test]
async fn a_session_is_gone_after_its_ttl_in_both_stores() {
    for sessions in both(Duration::from_millis(300), Duration::from_secs(60)) {
        let id = call_id("ttl");
        sessions.save(&snapshot(&id)).await;
        assert!(sessions.load(&id).await.is_some(), "{sessions:?}: there within its TTL");
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(sessions.load(&id).await, None, "{sessions:?}: gone after it");
        assert!(!sessions.active().await.contains(&id), "{sessions:?}");
    }
}

#[tokio::test]
async fn cached_answers_are_reused_within_the_ttl_and_recomputed_after_it() {
    for sessions in both(Duration::from_secs(60), Duration::from_millis(400)) {
        let key = call_id("hours");
        let mut computed = 0;
        for _ in 0..3 {
            let answer = sessions
                .cached(&key, || {
                    computed += 1;
                    Ok(format!("open 9 to 5 (#{computed})"))
                })
                .await;
            assert_eq!(answer.as_deref(), Ok("open 9 to 5 (#1)"), "{sessions:?}");
        }
        assert_eq!(computed, 1, "{sessions:?}: computed once within the TTL");
        tokio::time::sleep(Duration::from_millis(550)).await;
        let answer = sessions.cached(&key, || Ok("open 10 to 6".into())).await;
        assert_eq!(answer.as_deref(), Ok("open 10 to 6"), "{sessions:?}: recomputed after the TTL");
        let counters = sessions.counters();
        assert_eq!(counters.cache_hits.load(Ordering::Relaxed), 2);
        assert_eq!(counters.cache_misses.load(Ordering::Relaxed), 2);
        assert_eq!(counters.cache_hit_rate(), Some(0.5));
        assert_eq!(counters.errors.load(Ordering::Relaxed), 0, "{sessions:?}");
    }
}

#[tokio::test]
async fn a_failed_lookup_is_not_cached() {
    let sessions = Sessions::in_memory(Duration::from_secs(60), Duration::from_secs(60));
    let key = call_id("fail");
    assert!(sessions.cached(&key, || Err("down".into())).await.is_err());
    assert_eq!(sessions.cached(&key, || Ok("up".into())).await.as_deref(), Ok("up"));
}

#[tokio::test]
async fn an_unreachable_redis_costs_a_counted_error_never_a_hang() {
    // Nothing listens on port 1.
    let sessions =
        Sessions::redis("redis://127.0.0.1:1/0", Duration::from_secs(60), Duration::from_secs(60))
            .expect("a valid url");
    let id = call_id("down");
    let started = std::time::Instant::now();
    sessions.save(&snapshot(&id)).await;
    assert_eq!(sessions.load(&id).await, None);
    assert_eq!(sessions.cached("k", || Ok("computed".into())).await.as_deref(), Ok("computed"));
    assert!(sessions.counters().errors.load(Ordering::Relaxed) >= 3);
    assert!(started.elapsed() < Duration::from_secs(10), "bounded, not hung");
}

#[tokio::test]
async fn a_snapshot_the_previous_layout_wrote_to_redis_is_resumed_by_this_one() {
    // Written by the layout before snapshots had a version (the fixture is its output).
    let written = include_str!("fixtures/session-snapshot-v1.json");
    let ttl = Duration::from_secs(60);
    let node = Sessions::redis(&redis_url(), ttl, ttl).expect("redis url");
    let id = call_id("v1");
    let json = written.replace("v3:resumed-from-v1", &id);
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("Redis on 127.0.0.1");
    redis::cmd("SET")
        .arg(format!("hermes:session:{id}"))
        .arg(json)
        .arg("PX")
        .arg(60_000)
        .query_async::<()>(&mut conn)
        .await
        .expect("set");
    let snapshot = node.load(&id).await.expect("resumed");
    assert_eq!(snapshot.version, SNAPSHOT_VERSION, "brought to the current layout");
    assert_eq!(snapshot.turns, 1);
    assert_eq!(snapshot.context.messages.len(), 6);
    assert_eq!(snapshot.record.tool_calls[0].name, "lookup_order");
    assert_eq!(node.counters().errors.load(Ordering::Relaxed), 0);
    node.end(&id, false).await;
}
