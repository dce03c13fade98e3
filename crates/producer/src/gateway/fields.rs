//! JSON event objects to typed events, collecting every problem: missing
//! fields, wrong types, unknown fields, then the shared value rules
//! ([`Validate`]) and the admission window for `occurred_at`.
//!
//! The gateway converts a request's objects with [`events`]; the history
//! import (`centile-producer import`) converts one row at a time with
//! [`event`]. Both run the same reader, so validity has one code path.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use centile_events::{Admission, DecodeError, Event, LatencyEvent, Limits, UsageEvent, Validate};
use serde_json::{Map, Value};

use super::{
    body::type_name,
    ids::IdSource,
    problem::{Collected, Problem, MAX_LISTED},
};

/// Which kind of event a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Latency,
    Usage,
}

impl EventKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Usage => "usage",
        }
    }

    /// Every field an event object may have, with its JSON type, in the
    /// Avro schema's order.
    pub fn fields(self) -> &'static [(&'static str, FieldType)] {
        use FieldType::*;
        match self {
            Self::Latency => &[
                ("event_id", Text),
                ("occurred_at", Timestamp),
                ("tenant_id", Text),
                ("model_id", Text),
                ("provider", Text),
                ("tool", Text),
                ("parameters", Parameters),
                ("response_time_ms", Number),
                ("success", Boolean),
                ("error_type", Text),
                ("input_tokens", Integer),
                ("output_tokens", Integer),
                ("session_id", Text),
            ],
            Self::Usage => &[
                ("event_id", Text),
                ("occurred_at", Timestamp),
                ("tenant_id", Text),
                ("user_id", Text),
                ("model_id", Text),
                ("provider", Text),
                ("feature", Text),
                ("input_tokens", Integer),
                ("output_tokens", Integer),
                ("cost_usd_nanos", Integer),
                ("cache_read_input_tokens", Integer),
                ("cache_write_input_tokens", Integer),
                ("reasoning_output_tokens", Integer),
                ("session_id", Text),
            ],
        }
    }

    /// The JSON type of a field, or `None` for a field events do not have.
    pub fn field_type(self, name: &str) -> Option<FieldType> {
        self.fields()
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, kind)| *kind)
    }
}

/// The JSON type a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string (or null, for the optional ones).
    Text,
    /// RFC 3339 text or integer epoch milliseconds.
    Timestamp,
    /// An object of strings, numbers or booleans.
    Parameters,
    /// A finite number.
    Number,
    /// An integer.
    Integer,
    Boolean,
}

/// Where an event's tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant<'a> {
    /// The tenant of the request's API key: an event may repeat it in
    /// `tenant_id`, and one naming another tenant refuses the request.
    Key(&'a str),
    /// Each event names its own in the required `tenant_id` (the history
    /// import, which has no key).
    Named,
}

/// What the events of one request are checked against.
#[derive(Debug)]
pub struct Intake<'a> {
    /// The tenant of the request's API key, or each event's own.
    pub tenant: Tenant<'a>,
    /// Arrival time, ms since the epoch.
    pub arrived_at: i64,
    pub limits: &'a Limits,
    pub admission: Admission,
    pub ids: &'a IdSource,
}

/// Why a request's events were refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Events (by index) naming a tenant other than the key's.
    CrossTenant(Vec<usize>),
    Invalid(Vec<Problem>),
}

/// Converts every object, or refuses the whole request. At most
/// [`MAX_LISTED`] problems are listed (the rest counted in a last `and K
/// more problems` line), and an unknown field is listed once per name.
pub fn events(
    kind: EventKind,
    objects: &[Map<String, Value>],
    intake: &Intake<'_>,
) -> Result<Vec<Event>, Refusal> {
    let mut events = Vec::with_capacity(objects.len());
    let mut problems = Collected::default();
    let mut unknown = HashSet::new();
    let mut foreign = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let budget = MAX_LISTED.saturating_sub(problems.listed.len());
        let read = read(kind, index, object, intake, budget, &mut unknown);
        if read.foreign {
            foreign.push(index);
        }
        if read.problems.is_empty() && read.more == 0 {
            if problems.is_empty() {
                events.push(read.event);
            }
        } else {
            events = Vec::new();
        }
        read.problems.into_iter().for_each(|p| problems.push(p));
        problems.more += read.more;
    }
    if !foreign.is_empty() {
        return Err(Refusal::CrossTenant(foreign));
    }
    if !problems.is_empty() {
        return Err(Refusal::Invalid(problems.into_vec()));
    }
    Ok(events)
}

/// Converts one object at position `index` (which also seeds a missing
/// event id, see [`IdSource`]), or lists every problem it has. An event
/// naming another tenant than the key's is refused as a problem of
/// `tenant_id`.
pub fn event(
    kind: EventKind,
    index: usize,
    object: &Map<String, Value>,
    intake: &Intake<'_>,
) -> Result<Event, Vec<Problem>> {
    let read = read(kind, index, object, intake, MAX_LISTED, &mut HashSet::new());
    let mut problems = Collected {
        listed: read.problems,
        more: read.more,
    };
    if read.foreign {
        problems.push(Problem::new(
            index,
            "tenant_id",
            "names another tenant than the API key's",
        ));
    }
    if problems.is_empty() {
        Ok(read.event)
    } else {
        Err(problems.into_vec())
    }
}

/// One object read: the event (meaningful only without problems), its
/// problems (at most the budget, the rest counted in `more`), and whether
/// it names another tenant than the key's.
struct Read {
    event: Event,
    problems: Vec<Problem>,
    more: usize,
    foreign: bool,
}

/// Reads one object, listing at most `budget` problems; `unknown` holds the
/// unknown field names the request has already listed.
fn read(
    kind: EventKind,
    index: usize,
    object: &Map<String, Value>,
    intake: &Intake<'_>,
    budget: usize,
    unknown: &mut HashSet<String>,
) -> Read {
    let mut reader = Reader {
        kind,
        index,
        object,
        problems: Vec::new(),
        budget,
        more: 0,
        dropped: BTreeSet::new(),
    };
    let (tenant, foreign) = match intake.tenant {
        Tenant::Key(key_tenant) => {
            let foreign = reader
                .optional_string("tenant_id")
                .is_some_and(|named| named != key_tenant);
            (key_tenant.to_owned(), foreign)
        }
        Tenant::Named => (reader.string("tenant_id"), false),
    };
    let event = match kind {
        EventKind::Latency => Event::Latency(reader.latency(intake, tenant)),
        EventKind::Usage => Event::Usage(reader.usage(intake, tenant)),
    };
    reader.unknown_fields(kind.fields(), unknown);
    reader.check_values(&event, intake);
    Read {
        event,
        problems: reader.problems,
        more: reader.more,
        foreign,
    }
}

struct Reader<'a> {
    kind: EventKind,
    index: usize,
    object: &'a Map<String, Value>,
    problems: Vec<Problem>,
    /// How many problems to list; the rest are only counted in `more`.
    budget: usize,
    more: usize,
    /// The known fields with a problem counted but not listed.
    dropped: BTreeSet<&'static str>,
}

impl Reader<'_> {
    fn problem(&mut self, field: &str, reason: impl Into<String>) {
        if self.problems.len() < self.budget {
            self.problems.push(Problem::new(self.index, field, reason));
            return;
        }
        self.more += 1;
        let base = field.split('.').next().unwrap_or_default();
        if let Some((name, _)) = self.kind.fields().iter().find(|(name, _)| *name == base) {
            self.dropped.insert(name);
        }
    }

    fn wrong_type(&mut self, field: &str, expected: &str, got: &Value) {
        let reason = format!("wrong type: expected {expected}, got {}", type_name(got));
        self.problem(field, reason);
    }

    /// A present, non-null value; a missing one is reported.
    fn required(&mut self, field: &str) -> Option<&Value> {
        match self.object.get(field) {
            None | Some(Value::Null) => {
                self.problem(field, "missing field");
                None
            }
            Some(value) => Some(value),
        }
    }

    fn string(&mut self, field: &str) -> String {
        match self.required(field).cloned() {
            Some(Value::String(s)) => s,
            Some(other) => {
                self.wrong_type(field, "a string", &other);
                String::new()
            }
            None => String::new(),
        }
    }

    fn optional_string(&mut self, field: &str) -> Option<String> {
        match self.object.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                let other = other.clone();
                self.wrong_type(field, "a string or null", &other);
                None
            }
        }
    }

    fn integer(&mut self, field: &str) -> i64 {
        let value = self.required(field).cloned();
        value.map_or(0, |v| self.as_integer(field, &v))
    }

    fn optional_integer(&mut self, field: &str) -> Option<i64> {
        match self.object.get(field).cloned() {
            None | Some(Value::Null) => None,
            Some(value) => Some(self.as_integer(field, &value)),
        }
    }

    fn as_integer(&mut self, field: &str, value: &Value) -> i64 {
        match value.as_i64() {
            Some(n) => n,
            None => {
                self.wrong_type(field, "an integer", value);
                0
            }
        }
    }

    fn number(&mut self, field: &str) -> f64 {
        match self.required(field).cloned() {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(other) => {
                self.wrong_type(field, "a number", &other);
                0.0
            }
            None => 0.0,
        }
    }

    fn boolean(&mut self, field: &str) -> bool {
        match self.required(field).cloned() {
            Some(Value::Bool(b)) => b,
            Some(other) => {
                self.wrong_type(field, "a boolean", &other);
                false
            }
            None => false,
        }
    }

    /// RFC 3339 text or integer epoch milliseconds.
    fn timestamp(&mut self, field: &str) -> i64 {
        match self.required(field).cloned() {
            Some(Value::String(text)) => {
                match time::OffsetDateTime::parse(
                    &text,
                    &time::format_description::well_known::Rfc3339,
                ) {
                    Ok(t) => (t.unix_timestamp_nanos() / 1_000_000) as i64,
                    Err(e) => {
                        self.problem(field, format!("not an RFC 3339 time ({e}): {text:?}"));
                        0
                    }
                }
            }
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            Some(other) => {
                self.wrong_type(
                    field,
                    "an RFC 3339 string or integer epoch milliseconds",
                    &other,
                );
                0
            }
            None => 0,
        }
    }

    /// String values as they are; numbers and booleans as their JSON text.
    fn parameters(&mut self, field: &str) -> BTreeMap<String, String> {
        let mut parameters = BTreeMap::new();
        match self.object.get(field).cloned() {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let text = match value {
                        Value::String(s) => s,
                        Value::Number(_) | Value::Bool(_) => value.to_string(),
                        other => {
                            let path = format!("{field}.{name}");
                            self.wrong_type(&path, "a string, number or boolean", &other);
                            continue;
                        }
                    };
                    parameters.insert(name, text);
                }
            }
            Some(other) => self.wrong_type(field, "an object", &other),
        }
        parameters
    }

    fn event_id(&mut self, intake: &Intake<'_>, tenant: &str, occurred_at: i64) -> String {
        self.optional_string("event_id")
            .unwrap_or_else(|| intake.ids.id(tenant, self.index, occurred_at))
    }

    fn latency(&mut self, intake: &Intake<'_>, tenant_id: String) -> LatencyEvent {
        let occurred_at = self.timestamp("occurred_at");
        LatencyEvent {
            event_id: self.event_id(intake, &tenant_id, occurred_at),
            occurred_at,
            tenant_id,
            model_id: self.string("model_id"),
            provider: self.string("provider"),
            tool: self.string("tool"),
            parameters: self.parameters("parameters"),
            response_time_ms: self.number("response_time_ms"),
            success: self.boolean("success"),
            error_type: self.optional_string("error_type"),
            input_tokens: self.optional_integer("input_tokens"),
            output_tokens: self.optional_integer("output_tokens"),
            session_id: self.optional_string("session_id"),
        }
    }

    fn usage(&mut self, intake: &Intake<'_>, tenant_id: String) -> UsageEvent {
        let occurred_at = self.timestamp("occurred_at");
        UsageEvent {
            event_id: self.event_id(intake, &tenant_id, occurred_at),
            occurred_at,
            tenant_id,
            user_id: self.optional_string("user_id"),
            model_id: self.string("model_id"),
            provider: self.string("provider"),
            feature: self.string("feature"),
            input_tokens: self.integer("input_tokens"),
            output_tokens: self.integer("output_tokens"),
            cost_usd_nanos: self.optional_integer("cost_usd_nanos"),
            cache_read_input_tokens: self.optional_integer("cache_read_input_tokens"),
            cache_write_input_tokens: self.optional_integer("cache_write_input_tokens"),
            reasoning_output_tokens: self.optional_integer("reasoning_output_tokens"),
            session_id: self.optional_string("session_id"),
        }
    }

    /// Lists each unknown field name once per request (while there is room);
    /// later ones, and repeats in other events, are only counted.
    fn unknown_fields(&mut self, known: &[(&str, FieldType)], listed: &mut HashSet<String>) {
        let object = self.object;
        for name in object.keys() {
            if known.iter().any(|(field, _)| field == name) {
                continue;
            }
            if self.problems.len() < self.budget
                && listed.len() < MAX_LISTED
                && listed.insert(name.clone())
            {
                self.problem(name, "unknown field");
            } else {
                self.more += 1;
            }
        }
    }

    /// The shared value rules and the admission window, skipping fields
    /// that already have a problem (a missing field is not also "empty").
    fn check_values(&mut self, event: &Event, intake: &Intake<'_>) {
        let mut reported: BTreeSet<String> =
            self.problems.iter().map(|p| p.field.clone()).collect();
        reported.extend(self.dropped.iter().map(|name| name.to_string()));
        let rules = match event {
            Event::Latency(e) => e.problems(intake.limits),
            Event::Usage(e) => e.problems(intake.limits),
        };
        for rule in rules {
            let base = rule.field.split('.').next().unwrap_or_default();
            if !reported.contains(&rule.field) && !reported.contains(base) {
                self.problem(&rule.field, rule.reason);
            }
        }
        if reported.contains("occurred_at") {
            return;
        }
        match intake
            .admission
            .check(event.occurred_at(), Some(intake.arrived_at))
        {
            Ok(()) => {}
            Err(DecodeError::FromTheFuture { ahead_ms, max_skew_ms }) => self.problem(
                "occurred_at",
                format!("timestamp too far in the future: {ahead_ms} ms after arrival, limit {max_skew_ms} ms"),
            ),
            Err(DecodeError::TooLate { age_ms, horizon_ms }) => self.problem(
                "occurred_at",
                format!("timestamp too far in the past: {age_ms} ms before arrival, beyond the restatement horizon of {horizon_ms} ms"),
            ),
            Err(other) => self.problem("occurred_at", other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    fn run(kind: EventKind, body: Value) -> Result<Vec<Event>, Refusal> {
        let objects: Vec<Map<String, Value>> = match body {
            Value::Array(items) => items
                .into_iter()
                .map(|v| v.as_object().unwrap().clone())
                .collect(),
            other => vec![other.as_object().unwrap().clone()],
        };
        let limits = Limits::default();
        let intake = Intake {
            tenant: Tenant::Key("acme"),
            arrived_at: NOW,
            limits: &limits,
            admission: Admission::default(),
            ids: &IdSource::Random,
        };
        events(kind, &objects, &intake)
    }

    fn latency() -> Value {
        json!({
            "occurred_at": "2027-01-15T08:00:00.250+00:00",
            "model_id": "gpt-4o", "provider": "openai", "tool": "chat",
            "parameters": {"temperature": 0.2, "streaming": true, "mode": "fast"},
            "response_time_ms": 812.5, "success": true
        })
    }

    fn problems(result: Result<Vec<Event>, Refusal>) -> Vec<(Option<usize>, String, String)> {
        match result {
            Err(Refusal::Invalid(problems)) => problems
                .into_iter()
                .map(|p| (p.index, p.field, p.reason))
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_event_gets_the_key_tenant_and_a_fresh_id() {
        let mut body = latency();
        body["occurred_at"] = json!(NOW - 1000);
        let events = run(EventKind::Latency, body).unwrap();
        let Event::Latency(e) = &events[0] else {
            panic!()
        };
        assert_eq!(e.tenant_id, "acme");
        assert_eq!(e.occurred_at, NOW - 1000);
        assert_eq!(e.parameters["temperature"], "0.2");
        assert_eq!(e.parameters["streaming"], "true");
        assert_eq!(
            uuid::Uuid::parse_str(&e.event_id)
                .unwrap()
                .get_version_num(),
            7
        );
    }

    #[test]
    fn rfc3339_with_offsets_is_converted_to_utc_millis() {
        let mut body = latency();
        // NOW is 2027-01-15T08:00:00Z.
        body["occurred_at"] = json!("2027-01-15T10:00:00.250+02:00");
        let events = run(EventKind::Latency, body).unwrap();
        let Event::Latency(e) = &events[0] else {
            panic!()
        };
        assert_eq!(e.occurred_at, 1_800_000_000_250);
    }

    #[test]
    fn every_problem_is_listed_with_index_field_and_reason() {
        let body = json!([
            latency(),
            {
                "occurred_at": NOW + 3_600_000,
                "model_id": 7, "tool": "chat", "provider": "p",
                "parameters": {"nested": {"a": 1}},
                "response_time_ms": -4.0, "success": "yes",
                "input_tokens": -3, "output_tokens": 1.5, "colour": "red"
            }
        ]);
        let mut found = problems(run(EventKind::Latency, body));
        found.sort();
        let expect = |field: &str, reason: &str| (Some(1), field.to_owned(), reason.to_owned());
        assert_eq!(
            found,
            vec![
                expect("colour", "unknown field"),
                expect("input_tokens", "must not be negative, got -3"),
                expect("model_id", "wrong type: expected a string, got an integer"),
                expect(
                    "occurred_at",
                    "timestamp too far in the future: 3600000 ms after arrival, limit 300000 ms"
                ),
                expect(
                    "output_tokens",
                    "wrong type: expected an integer, got a fractional number"
                ),
                expect(
                    "parameters.nested",
                    "wrong type: expected a string, number or boolean, got an object"
                ),
                expect("response_time_ms", "must not be negative, got -4"),
                expect("success", "wrong type: expected a boolean, got a string"),
            ]
        );
    }

    #[test]
    fn missing_fields_are_named_once() {
        let found = problems(run(EventKind::Usage, json!({"occurred_at": NOW})));
        let fields: Vec<_> = found.iter().map(|(_, f, r)| format!("{f}: {r}")).collect();
        assert_eq!(
            fields,
            [
                "model_id: missing field",
                "provider: missing field",
                "feature: missing field",
                "input_tokens: missing field",
                "output_tokens: missing field",
            ]
        );
    }

    #[test]
    fn limits_on_strings_and_parameters_apply() {
        let mut body = latency();
        body["occurred_at"] = json!(NOW);
        body["tool"] = json!("x".repeat(300));
        let many: Map<String, Value> = (0..70).map(|i| (format!("p{i}"), json!("v"))).collect();
        body["parameters"] = Value::Object(many);
        let found = problems(run(EventKind::Latency, body));
        let reasons: Vec<_> = found.iter().map(|(_, f, r)| format!("{f}: {r}")).collect();
        assert!(
            reasons.contains(&"tool: string too long: 300 characters, limit 256".to_owned()),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"parameters: too many parameters: 70, limit 64".to_owned()),
            "{reasons:?}"
        );
    }

    #[test]
    fn one_event_converts_alone_with_its_own_tenant_or_the_keys() {
        let limits = Limits::default();
        let ids = IdSource::Idempotent("import:0123".into());
        let mut intake = Intake {
            tenant: Tenant::Named,
            arrived_at: NOW,
            limits: &limits,
            admission: Admission::default(),
            ids: &ids,
        };
        let mut body = latency();
        body["occurred_at"] = json!(NOW);
        body["tenant_id"] = json!("globex");
        let object = body.as_object().unwrap().clone();
        let Ok(Event::Latency(e)) = event(EventKind::Latency, 7, &object, &intake) else {
            panic!("valid")
        };
        assert_eq!(e.tenant_id, "globex");
        assert_eq!(e.event_id, ids.id("globex", 7, NOW));

        let mut anonymous = object.clone();
        anonymous.remove("tenant_id");
        assert_eq!(
            event(EventKind::Latency, 7, &anonymous, &intake),
            Err(vec![Problem::new(7, "tenant_id", "missing field")])
        );

        intake.tenant = Tenant::Key("acme");
        assert_eq!(
            event(EventKind::Latency, 3, &object, &intake),
            Err(vec![Problem::new(
                3,
                "tenant_id",
                "names another tenant than the API key's"
            )])
        );
        let Ok(Event::Latency(e)) = event(EventKind::Latency, 3, &anonymous, &intake) else {
            panic!("valid")
        };
        assert_eq!(e.tenant_id, "acme");
    }

    #[test]
    fn another_tenant_refuses_the_whole_request() {
        let mut own = latency();
        own["occurred_at"] = json!(NOW);
        own["tenant_id"] = json!("acme");
        let mut foreign = own.clone();
        foreign["tenant_id"] = json!("globex");
        assert_eq!(
            run(EventKind::Latency, json!([own, foreign])),
            Err(Refusal::CrossTenant(vec![1]))
        );
    }
}
