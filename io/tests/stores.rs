//! Both stores: Postgres against the real server (127.0.0.1:5432, database `test`;
//! `scripts/setup` starts it), each test in a schema of its own, and the embedded SQLite file,
//! each test in a folder of its own. Migrations, bookings that can never double-book a slot
//! however many callers race for it, and the agent's tools answered from each.

use std::sync::atomic::{AtomicU32, Ordering};

use hermes_core::config::Business;
use hermes_io::store::{BookError, BookRequest, PgStore, SqliteStore, Store};
use jiff::civil::date;

fn url() -> String {
    std::env::var("HERMES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty schema for one test.
async fn schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("hermes_t{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("Postgres on 127.0.0.1:5432 (run scripts/setup)");
    tokio::spawn(connection);
    // Schemas earlier runs left behind go first (one test binary runs at a time).
    let mine = format!("hermes_t{}_", std::process::id());
    let old = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hermes\\_t%'", &[])
        .await
        .expect("list schemas");
    for row in old {
        let stale: String = row.get(0);
        if !stale.starts_with(&mine) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {stale} CASCADE")).await;
        }
    }
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"))
        .await
        .expect("create schema");
    name
}

async fn store() -> PgStore {
    let schema = schema().await;
    let store = PgStore::connect(&url(), Some(&schema)).expect("config");
    store.migrate().await.expect("migrates");
    store
}

fn embedded() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("hermes.db")).expect("opens");
    (dir, Store::Embedded(store))
}

fn request(key: &str, staff: Option<&str>) -> BookRequest {
    BookRequest {
        service: "cut".into(),
        start: date(2026, 11, 26).at(15, 0, 0, 0),
        staff: staff.map(String::from),
        customer_name: "Sam Lee".into(),
        customer_phone: "+15555550123".into(),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn migrations_apply_once_even_when_nodes_start_together() {
    let schema = schema().await;
    let stores: Vec<PgStore> =
        (0..3).map(|_| PgStore::connect(&url(), Some(&schema)).expect("config")).collect();
    let runs = futures_util::future::join_all(stores.iter().map(|s| s.migrate())).await;
    let applied: Vec<i32> = runs.into_iter().flat_map(|r| r.expect("migrates")).collect();
    let mut applied = applied;
    applied.sort();
    assert_eq!(applied, [1, 2], "exactly one node applied each version");
    assert!(stores[0].migrate().await.expect("migrates").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_racing_for_overlapping_times_get_exactly_one_booking_each_round() {
    racing_callers_get_one_booking(Store::Postgres(store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_racing_on_the_embedded_store_get_exactly_one_booking_each_round() {
    let (_dir, store) = embedded();
    racing_callers_get_one_booking(store).await;
}

async fn racing_callers_get_one_booking(store: Store) {
    let business = Business::default();
    // Thursday 13:00-19:00; a cut is 45 minutes, so :00, :15 and :30 all overlap each other.
    for hour in 13..18 {
        let attempts = (0..9).map(|i| {
            let (store, business) = (store.clone(), business.clone());
            let mut r = request(&format!("h{hour}-call-{i}"), Some("ana"));
            r.start = date(2026, 11, 26).at(hour, (i % 3) as i8 * 15, 0, 0);
            tokio::spawn(async move { store.book(&business, &r).await })
        });
        let results: Vec<Result<_, BookError>> = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.expect("task"))
            .collect();
        let booked = results.iter().filter(|r| r.is_ok()).count();
        let taken = results.iter().filter(|r| matches!(r, Err(BookError::Taken))).count();
        assert_eq!((booked, taken), (1, 8), "{hour}:00 round: {results:?}");
    }
    let busy = store.busy_on(date(2026, 11, 26)).await.expect("reads");
    assert_eq!(busy.len(), 5);
}

#[tokio::test]
async fn without_a_preference_the_next_free_person_is_booked() {
    let store = Store::Postgres(store().await);
    let business = Business::default();
    let first = store.book(&business, &request("a", None)).await.expect("books");
    let second = store.book(&business, &request("b", None)).await.expect("books");
    assert_eq!((first.staff_name.as_str(), second.staff_name.as_str()), ("Ana", "Ben"));
    assert!(matches!(store.book(&business, &request("c", None)).await, Err(BookError::Taken)));
}

#[tokio::test]
async fn a_retried_tool_call_returns_the_same_booking() {
    let store = Store::Postgres(store().await);
    let business = Business::default();
    let first = store.book(&business, &request("call-1/args", Some("ana"))).await.expect("books");
    let again = store.book(&business, &request("call-1/args", Some("ana"))).await.expect("books");
    assert_eq!(first, again);
    assert_eq!(first.start, "2026-11-26T15:00");
    assert_eq!(first.service_name, "Haircut");
    assert_eq!(store.busy_on(date(2026, 11, 26)).await.expect("reads").len(), 1);
}

#[tokio::test]
async fn times_the_calendar_would_never_offer_are_refused_with_the_reason() {
    let store = Store::Postgres(store().await);
    let business = Business::default();
    let mut monday = request("m", Some("ana"));
    monday.start = date(2026, 11, 30).at(10, 0, 0, 0);
    let off_grid =
        BookRequest { start: date(2026, 11, 26).at(15, 7, 0, 0), ..request("g", Some("ana")) };
    let too_late =
        BookRequest { start: date(2026, 11, 26).at(18, 30, 0, 0), ..request("l", Some("ana")) };
    for r in [monday, off_grid, too_late] {
        match store.book(&business, &r).await {
            Err(BookError::Invalid(why)) => {
                assert!(why.contains("is not a time cut can be booked"), "{why}")
            }
            other => panic!("{r:?}: {other:?}"),
        }
    }
    let wrong_person = BookRequest { service: "color".into(), ..request("w", Some("ben")) };
    assert!(matches!(store.book(&business, &wrong_person).await, Err(BookError::Invalid(_))));
}

mod tools {
    use super::*;
    use hermes_core::agent::tools::{Availability, Booking, OrderStatus, Ticket};
    use hermes_core::call::ToolCall;
    use hermes_core::wall_clock::WallClock;
    use hermes_io::tools::store::StoreTools;
    use hermes_io::tools::{CallParties, ToolRunner};

    fn seed_dir() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/hair-salon/data")
    }

    async fn run(
        tools: &StoreTools,
        name: &str,
        args: serde_json::Value,
        caller: &str,
    ) -> (String, bool) {
        let call = ToolCall { id: "t1".into(), name: name.into(), arguments: args.to_string() };
        // The call happens on Wednesday 25 November 2026 at 10 AM in New York.
        let new_york = jiff::tz::TimeZone::get("America/New_York").expect("tzdb");
        let at = new_york.to_timestamp(date(2026, 11, 25).at(10, 0, 0, 0)).expect("exists");
        let parties = CallParties {
            call_id: "call-9".into(),
            caller: caller.into(),
            callee: String::new(),
            clock: WallClock::frozen(at),
        };
        let out = tools.run(call, parties).await;
        (out.output, out.is_error)
    }

    #[tokio::test]
    async fn seeded_calendars_orders_and_tickets_answer_the_agents_tools() {
        seeded_data_answers_the_tools(Store::Postgres(store().await)).await;
    }

    #[tokio::test]
    async fn the_embedded_store_answers_the_agents_tools_the_same_way() {
        let (_dir, store) = embedded();
        seeded_data_answers_the_tools(store).await;
    }

    async fn seeded_data_answers_the_tools(store: Store) {
        let business = Business::default();
        store.seed(&business, &seed_dir()).await.expect("seeds");
        store.seed(&business, &seed_dir()).await.expect("seeding twice changes nothing");
        assert_eq!(store.busy_on(date(2026, 12, 1)).await.expect("reads").len(), 3, "Ana 2, Ben 1");
        let tools = StoreTools::new(store.clone(), business);

        // Ana has a colour 10:00-11:30 on Tuesday 1 December.
        let args = serde_json::json!({"service": "cut", "date": "2026-12-01", "time": "10:00", "staff": "ana"});
        let (out, err) = run(&tools, "check_availability", args, "").await;
        assert!(!err, "{out}");
        let slots: Availability = serde_json::from_str(&out).expect("Availability");
        assert_eq!(slots.slots[0].start, "2026-12-01T09:15", "{slots:?}");

        let args = serde_json::json!({"service": "cut", "start": "2026-12-01T12:00", "staff": "ana", "customer_name": "Sam"});
        let (out, err) = run(&tools, "book_appointment", args.clone(), "+15555550100").await;
        assert!(!err, "{out}");
        let first: Booking = serde_json::from_str(&out).expect("Booking");
        let (again, _) = run(&tools, "book_appointment", args, "+15555550100").await;
        assert_eq!(
            serde_json::from_str::<Booking>(&again).expect("Booking"),
            first,
            "a retried call books once"
        );

        let (out, err) =
            run(&tools, "lookup_order", serde_json::json!({"order_number": "1001"}), "").await;
        assert!(!err, "{out}");
        let order: OrderStatus = serde_json::from_str(&out).expect("OrderStatus");
        assert_eq!(
            (order.order_number.as_str(), order.status.as_str(), order.eta.as_str()),
            ("MSH-1001", "shipped", "2026-11-27")
        );
        let (out, _) = run(
            &tools,
            "lookup_order",
            serde_json::json!({"by_caller_phone": true}),
            "+15555550127",
        )
        .await;
        assert!(out.contains("MSH-1002"), "{out}");
        let (out, err) =
            run(&tools, "lookup_order", serde_json::json!({"order_number": "9999"}), "").await;
        assert!(err && out == "no order found", "{out}");

        let (out, err) = run(
            &tools,
            "open_ticket",
            serde_json::json!({"summary": "leaky bottle"}),
            "+15555550100",
        )
        .await;
        assert!(!err);
        assert!(serde_json::from_str::<Ticket>(&out).expect("Ticket").ticket_id.starts_with("T-"));
        let (out, _) = run(
            &tools,
            "schedule_callback",
            serde_json::json!({"reason": "price question", "when": "tomorrow"}),
            "",
        )
        .await;
        assert!(serde_json::from_str::<Ticket>(&out).expect("Ticket").ticket_id.starts_with("C-"));

        let (out, err) = run(
            &tools,
            "check_availability",
            serde_json::json!({"service": "perm", "date": "2026-12-01"}),
            "",
        )
        .await;
        assert!(err && out.contains("perm"), "{out}");

        // Priya (+…124) moves her Tuesday 14:00 cut to 14:30 — overlapping her own old slot,
        // which must not count against her — and then cancels it.
        let priya = "+15555550124";
        let (out, err) = run(
            &tools,
            "reschedule_appointment",
            serde_json::json!({"new_start": "2026-12-01T14:30"}),
            priya,
        )
        .await;
        assert!(!err, "{out}");
        let moved: Booking = serde_json::from_str(&out).expect("Booking");
        assert_eq!((moved.start.as_str(), moved.staff_name.as_str()), ("2026-12-01T14:30", "Ana"));
        let starts: Vec<String> = store
            .busy_on(date(2026, 12, 1))
            .await
            .expect("reads")
            .iter()
            .filter(|b| b.staff == "ana")
            .map(|b| b.start.to_string())
            .collect();
        assert!(starts.contains(&"2026-12-01T14:30:00".to_string()), "{starts:?}");
        assert!(!starts.contains(&"2026-12-01T14:00:00".to_string()), "old slot freed: {starts:?}");

        let (out, err) = run(&tools, "cancel_appointment", serde_json::json!({}), priya).await;
        assert!(!err, "{out}");
        assert_eq!(
            serde_json::from_str::<Booking>(&out).expect("Booking").start,
            "2026-12-01T14:30"
        );
        let (out, err) = run(&tools, "cancel_appointment", serde_json::json!({}), priya).await;
        assert!(err && out.contains("can't find an upcoming appointment"), "{out}");
        // By name, when the caller rings from another number.
        let (out, err) = run(
            &tools,
            "cancel_appointment",
            serde_json::json!({"customer_name": "tom becker"}),
            "+15555550999",
        )
        .await;
        assert!(!err, "{out}");
        assert_eq!(
            serde_json::from_str::<Booking>(&out).expect("Booking").start,
            "2026-12-02T09:30"
        );
        // Moving onto someone else's time is refused and leaves the booking where it was.
        let (out, err) = run(
            &tools,
            "reschedule_appointment",
            serde_json::json!({"new_start": "2026-12-01T09:00", "staff": "ben"}),
            "+15555550127",
        )
        .await;
        assert!(err, "{out}");
        assert_eq!(store.busy_on(date(2026, 12, 3)).await.expect("reads").len(), 1);
    }
}
