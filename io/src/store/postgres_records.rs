//! Call records in Postgres: one transaction per batch; a call's rows are replaced whole.

use crate::records::{
    CallOutcome, CallRecord, CallSummary, EventRecord, RecordSink, SinkFuture, ToolCallRecord,
    ToolStatus, TurnRecord,
};

use super::postgres::{PgStore, StoreError};
use super::{PurgeReport, Retention};

impl PgStore {
    /// Writes `records` atomically; a record whose call id exists replaces it (its write order
    /// is kept). One statement per table for the whole batch (arrays, `unnest`): a batch costs
    /// the same few round trips however many calls it holds.
    pub async fn write_calls(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        // The same call twice in one batch: the later record wins.
        let mut batch: Vec<&CallRecord> = Vec::with_capacity(records.len());
        for r in records {
            batch.retain(|b| b.call_id != r.call_id);
            batch.push(r);
        }
        let ids: Vec<&str> = batch.iter().map(|r| r.call_id.as_str()).collect();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO calls (call_id, business, direction, caller, callee, started_at,
                 ended_at, outcome, end_reason, handle_ms, cost_usd)
             SELECT id, b, d, cr, ce, to_timestamp(s / 1000.0), to_timestamp(e / 1000.0), o,
                    er, h, c
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::bigint[],
                         $11::float8[]) WITH ORDINALITY AS u(id, b, d, cr, ce, s, e, o, er, h, c, n)
             ORDER BY n
             ON CONFLICT (call_id) DO UPDATE SET business = EXCLUDED.business,
                 direction = EXCLUDED.direction, caller = EXCLUDED.caller,
                 callee = EXCLUDED.callee, started_at = EXCLUDED.started_at,
                 ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome,
                 end_reason = EXCLUDED.end_reason, handle_ms = EXCLUDED.handle_ms,
                 cost_usd = EXCLUDED.cost_usd, purged_at = NULL",
            &[
                &ids,
                &batch.iter().map(|r| r.business.as_str()).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.direction.as_str()).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.caller.as_str()).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.callee.as_str()).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.started_at_ms).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.ended_at_ms).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.end_reason.as_str()).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.handle_ms as i64).collect::<Vec<_>>(),
                &batch.iter().map(|r| r.cost_usd).collect::<Vec<_>>(),
            ],
        )
        .await?;
        // Children are replaced whole (stage latencies cascade from turns).
        for table in ["call_turns", "call_tool_calls", "call_events"] {
            tx.execute(&format!("DELETE FROM {table} WHERE call_id = ANY($1)"), &[&ids]).await?;
        }
        let turns: Vec<(&str, i32, &TurnRecord)> = batch
            .iter()
            .flat_map(|r| {
                r.turns.iter().enumerate().map(|(i, t)| (r.call_id.as_str(), i as i32, t))
            })
            .collect();
        tx.execute(
            "INSERT INTO call_turns (call_id, turn, speaker, text, heard, at_ms, voice_to_voice_ms)
             SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],
                                  $6::bigint[], $7::int[])",
            &[
                &turns.iter().map(|t| t.0).collect::<Vec<_>>(),
                &turns.iter().map(|t| t.1).collect::<Vec<_>>(),
                &turns.iter().map(|t| t.2.speaker.as_str()).collect::<Vec<_>>(),
                &turns.iter().map(|t| t.2.text.as_str()).collect::<Vec<_>>(),
                &turns.iter().map(|t| t.2.heard.as_str()).collect::<Vec<_>>(),
                &turns.iter().map(|t| t.2.at_ms as i64).collect::<Vec<_>>(),
                &turns.iter().map(|t| t.2.voice_to_voice_ms.map(|v| v as i32)).collect::<Vec<_>>(),
            ],
        )
        .await?;
        let stages: Vec<(&str, i32, &str, i32)> = turns
            .iter()
            .flat_map(|(id, n, t)| {
                t.stages.iter().map(move |(s, ms)| (*id, *n, s.as_str(), *ms as i32))
            })
            .collect();
        tx.execute(
            "INSERT INTO call_stage_latencies (call_id, turn, stage, ms)
             SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[])
             ON CONFLICT DO NOTHING",
            &[
                &stages.iter().map(|s| s.0).collect::<Vec<_>>(),
                &stages.iter().map(|s| s.1).collect::<Vec<_>>(),
                &stages.iter().map(|s| s.2).collect::<Vec<_>>(),
                &stages.iter().map(|s| s.3).collect::<Vec<_>>(),
            ],
        )
        .await?;
        let tools: Vec<(&str, i32, &ToolCallRecord)> = batch
            .iter()
            .flat_map(|r| {
                r.tool_calls.iter().enumerate().map(|(i, c)| (r.call_id.as_str(), i as i32, c))
            })
            .collect();
        tx.execute(
            "INSERT INTO call_tool_calls (call_id, n, name, arguments, result, status, latency_ms,
                 at_ms)
             SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::int[], $8::bigint[])",
            &[
                &tools.iter().map(|t| t.0).collect::<Vec<_>>(),
                &tools.iter().map(|t| t.1).collect::<Vec<_>>(),
                &tools.iter().map(|t| t.2.name.as_str()).collect::<Vec<_>>(),
                &tools.iter().map(|t| t.2.arguments.as_str()).collect::<Vec<_>>(),
                &tools.iter().map(|t| t.2.result.as_str()).collect::<Vec<_>>(),
                &tools.iter().map(|t| t.2.status.as_str()).collect::<Vec<_>>(),
                &tools.iter().map(|t| t.2.latency_ms as i32).collect::<Vec<_>>(),
                &tools.iter().map(|t| t.2.at_ms as i64).collect::<Vec<_>>(),
            ],
        )
        .await?;
        let events: Vec<(&str, i32, &EventRecord)> = batch
            .iter()
            .flat_map(|r| {
                r.events.iter().enumerate().map(|(i, e)| (r.call_id.as_str(), i as i32, e))
            })
            .collect();
        tx.execute(
            "INSERT INTO call_events (call_id, n, at_ms, kind)
             SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[])",
            &[
                &events.iter().map(|e| e.0).collect::<Vec<_>>(),
                &events.iter().map(|e| e.1).collect::<Vec<_>>(),
                &events.iter().map(|e| e.2.at_ms as i64).collect::<Vec<_>>(),
                &events.iter().map(|e| e.2.kind.as_str()).collect::<Vec<_>>(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest `limit` calls, newest first.
    pub async fn list_calls(&self, limit: u32) -> Result<Vec<CallSummary>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.call_id, c.direction, c.caller,
                        (extract(epoch FROM c.started_at) * 1000)::bigint, c.outcome, c.handle_ms,
                        (SELECT count(*) FROM call_turns t WHERE t.call_id = c.call_id)::int
                 FROM calls c ORDER BY c.started_at DESC, c.seq DESC LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| CallSummary {
                call_id: r.get(0),
                direction: r.get(1),
                caller: r.get(2),
                started_at_ms: r.get(3),
                outcome: r.get(4),
                handle_ms: r.get::<_, i64>(5) as u64,
                turns: r.get::<_, i32>(6) as u32,
            })
            .collect())
    }

    /// One call, whole; `None` if no call has that id.
    pub async fn show_call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let client = self.client().await?;
        let Some(c) = client
            .query_opt(
                "SELECT call_id, business, direction, caller, callee,
                        (extract(epoch FROM started_at) * 1000)::bigint,
                        (extract(epoch FROM ended_at) * 1000)::bigint, outcome, end_reason,
                        handle_ms, cost_usd
                 FROM calls WHERE call_id = $1",
                &[&call_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut turns: Vec<TurnRecord> = client
            .query(
                "SELECT speaker, text, heard, at_ms, voice_to_voice_ms FROM call_turns
                 WHERE call_id = $1 ORDER BY turn",
                &[&call_id],
            )
            .await?
            .iter()
            .map(|r| TurnRecord {
                speaker: r.get(0),
                text: r.get(1),
                heard: r.get(2),
                at_ms: r.get::<_, i64>(3) as u64,
                voice_to_voice_ms: r.get::<_, Option<i32>>(4).map(|v| v as u32),
                stages: Vec::new(),
            })
            .collect();
        for r in client
            .query(
                "SELECT turn, stage, ms FROM call_stage_latencies WHERE call_id = $1
                 ORDER BY turn, ms",
                &[&call_id],
            )
            .await?
        {
            if let Some(t) = turns.get_mut(r.get::<_, i32>(0) as usize) {
                t.stages.push((r.get(1), r.get::<_, i32>(2) as u32));
            }
        }
        let tool_calls = client
            .query(
                "SELECT name, arguments, result, status, latency_ms, at_ms FROM call_tool_calls
                 WHERE call_id = $1 ORDER BY n",
                &[&call_id],
            )
            .await?
            .iter()
            .map(|r| ToolCallRecord {
                name: r.get(0),
                arguments: r.get(1),
                result: r.get(2),
                status: parse_status(r.get(3)),
                latency_ms: r.get::<_, i32>(4) as u32,
                at_ms: r.get::<_, i64>(5) as u64,
            })
            .collect();
        let events = client
            .query("SELECT at_ms, kind FROM call_events WHERE call_id = $1 ORDER BY n", &[&call_id])
            .await?
            .iter()
            .map(|r| EventRecord { at_ms: r.get::<_, i64>(0) as u64, kind: r.get(1) })
            .collect();
        Ok(Some(CallRecord {
            call_id: c.get(0),
            business: c.get(1),
            direction: c.get(2),
            caller: c.get(3),
            callee: c.get(4),
            started_at_ms: c.get(5),
            ended_at_ms: c.get(6),
            outcome: CallOutcome::parse(c.get(7)).unwrap_or(CallOutcome::Abandoned),
            end_reason: c.get(8),
            handle_ms: c.get::<_, i64>(9) as u64,
            cost_usd: c.get(10),
            turns,
            tool_calls,
            events,
        }))
    }
}

pub(super) fn parse_status(s: &str) -> ToolStatus {
    match s {
        "ok" => ToolStatus::Ok,
        "timeout" => ToolStatus::Timeout,
        _ => ToolStatus::Error,
    }
}

impl RecordSink for PgStore {
    fn write<'a>(&'a self, records: &'a [CallRecord]) -> SinkFuture<'a> {
        Box::pin(async move { self.write_calls(records).await.map_err(|e| e.to_string()) })
    }
}

impl PgStore {
    /// Anonymises what [`Retention`] says is past keeping (see [`super::Store::purge`]); with
    /// `dry_run`, only counts it. One transaction.
    pub async fn purge(
        &self,
        before: &Retention,
        dry_run: bool,
    ) -> Result<PurgeReport, StoreError> {
        let (instant, local) = (before.instant(), before.local());
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let count = |n: i64| n.max(0) as u64;
        let report = if dry_run {
            PurgeReport {
                calls: count(
                    tx.query_one(
                        "SELECT count(*) FROM calls
                         WHERE started_at < $1::text::timestamptz AND purged_at IS NULL",
                        &[&instant],
                    )
                    .await?
                    .get(0),
                ),
                appointments: count(
                    tx.query_one(
                        "SELECT count(*) FROM appointments WHERE starts_at < $1::text::timestamp
                           AND (customer_name <> '' OR customer_phone <> '' OR idempotency_key IS NOT NULL)",
                        &[&local],
                    )
                    .await?
                    .get(0),
                ),
                tickets: count(
                    tx.query_one(
                        "SELECT count(*) FROM tickets WHERE created_at < $1::text::timestamptz
                           AND (customer_name <> '' OR phone <> '' OR summary <> '')",
                        &[&instant],
                    )
                    .await?
                    .get(0),
                ),
            }
        } else {
            // What was said (turns), what tools were given and answered (names, numbers,
            // order ids), and who called go; outcome, times, latencies and cost stay.
            tx.execute(
                "UPDATE call_turns t SET text = '', heard = '' FROM calls c
                 WHERE t.call_id = c.call_id AND c.started_at < $1::text::timestamptz
                   AND c.purged_at IS NULL",
                &[&instant],
            )
            .await?;
            tx.execute(
                "UPDATE call_tool_calls t SET arguments = '', result = '' FROM calls c
                 WHERE t.call_id = c.call_id AND c.started_at < $1::text::timestamptz
                   AND c.purged_at IS NULL",
                &[&instant],
            )
            .await?;
            let calls = tx
                .execute(
                    "UPDATE calls SET caller = '', callee = '', purged_at = now()
                     WHERE started_at < $1::text::timestamptz AND purged_at IS NULL",
                    &[&instant],
                )
                .await?;
            let appointments = tx
                .execute(
                    "UPDATE appointments SET customer_name = '', customer_phone = '', idempotency_key = NULL
                     WHERE starts_at < $1::text::timestamp
                       AND (customer_name <> '' OR customer_phone <> '' OR idempotency_key IS NOT NULL)",
                    &[&local],
                )
                .await?;
            let tickets = tx
                .execute(
                    "UPDATE tickets SET customer_name = '', phone = '', summary = ''
                     WHERE created_at < $1::text::timestamptz
                       AND (customer_name <> '' OR phone <> '' OR summary <> '')",
                    &[&instant],
                )
                .await?;
            PurgeReport { calls, appointments, tickets }
        };
        tx.commit().await?;
        Ok(report)
    }
}
