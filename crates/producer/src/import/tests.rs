//! Reading, checking and converting inputs, without a broker.

use std::{io::Write, path::PathBuf};

use centile_aggregator::engine::EngineConfig;
use centile_events::{Decoded, Event};

use super::{
    check,
    convert::Converter,
    input::{Format, Input},
    panes::PaneBuilder,
    report::{Counters, Refusals},
};
use crate::gateway::EventKind;

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;
const SKEW: i64 = 300_000;

fn latency_line(i: usize, age_ms: i64) -> String {
    serde_json::json!({
        "occurred_at": NOW - age_ms, "tenant_id": "acme", "model_id": format!("m{}", i % 2),
        "provider": "openai", "tool": "chat", "parameters": {"temperature": 0.2},
        "response_time_ms": 100.0 + i as f64, "success": !i.is_multiple_of(3), "input_tokens": i
    })
    .to_string()
}

/// A latency line changed by `edit`.
fn edited_line(i: usize, age_ms: i64, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&latency_line(i, age_ms)).unwrap();
    edit(&mut value);
    value.to_string()
}

fn ndjson(rows: usize) -> String {
    let mut text = String::new();
    for i in 0..rows {
        text.push_str(&latency_line(i, (i as i64 % 730) * DAY));
        text.push('\n');
        if i % 4 == 0 {
            text.push_str("   \n"); // blank lines are skipped
        }
    }
    text
}

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("centile-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Checks an input; returns its digest, the refusal lines and the events of
/// the accepted rows with their row index, as the publishing pass makes them.
fn import(input: &Input, kind: EventKind) -> (String, Vec<String>, Vec<(u64, Event)>) {
    let mut refusals = Refusals::quiet();
    let counters = Counters::default();
    let checker = Converter::new(kind, SKEW, NOW, None);
    let digest = check(input, &checker, &mut refusals, &counters).unwrap();
    let converter = Converter::new(kind, SKEW, NOW, Some(&digest));
    let mut rows = input.rows(kind).unwrap();
    let mut events = Vec::new();
    while let Some(row) = rows.next_row().unwrap() {
        if let Ok(event) = converter.convert(&row) {
            events.push((row.index, event));
        }
    }
    assert_eq!(
        rows.digest().unwrap(),
        digest,
        "both passes see the same bytes"
    );
    (digest, refusals.lines().to_vec(), events)
}

#[test]
fn ndjson_plain_and_gzipped_read_the_same_rows_with_the_same_digest() {
    let dir = Dir::new();
    let text = ndjson(50);
    let plain = dir.file("history.ndjson", text.as_bytes());
    let gz = dir.file("history.ndjson.gz", &gzip(text.as_bytes()));
    let plain = Input::open(&plain, Format::Auto).unwrap();
    let gz = Input::open(&gz, Format::Auto).unwrap();
    assert_eq!((plain.format, gz.format), (Format::Ndjson, Format::Ndjson));
    let (digest, refused, events) = import(&plain, EventKind::Latency);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(events.len(), 50);
    assert_eq!(digest.len(), 16);
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
    let (gz_digest, _, gz_events) = import(&gz, EventKind::Latency);
    assert_eq!(gz_digest, digest, "the digest is of the decompressed bytes");
    assert_eq!(gz_events, events);
    let Event::Latency(first) = &events[0].1 else {
        panic!()
    };
    assert_eq!(first.tenant_id, "acme");
    assert_eq!(first.parameters["temperature"], "0.2");
    // Indexes count rows, not blank lines.
    let indexes: Vec<u64> = events.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, (0..50).collect::<Vec<_>>());
}

#[test]
fn generated_ids_depend_only_on_the_digest_and_the_line() {
    let dir = Dir::new();
    let text = ndjson(20);
    let a = Input::open(&dir.file("a.ndjson", text.as_bytes()), Format::Auto).unwrap();
    let b = Input::open(&dir.file("b.jsonl", text.as_bytes()), Format::Auto).unwrap();
    let ids = |input: &Input| -> Vec<String> {
        import(input, EventKind::Latency)
            .2
            .iter()
            .map(|(_, e)| e.event_id().to_owned())
            .collect()
    };
    let first = ids(&a);
    assert_eq!(first, ids(&a), "a re-run makes the same ids");
    assert_eq!(first, ids(&b), "the same bytes under another name too");
    let unique: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(unique.len(), first.len());
    for id in &first {
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    }
    let changed = format!("{text}{}\n", latency_line(99, 0));
    let c = Input::open(&dir.file("c.ndjson", changed.as_bytes()), Format::Auto).unwrap();
    assert_ne!(ids(&c)[0], first[0], "another file's ids differ");
    // An id the row carries is kept.
    let own = edited_line(1, 0, |v| v["event_id"] = serde_json::json!("mine-1"));
    let d = Input::open(&dir.file("d.ndjson", own.as_bytes()), Format::Auto).unwrap();
    assert_eq!(import(&d, EventKind::Latency).2[0].1.event_id(), "mine-1");
}

#[test]
fn csv_rows_convert_like_json_and_gzipped_csv_is_recognised() {
    let dir = Dir::new();
    let csv = "occurred_at,tenant_id,user_id,model_id,provider,feature,input_tokens,output_tokens,cost_usd_nanos\n\
               2026-11-23T10:15:00.250Z,acme,u-1,gpt-4o,openai,chat,120,48,1500000\n\
               \n\
               1795000000000,acme,,\"claude, sonnet\",anthropic,auto-router,10,0,0\n";
    let plain = Input::open(&dir.file("usage.csv", csv.as_bytes()), Format::Auto).unwrap();
    let gz = Input::open(
        &dir.file("usage.CSV.gz", &gzip(csv.as_bytes())),
        Format::Auto,
    )
    .unwrap();
    assert_eq!((plain.format, gz.format), (Format::Csv, Format::Csv));
    let (digest, refused, events) = import(&plain, EventKind::Usage);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(events.len(), 2);
    let Event::Usage(first) = &events[0].1 else {
        panic!()
    };
    assert_eq!(first.occurred_at, 1_795_428_900_250);
    assert_eq!(first.user_id.as_deref(), Some("u-1"));
    assert_eq!(first.cost_usd_nanos, Some(1_500_000));
    let Event::Usage(second) = &events[1].1 else {
        panic!()
    };
    assert_eq!(second.user_id, None, "an empty cell is an absent field");
    assert_eq!(second.model_id, "claude, sonnet");
    let (gz_digest, _, gz_events) = import(&gz, EventKind::Usage);
    assert_eq!((gz_digest, gz_events), (digest, events));
}

#[test]
fn refused_rows_are_reported_by_line_field_and_reason() {
    let dir = Dir::new();
    let mut text = String::new();
    text.push_str(&latency_line(0, DAY));
    text.push('\n');
    text.push('\n');
    let bad = edited_line(1, DAY, |v| {
        v["response_time_ms"] = serde_json::json!(-4.0);
        v.as_object_mut().unwrap().remove("tool");
    });
    text.push_str(&bad);
    text.push_str("\n{not json\n[1]\n");
    text.push_str(&latency_line(2, -3_600_000)); // an hour in the future
    text.push('\n');
    text.push_str(&latency_line(3, 2 * 365 * DAY)); // two years old: accepted
    text.push('\n');
    let path = dir.file("mixed.ndjson", text.as_bytes());
    let input = Input::open(&path, Format::Auto).unwrap();
    let (_, refused, events) = import(&input, EventKind::Latency);
    assert_eq!(
        refused,
        [
            format!("{path}:3: field `tool`: missing field"),
            format!("{path}:3: field `response_time_ms`: must not be negative, got -4"),
            format!("{path}:4: invalid json: key must be a string at line 1 column 2"),
            format!("{path}:5: expected an event object, got an array"),
            format!(
                "{path}:6: field `occurred_at`: timestamp too far in the future: 3600000 ms after arrival, limit 300000 ms"
            ),
        ]
    );
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].1.occurred_at(), NOW - 2 * 365 * DAY);

    let csv =
        "occurred_at,tenant_id,model_id,provider,tool,parameters,response_time_ms,success,colour\n\
               1799999000000,acme,m,p,chat,{\"a\":1},12,true,\n\
               1799999000000,,m,p,chat,{oops,12,yes,\n\
               1799999000000,acme,m,p,chat,,fast,maybe,red\n\
               1799999000000,acme,m,p,chat,,12,true,,extra\n";
    let path = dir.file("bad.csv", csv.as_bytes());
    let input = Input::open(&path, Format::Auto).unwrap();
    let (_, refused, events) = import(&input, EventKind::Latency);
    assert_eq!(events.len(), 1);
    assert_eq!(refused.len(), 5, "{refused:#?}");
    assert!(
        refused[0].starts_with(&format!("{path}:3: field `parameters`: not JSON text")),
        "{refused:#?}"
    );
    assert_eq!(
        refused[1..],
        [
            format!(
                "{path}:4: field `response_time_ms`: wrong type: expected a number, got a string"
            ),
            format!("{path}:4: field `success`: wrong type: expected a boolean, got a string"),
            format!("{path}:4: field `colour`: unknown field"),
            format!("{path}:5: 10 cells, but the header names 9 fields"),
        ]
    );
}

#[test]
fn a_missing_tenant_is_refused_as_every_row_names_its_own() {
    let dir = Dir::new();
    let line = edited_line(0, DAY, |v| {
        v.as_object_mut().unwrap().remove("tenant_id");
    });
    let path = dir.file("t.ndjson", line.as_bytes());
    let (_, refused, _) = import(
        &Input::open(&path, Format::Auto).unwrap(),
        EventKind::Latency,
    );
    assert_eq!(
        refused,
        [format!("{path}:1: field `tenant_id`: missing field")]
    );
}

#[test]
fn standard_input_is_spooled_and_read_twice() {
    let text = ndjson(30);
    let mut spool = tempfile::NamedTempFile::new().unwrap();
    spool.write_all(&gzip(text.as_bytes())).unwrap();
    let input = Input::spooled("-", spool, Format::Auto);
    assert_eq!(input.format, Format::Ndjson, "stdin defaults to NDJSON");
    let (digest, refused, events) = import(&input, EventKind::Latency);
    assert!(refused.is_empty());
    assert_eq!(events.len(), 30);
    let dir = Dir::new();
    let file = Input::open(&dir.file("same.ndjson", text.as_bytes()), Format::Auto).unwrap();
    assert_eq!(import(&file, EventKind::Latency).0, digest);
}

#[test]
fn an_input_twice_makes_identical_panes() {
    let dir = Dir::new();
    let path = dir.file("panes.ndjson", ndjson(2_000).as_bytes());
    let panes = || -> Vec<Decoded> {
        let input = Input::open(&path, Format::Auto).unwrap();
        let (digest, _, events) = import(&input, EventKind::Latency);
        let mut builder = PaneBuilder::with_limits(EngineConfig::default(), &digest, 500, 100);
        let mut panes = Vec::new();
        for (index, event) in &events {
            panes.extend(builder.add(*index, event));
        }
        panes.extend(builder.finish());
        panes
    };
    let first = panes();
    assert!(first.len() > 100);
    assert_eq!(first, panes());
}
