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
    assert_eq!(applied, [1, 2, 3], "exactly one node applied each version");
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
    use hermes_core::agent::tools::{Availability, Booking, OrderStatus, Ticket, Unverified};
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

    fn unverified(out: &str) -> Unverified {
        serde_json::from_str(out).unwrap_or_else(|_| panic!("a verification answer: {out}"))
    }

    #[tokio::test]
    async fn naming_another_customer_changes_nothing_in_postgres_but_their_reference_does() {
        naming_another_customer_changes_nothing(Store::Postgres(store().await)).await;
    }

    #[tokio::test]
    async fn naming_another_customer_changes_nothing_in_the_embedded_store_either() {
        let (_dir, store) = embedded();
        naming_another_customer_changes_nothing(store).await;
    }

    /// Sam books from his phone; someone on another phone says his name.
    async fn naming_another_customer_changes_nothing(store: Store) {
        let business = Business::default();
        let tools = StoreTools::new(store.clone(), business);
        let (sam, stranger) = ("+15555550100", "+15555550666");
        let args = serde_json::json!({"service": "cut", "start": "2026-12-01T12:00", "staff": "ana", "customer_name": "Sam Lee"});
        let (out, err) = run(&tools, "book_appointment", args, sam).await;
        assert!(!err, "{out}");
        let booked: Booking = serde_json::from_str(&out).expect("Booking");
        let on_tuesday = || async { store.busy_on(date(2026, 12, 1)).await.expect("reads").len() };
        assert_eq!(on_tuesday().await, 1);

        for (tool, args) in [
            ("cancel_appointment", serde_json::json!({"customer_name": "Sam Lee"})),
            ("cancel_appointment", serde_json::json!({"customer_name": "Nobody Here"})),
            (
                "reschedule_appointment",
                serde_json::json!({"new_start": "2026-12-01T15:00", "customer_name": "sam lee"}),
            ),
        ] {
            let (out, err) = run(&tools, tool, args, stranger).await;
            assert!(err, "{tool}: {out}");
            // The same answer whether or not the name has a booking: it reveals nothing.
            assert_eq!(unverified(&out), Unverified::needed(), "{tool}");
            assert!(!out.contains("Sam") && !out.contains("12:00"), "{out}");
        }
        let (out, err) = run(
            &tools,
            "cancel_appointment",
            serde_json::json!({"booking_reference": "B-00000000"}),
            stranger,
        )
        .await;
        assert!(err && unverified(&out) == Unverified::no_match(), "{out}");
        let (out, err) = run(
            &tools,
            "cancel_appointment",
            serde_json::json!({"phone_on_file": "555 555 0101"}),
            stranger,
        )
        .await;
        assert!(err && unverified(&out) == Unverified::no_match(), "{out}");
        assert_eq!(on_tuesday().await, 1, "Sam's booking is untouched");

        // His reference, read out with spaces and in lower case, moves it; then cancels it.
        let spoken = booked.booking_id.to_lowercase().replace('-', " ");
        let (out, err) = run(
            &tools,
            "reschedule_appointment",
            serde_json::json!({"new_start": "2026-12-01T15:00", "booking_reference": spoken}),
            stranger,
        )
        .await;
        assert!(!err, "{out}");
        let moved: Booking = serde_json::from_str(&out).expect("Booking");
        assert_eq!(moved.start, "2026-12-01T15:00");
        let (out, err) = run(
            &tools,
            "cancel_appointment",
            serde_json::json!({"booking_reference": moved.booking_id}),
            stranger,
        )
        .await;
        assert!(!err, "{out}");
        assert_eq!(on_tuesday().await, 0);
    }

    #[tokio::test]
    async fn a_withheld_number_never_matches_another_withheld_callers_booking() {
        let (_dir, store) = embedded();
        let tools = StoreTools::new(store.clone(), Business::default());
        // Twilio's placeholder for a withheld number: every such call carries it.
        let withheld = "+266696687";
        let args = serde_json::json!({"service": "cut", "start": "2026-12-01T12:00", "staff": "ana", "customer_name": "Ann"});
        let (out, err) = run(&tools, "book_appointment", args, withheld).await;
        assert!(!err, "{out}");
        let (out, err) = run(&tools, "cancel_appointment", serde_json::json!({}), withheld).await;
        assert!(err && unverified(&out) == Unverified::needed(), "{out}");
        assert_eq!(store.busy_on(date(2026, 12, 1)).await.expect("reads").len(), 1);
    }

    /// The rule-based agent against the embedded store's tools, as a call runs them.
    #[tokio::test]
    async fn the_rule_based_agent_cancels_for_another_phone_only_with_the_number_on_file() {
        use hermes_core::agent::Brain;
        use hermes_core::call::{Context, Message};
        let (_dir, store) = embedded();
        let business = Business::default();
        store.seed(&business, &seed_dir()).await.expect("seeds");
        let tools = StoreTools::new(store.clone(), business.clone());
        let enabled = hermes_core::config::BUILTIN_TOOLS.iter().map(|t| t.to_string()).collect();
        let brain = Brain::new(business, enabled);
        let mut context = Context::default();
        let now = date(2026, 11, 25).at(10, 0, 0, 0);
        // Priya's Tuesday cut is under +1 555 555 0124; this call comes from elsewhere.
        let mut say = async |line: &str| -> (String, Vec<serde_json::Value>) {
            context.push(Message::User(line.to_string()));
            let (mut spoken, mut called) = (Vec::new(), Vec::new());
            for _ in 0..4 {
                let reply = brain.respond(&context, now);
                if !reply.text.is_empty() {
                    spoken.push(reply.text.clone());
                    context.push(Message::Assistant(reply.text));
                }
                if reply.tool_calls.is_empty() {
                    break;
                }
                context.push(Message::ToolCalls(reply.tool_calls.clone()));
                for call in reply.tool_calls {
                    let args: serde_json::Value =
                        serde_json::from_str(&call.arguments).expect("json");
                    called.push(serde_json::json!({"name": call.name, "args": args}));
                    let (output, is_error) = run(&tools, &call.name, args, "+15555550999").await;
                    context.push(Message::ToolResult { id: call.id, output, is_error });
                }
            }
            (spoken.join(" "), called)
        };
        let priyas = || async {
            store
                .busy_on(date(2026, 12, 1))
                .await
                .expect("reads")
                .iter()
                .any(|b| b.start == date(2026, 12, 1).at(14, 0, 0, 0))
        };
        say("Hi, this is Priya Shah, I need to cancel my appointment").await;
        let (said, called) = say("Yes please").await;
        assert_eq!(called.len(), 1, "{called:?}");
        assert!(said.contains("booking reference, or the phone number you booked with"), "{said}");
        assert!(priyas().await, "a name alone cancels nothing");
        let (said, called) = say("It's 555 555 0124").await;
        assert_eq!(called[0]["args"]["phone_on_file"], "5555550124", "{called:?}");
        assert!(said.starts_with("Done: your haircut on Tuesday, December 1 at 2 PM"), "{said}");
        assert!(!priyas().await);
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
        assert!(err, "{out}");
        assert_eq!(unverified(&out).verification, "needed", "nothing left under her number");
        // From another number: Tom's name alone finds nothing; the number he booked with does.
        let elsewhere = "+15555550999";
        let (out, err) = run(
            &tools,
            "cancel_appointment",
            serde_json::json!({"customer_name": "tom becker"}),
            elsewhere,
        )
        .await;
        assert!(err && unverified(&out).verification == "needed", "{out}");
        assert_eq!(store.busy_on(date(2026, 12, 2)).await.expect("reads").len(), 1, "still booked");
        let (out, err) = run(
            &tools,
            "cancel_appointment",
            serde_json::json!({"customer_name": "tom becker", "phone_on_file": "555 555 0125"}),
            elsewhere,
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

mod tls {
    //! Against the TLS-only cluster `scripts/setup` starts on 127.0.0.1:5433 (its certificate
    //! signed by the test CA in /var/lib/postgresql/hermes-tls; plain connections refused).
    use hermes_io::store::{PgStore, StoreError};

    fn tls_url(query: &str) -> String {
        let base = std::env::var("HERMES_TEST_POSTGRES_TLS_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433/postgres".into());
        format!("{base}?{query}")
    }

    fn ca(name: &str) -> String {
        let dir = std::env::var("HERMES_TEST_POSTGRES_TLS_DIR")
            .unwrap_or_else(|_| "/var/lib/postgresql/hermes-tls".into());
        format!("{dir}/{name}")
    }

    async fn ssl_in_use(store: &PgStore) -> Result<bool, StoreError> {
        store.encrypted().await
    }

    #[tokio::test]
    async fn sslmode_require_connects_over_tls_to_a_server_that_refuses_plain_connections() {
        let store = PgStore::connect(&tls_url("sslmode=require"), None).expect("config");
        assert!(ssl_in_use(&store).await.expect("connects (run scripts/setup)"), "over TLS");
        let full = format!("sslmode=verify-full&sslrootcert={}", ca("ca.pem"));
        let store = PgStore::connect(&tls_url(&full), None).expect("config");
        assert!(ssl_in_use(&store).await.expect("its CA signed it"));
        // Without TLS the server says no (this is what the default used to be).
        let plain = PgStore::connect(&tls_url("sslmode=disable"), None).expect("config");
        let refused = ssl_in_use(&plain).await.expect_err("plain refused");
        assert!(refused.to_string().contains("no encryption"), "{refused}");
    }

    #[tokio::test]
    async fn verify_full_against_a_ca_that_did_not_sign_the_server_fails_and_says_why() {
        let other = format!("sslmode=verify-full&sslrootcert={}", ca("other-ca.pem"));
        let store = PgStore::connect(&tls_url(&other), None).expect("config");
        let err = ssl_in_use(&store).await.expect_err("an untrusted certificate");
        let said = err.to_string();
        assert!(said.contains("TLS") && said.contains("UnknownIssuer"), "{said}");
        // verify-full also checks the name: the certificate is for localhost and 127.0.0.1,
        // and this reaches 127.0.0.1 by another name.
        let full = format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}", ca("ca.pem"));
        let by_other_name = tls_url(&full).replace("@127.0.0.1:", "@db.invalid:");
        let store = PgStore::connect(&by_other_name, None).expect("config");
        let err = ssl_in_use(&store).await.expect_err("wrong name");
        assert!(err.to_string().contains("not valid for name \"db.invalid\""), "{err}");
        // verify-ca checks the chain only.
        let chain_only = by_other_name.replace("verify-full", "verify-ca");
        let store = PgStore::connect(&chain_only, None).expect("config");
        assert!(ssl_in_use(&store).await.expect("the chain holds"));
    }
}

mod outage {
    use super::*;
    use hermes_io::store::Backoff;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_started_while_postgres_is_away_migrates_once_it_answers() {
        let schema = schema().await;
        // A port nothing listens on: bound, then let go.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let url = format!("postgres://postgres@127.0.0.1:{port}/test");
        let started = Store::start(Some(&url), std::path::Path::new("unused")).await;
        assert!(matches!(started, Ok(Store::Postgres(_))), "starts without the database");
        let store = Store::Postgres(PgStore::connect(&url, Some(&schema)).expect("config"));
        let backoff = Backoff { first: Duration::from_millis(50), max: Duration::from_millis(200) };
        let preparing = {
            let store = store.clone();
            tokio::spawn(async move {
                store.prepare(&Business::default(), std::path::Path::new("none"), backoff).await
            })
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!preparing.is_finished(), "nothing to migrate against yet");
        assert!(store.busy_on(date(2026, 12, 1)).await.is_err(), "bookings are unavailable");

        // The database comes back on that port (a proxy to the real one).
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("rebind");
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut db) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut db).await;
                    }
                });
            }
        });
        let tries = tokio::time::timeout(Duration::from_secs(20), preparing)
            .await
            .expect("migrated within 20 s of the database's return")
            .expect("task")
            .expect("migrates");
        assert!(tries >= 2, "{tries} tries");
        assert_eq!(store.busy_on(date(2026, 12, 1)).await.expect("reads").len(), 0);
    }
}

mod retention {
    use super::*;
    use hermes_io::records::{
        CallOutcome, CallRecord, EventRecord, ToolCallRecord, ToolStatus, TurnRecord,
    };
    use hermes_io::store::{PurgeReport, Retention};
    use jiff::{SignedDuration, Timestamp};

    fn call(id: &str, started: Timestamp) -> CallRecord {
        let at = started.as_millisecond();
        CallRecord {
            call_id: id.into(),
            business: "Maple Street Hair".into(),
            direction: "inbound".into(),
            caller: "+15555550123".into(),
            callee: "+15555550100".into(),
            started_at_ms: at,
            ended_at_ms: at + 60_000,
            outcome: CallOutcome::Completed,
            end_reason: "goodbye".into(),
            handle_ms: 60_000,
            cost_usd: Some(0.05),
            turns: vec![TurnRecord {
                speaker: "caller".into(),
                text: "This is Jordan, my number is 555 0123".into(),
                heard: "This is Jordan, my number is 555 0123".into(),
                at_ms: 2000,
                voice_to_voice_ms: Some(700),
                stages: vec![("stt_final".into(), 120)],
            }],
            tool_calls: vec![ToolCallRecord {
                name: "cancel_appointment".into(),
                arguments: r#"{"customer_name":"Jordan Lee"}"#.into(),
                result: r#"{"booking_id":"B-1"}"#.into(),
                status: ToolStatus::Ok,
                latency_ms: 9,
                at_ms: 3000,
            }],
            events: vec![EventRecord { at_ms: 2500, kind: "barge_in".into() }],
        }
    }

    #[tokio::test]
    async fn purge_anonymises_what_postgres_kept_past_the_retention_and_keeps_the_rest() {
        purge_keeps_what_is_recent(Store::Postgres(store().await)).await;
    }

    #[tokio::test]
    async fn purge_anonymises_what_the_embedded_store_kept_past_the_retention_too() {
        let (_dir, store) = embedded();
        purge_keeps_what_is_recent(store).await;
    }

    /// Every text cell of every table of the embedded store's file, as one string per row.
    fn every_row(db: &std::path::Path) -> Vec<String> {
        let c = rusqlite::Connection::open(db).expect("opens the file");
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .expect("lists tables")
            .query_map([], |r| r.get(0))
            .expect("lists tables")
            .map(|t| t.expect("a name"))
            .collect();
        let mut rows = Vec::new();
        for table in tables {
            let mut stmt = c.prepare(&format!("SELECT * FROM \"{table}\"")).expect("selects");
            let columns = stmt.column_count();
            let mut found = stmt.query([]).expect("reads");
            while let Some(row) = found.next().expect("a row") {
                let cells: Vec<String> = (0..columns)
                    .filter_map(|i| row.get::<_, Option<String>>(i).ok().flatten())
                    .collect();
                rows.push(format!("{table}: {}", cells.join(" | ")));
            }
        }
        rows
    }

    #[tokio::test]
    async fn after_a_purge_no_cell_of_the_embedded_store_names_or_numbers_an_old_customer() {
        let (dir, store) = embedded();
        let business = Business::default();
        let new_york = jiff::tz::TimeZone::get(&business.timezone).expect("tzdb");
        let now = Timestamp::now();
        let days = |n: i64| now - SignedDuration::from_hours(24 * n);
        store.write_calls(&[call("old-call", days(40))]).await.expect("writes");
        let mut booked = false;
        for back in 40..47 {
            let day = new_york.to_datetime(days(back)).date();
            // The idempotency key holds the tool's arguments, the name among them.
            let key = format!("old-call/{{\"customer_name\":\"Sam Lee\",\"day\":{back}}}");
            let r = BookRequest { start: day.at(10, 0, 0, 0), ..request(&key, Some("ana")) };
            if store.book(&business, &r).await.is_ok() {
                booked = true;
                break;
            }
        }
        assert!(booked, "an open day in that week");
        store
            .open_ticket("ticket", "leaky bottle, says Sam Lee", "Sam Lee", "+15555550123", "c")
            .await
            .expect("opens");
        let db = dir.path().join("hermes.db");
        // The ticket was opened 40 days ago.
        rusqlite::Connection::open(&db)
            .expect("opens")
            .execute("UPDATE tickets SET created_at = ?1", [days(40).to_string()])
            .expect("backdates");
        let personal = ["Sam Lee", "Jordan", "555 0123", "5555550123", "5555550100"];
        assert!(
            every_row(&db).iter().any(|row| personal.iter().any(|p| row.contains(p))),
            "the fixture holds personal data to purge"
        );

        let before = Retention::days_before(30, now, &new_york);
        let report = store.purge(&before, false).await.expect("purges");
        assert_eq!(report, PurgeReport { calls: 1, appointments: 1, tickets: 1 });
        let left: Vec<String> = every_row(&db)
            .into_iter()
            .filter(|row| personal.iter().any(|p| row.contains(p)))
            .collect();
        assert!(left.is_empty(), "personal data left after the purge: {left:#?}");
    }

    async fn purge_keeps_what_is_recent(store: Store) {
        let business = Business::default();
        let new_york = jiff::tz::TimeZone::get(&business.timezone).expect("tzdb");
        let now = Timestamp::now();
        let days = |n: i64| now - SignedDuration::from_hours(24 * n);
        let (old, recent) = (call("old-call", days(40)), call("recent-call", days(2)));
        store.write_calls(&[old.clone(), recent.clone()]).await.expect("writes");
        // An appointment that took place 40-46 days ago (the first day the salon opened then),
        // and one to come.
        let mut past = None;
        for back in 40..47 {
            let day = new_york.to_datetime(days(back)).date();
            let r = BookRequest {
                start: day.at(10, 0, 0, 0),
                ..request(&format!("p{back}"), Some("ana"))
            };
            if store.book(&business, &r).await.is_ok() {
                past = Some(day);
                break;
            }
        }
        let past = past.expect("an open day in that week");
        store.book(&business, &request("future", Some("ana"))).await.expect("books");
        store
            .open_ticket("ticket", "leaky bottle", "Sam Lee", "+15555550123", "c")
            .await
            .expect("opens");

        let before = Retention::days_before(30, now, &new_york);
        let expected = PurgeReport { calls: 1, appointments: 1, tickets: 0 };
        assert_eq!(store.purge(&before, true).await.expect("counts"), expected, "dry run");
        assert_eq!(
            store.show_call("old-call").await.expect("reads"),
            Some(old.clone()),
            "untouched"
        );

        assert_eq!(store.purge(&before, false).await.expect("purges"), expected);
        let purged = store.show_call("old-call").await.expect("reads").expect("kept");
        assert_eq!((purged.caller.as_str(), purged.callee.as_str()), ("", ""));
        assert_eq!((purged.turns[0].text.as_str(), purged.turns[0].heard.as_str()), ("", ""));
        let tool = &purged.tool_calls[0];
        assert_eq!((tool.arguments.as_str(), tool.result.as_str()), ("", ""));
        // What the reports need stays.
        assert_eq!(
            (purged.outcome, purged.handle_ms, purged.cost_usd, purged.turns[0].voice_to_voice_ms),
            (old.outcome, old.handle_ms, old.cost_usd, old.turns[0].voice_to_voice_ms)
        );
        assert_eq!(
            (purged.turns[0].stages.clone(), purged.events.clone()),
            (old.turns[0].stages.clone(), old.events.clone())
        );
        assert_eq!(
            store.show_call("recent-call").await.expect("reads"),
            Some(recent),
            "kept whole"
        );
        assert_eq!(store.busy_on(past).await.expect("reads").len(), 1, "the slot stays taken");
        let listed = store.list_calls(10).await.expect("lists");
        assert_eq!(listed.len(), 2);
        assert_eq!(
            store.purge(&before, false).await.expect("purges"),
            PurgeReport::default(),
            "once"
        );

        // A replayed record of an old call is personal data again, and is purged again.
        store.write_calls(&[old]).await.expect("writes");
        assert_eq!(store.purge(&before, true).await.expect("counts").calls, 1);
    }
}
