//! `GET /v1/models`, `/v1/models/{id}` and `/v1/models/search`: the catalog
//! joined with the models seen in events (from the daily rollups, so first
//! and last seen are day bounds).

use centile_sink::rollup::{Grouping, Kind, Rollup, Tier};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{literal, Queries, Source};
use crate::{
    catalog::{self, Search, Seen},
    params::{format_time, Params},
    ApiError,
};

#[derive(Debug, Clone)]
pub enum ModelsWhat {
    All,
    One(String),
    Search(Search),
}

#[derive(Debug, Clone)]
pub struct ModelsRequest {
    pub what: ModelsWhat,
    /// Models seen in this tenant's events only (a tenant key).
    pub tenant_id: Option<String>,
    /// The start of the UTC day asked on (Unix seconds): prices are those
    /// in effect that day (versions begin at 00:00 UTC).
    pub day: i64,
}

pub const SEARCH_PARAMETERS: &[&str] = &["q", "status", "provider", "limit"];

impl ModelsRequest {
    pub fn all(tenant_id: Option<String>, now: i64) -> Self {
        Self {
            what: ModelsWhat::All,
            tenant_id,
            day: Tier::Day.bucket_of(now),
        }
    }

    pub fn one(id: String, tenant_id: Option<String>, now: i64) -> Self {
        Self {
            what: ModelsWhat::One(id),
            ..Self::all(tenant_id, now)
        }
    }

    pub fn search(p: &Params, tenant_id: Option<String>, now: i64) -> Result<Self, ApiError> {
        let status = p
            .choice("status", &catalog::Status::NAMES)?
            .and_then(catalog::Status::parse);
        Ok(Self {
            what: ModelsWhat::Search(Search {
                q: p.text("q")?,
                status,
                provider: p.text("provider")?,
                limit: p.number("limit", 1, 100)?.unwrap_or(20) as usize,
            }),
            ..Self::all(tenant_id, now)
        })
    }

    fn tables(&self) -> [Rollup; 2] {
        let latency = Rollup {
            kind: Kind::Latency,
            grouping: if self.tenant_id.is_some() {
                Grouping::Full
            } else {
                Grouping::Model
            },
        };
        [Rollup::full(Kind::Usage), latency]
    }

    fn filter(&self) -> String {
        self.tenant_id
            .as_deref()
            .map(|t| format!("tenant_id = {}", literal(t)))
            .unwrap_or_default()
    }
}

pub fn sources(_q: &Queries, r: &ModelsRequest) -> Vec<Source> {
    r.tables()
        .map(|t| Source {
            table: t.table(Tier::Day),
            filter: r.filter(),
        })
        .to_vec()
}

#[derive(Debug, Row, Deserialize)]
struct SeenRow {
    model_id: String,
    provider: String,
    first: u32,
    last: u32,
}

async fn seen(q: &Queries, r: &ModelsRequest) -> Result<Vec<Seen>, ApiError> {
    let branches: Vec<String> = r
        .tables()
        .iter()
        .map(|t| {
            format!(
                "SELECT model_id, provider, window_start, window_end FROM {}.{}{}",
                q.database(),
                t.table(Tier::Day),
                super::where_clause(&r.filter())
            )
        })
        .collect();
    let rows: Vec<SeenRow> = q
        .fetch(&format!(
            "SELECT model_id, provider, toUInt32(min(window_start)), toUInt32(max(window_end))
FROM ({})
GROUP BY model_id, provider",
            branches.join(" UNION ALL ")
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Seen {
            id: r.model_id,
            provider: r.provider,
            first_seen: format_time(r.first.into()),
            last_seen: format_time(r.last.into()),
        })
        .collect())
}

pub async fn answer(q: &Queries, r: &ModelsRequest) -> Result<Value, ApiError> {
    let models = q.catalog.models(&seen(q, r).await?, &q.price_book(), r.day);
    match &r.what {
        ModelsWhat::All => Ok(json!({ "models": models })),
        ModelsWhat::Search(s) => Ok(json!({ "models": catalog::search(models, s) })),
        ModelsWhat::One(id) => models
            .into_iter()
            .find(|m| m.id == *id)
            .map(|m| json!(m))
            .ok_or_else(|| {
                ApiError::NotFound(format!("no model {id:?} in the catalog or in events"))
            }),
    }
}
