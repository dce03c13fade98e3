//! The model catalog: a TOML file of models (id, name, provider, status,
//! description), joined with the models seen in events and with their
//! prices from the price book (the one the sink prices with), and the
//! search over it.

use std::{collections::BTreeMap, path::Path};

use centile_events::{PriceBook, PriceVersion};
use serde::{Deserialize, Serialize};

use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Beta,
    Deprecated,
}

impl Status {
    pub const NAMES: [&'static str; 3] = ["active", "beta", "deprecated"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(Self::Active),
            "beta" => Some(Self::Beta),
            "deprecated" => Some(Self::Deprecated),
            _ => None,
        }
    }
}

/// A model's prices now, from the price book's version in effect: USD per
/// million tokens, the version's id and its first day. Empty when the book
/// has no price for the model and provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prices {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_per_mtok: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_per_mtok: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_per_mtok: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_per_mtok: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<String>,
}

impl Prices {
    /// `(model, provider)`'s prices at `at` (Unix seconds) in `book`.
    pub fn at(book: &PriceBook, model_id: &str, provider: &str, at: i64) -> Self {
        book.version_at(model_id, provider, at)
            .map(Self::of)
            .unwrap_or_default()
    }

    fn of(v: &PriceVersion) -> Self {
        // Whole pico-dollars a token are micro-dollars a million tokens.
        let per_mtok = |pico: i64| Some(pico as f64 / 1e6);
        Self {
            input_per_mtok: per_mtok(v.prices.input),
            output_per_mtok: per_mtok(v.prices.output),
            cache_read_per_mtok: per_mtok(v.prices.cache_read),
            cache_write_per_mtok: per_mtok(v.prices.cache_write),
            reasoning_per_mtok: per_mtok(v.prices.reasoning),
            version: Some(v.id()),
            effective_from: Some(v.effective_from.clone()),
        }
    }
}

/// One catalog entry as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub status: Status,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    model: Vec<Entry>,
}

/// A model as answered: from the catalog, from events, or both.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub status: Status,
    pub description: String,
    pub prices: Prices,
    pub in_catalog: bool,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

/// When a model was first and last seen in events, and with which provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub id: String,
    pub provider: String,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Default, Clone)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Catalog {
    pub fn load(path: Option<&Path>) -> Result<Self, ApiError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ApiError::Catalog(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ApiError::Catalog(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        // Prices used to live here; say where they went rather than
        // "unknown field".
        if let Ok(toml::Value::Table(file)) = toml::from_str::<toml::Value>(text) {
            let models = file.get("model").and_then(toml::Value::as_array);
            for (i, model) in models.into_iter().flatten().enumerate() {
                if model.get("prices").is_some() {
                    let id = model.get("id").and_then(toml::Value::as_str).unwrap_or("?");
                    return Err(format!(
                        "model {} ({id}): `prices` belong in the price book (`pricing.book`, docs/pricing.md), which the sink prices with; the catalog no longer carries them",
                        i + 1
                    ));
                }
            }
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut ids = std::collections::HashSet::new();
        for entry in &file.model {
            if entry.id.is_empty() || entry.name.is_empty() {
                return Err("every model needs a non-empty id and name".into());
            }
            if !ids.insert(entry.id.clone()) {
                return Err(format!("model {:?} is listed twice", entry.id));
            }
        }
        Ok(Self {
            entries: file.model,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Catalog entries joined with what events show, each with its prices
    /// in `book` at `now` (Unix seconds), sorted by name then id.
    pub fn models(&self, seen: &[Seen], book: &PriceBook, now: i64) -> Vec<Model> {
        let mut by_id: BTreeMap<String, Model> = BTreeMap::new();
        for e in &self.entries {
            by_id.insert(
                e.id.clone(),
                Model {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    provider: e.provider.clone(),
                    status: e.status,
                    description: e.description.clone(),
                    prices: Prices::at(book, &e.id, &e.provider, now),
                    in_catalog: true,
                    first_seen: None,
                    last_seen: None,
                },
            );
        }
        for s in seen {
            let model = by_id.entry(s.id.clone()).or_insert_with(|| Model {
                id: s.id.clone(),
                name: s.id.clone(),
                provider: s.provider.clone(),
                status: Status::Active,
                description: String::new(),
                prices: Prices::at(book, &s.id, &s.provider, now),
                in_catalog: false,
                first_seen: None,
                last_seen: None,
            });
            // A model served by several providers: the widest span.
            if model.first_seen.as_ref().is_none_or(|f| s.first_seen < *f) {
                model.first_seen = Some(s.first_seen.clone());
            }
            if model.last_seen.as_ref().is_none_or(|l| s.last_seen > *l) {
                model.last_seen = Some(s.last_seen.clone());
            }
        }
        let mut models: Vec<Model> = by_id.into_values().collect();
        models.sort_by(|a, b| (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id)));
        models
    }
}

/// What a search asks for.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub q: Option<String>,
    pub status: Option<Status>,
    pub provider: Option<String>,
    pub limit: usize,
}

/// Seed 000's search: case-insensitive substring of `q` over id, name,
/// description and provider; exact id or name matches first, then by name.
pub fn search(models: Vec<Model>, search: &Search) -> Vec<Model> {
    let q = search.q.as_deref().map(str::to_lowercase);
    let mut found: Vec<(bool, Model)> = models
        .into_iter()
        .filter(|m| search.status.is_none_or(|s| m.status == s))
        .filter(|m| {
            search
                .provider
                .as_deref()
                .is_none_or(|p| m.provider.eq_ignore_ascii_case(p))
        })
        .filter_map(|m| match &q {
            None => Some((false, m)),
            Some(q) => {
                let exact = m.id.to_lowercase() == *q || m.name.to_lowercase() == *q;
                let hit = exact
                    || [&m.id, &m.name, &m.description, &m.provider]
                        .iter()
                        .any(|field| field.to_lowercase().contains(q.as_str()));
                hit.then_some((exact, m))
            }
        })
        .collect();
    found.sort_by(|(ea, a), (eb, b)| {
        eb.cmp(ea)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
            .then_with(|| a.id.cmp(&b.id))
    });
    found
        .into_iter()
        .take(search.limit)
        .map(|(_, m)| m)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[model]]
id = "gpt-4o"
name = "GPT-4o"
provider = "openai"
status = "active"
description = "Flagship multimodal model"

[[model]]
id = "gpt-4o-mini"
name = "GPT-4o mini"
provider = "openai"
status = "active"
description = "Small and cheap"

[[model]]
id = "claude-x"
name = "Claude X"
provider = "anthropic"
status = "beta"
description = "Reasoning model, a GPT-4o competitor"
"#;

    fn ids(models: &[Model]) -> Vec<&str> {
        models.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn exact_matches_first_then_by_name() {
        let catalog = Catalog::parse(FILE).unwrap();
        let all = catalog.models(&[], &PriceBook::default(), 0);
        let s = |q: &str| Search {
            q: Some(q.into()),
            limit: 20,
            ..Search::default()
        };
        assert_eq!(
            ids(&search(all.clone(), &s("gpt-4o"))),
            ["gpt-4o", "claude-x", "gpt-4o-mini"]
        );
        assert_eq!(
            ids(&search(all.clone(), &s("GPT-4O MINI"))),
            ["gpt-4o-mini"]
        );
        assert_eq!(ids(&search(all.clone(), &s("ANTHROP"))), ["claude-x"]);
        let beta = Search {
            status: Some(Status::Beta),
            limit: 20,
            ..Search::default()
        };
        assert_eq!(ids(&search(all.clone(), &beta)), ["claude-x"]);
        let limited = Search {
            provider: Some("OpenAI".into()),
            limit: 1,
            ..Search::default()
        };
        assert_eq!(ids(&search(all, &limited)), ["gpt-4o"]);
    }

    #[test]
    fn events_add_models_and_dates() {
        let catalog = Catalog::parse(FILE).unwrap();
        let seen = [
            Seen {
                id: "gpt-4o".into(),
                provider: "openai".into(),
                first_seen: "2026-11-01T00:00:00Z".into(),
                last_seen: "2026-11-30T00:00:00Z".into(),
            },
            Seen {
                id: "llama-9".into(),
                provider: "meta".into(),
                first_seen: "2026-11-20T00:00:00Z".into(),
                last_seen: "2026-11-21T00:00:00Z".into(),
            },
        ];
        let book = PriceBook::parse(
            "[[prices]]\nmodel = \"gpt-4o\"\nprovider = \"openai\"\neffective_from = 2026-01-01\ninput = \"2.5\"\noutput = \"10\"\ncache_read = \"1.25\"\n\
             [[prices]]\nmodel = \"gpt-4o\"\nprovider = \"openai\"\neffective_from = 2026-12-01\ninput = \"2\"\noutput = \"8\"\n",
        )
        .unwrap();
        // 2026-11-15: the first version is in effect.
        let models = catalog.models(&seen, &book, 1_794_700_800);
        assert_eq!(models.len(), 4);
        let llama = models.iter().find(|m| m.id == "llama-9").unwrap();
        assert!(!llama.in_catalog);
        assert_eq!(llama.name, "llama-9");
        let gpt = models.iter().find(|m| m.id == "gpt-4o").unwrap();
        assert!(gpt.in_catalog);
        assert_eq!(gpt.first_seen.as_deref(), Some("2026-11-01T00:00:00Z"));
        assert_eq!(
            (
                gpt.prices.input_per_mtok,
                gpt.prices.output_per_mtok,
                gpt.prices.cache_read_per_mtok,
                gpt.prices.cache_write_per_mtok,
                gpt.prices.reasoning_per_mtok,
                gpt.prices.effective_from.as_deref(),
            ),
            (
                Some(2.5),
                Some(10.0),
                Some(1.25),
                Some(2.5),
                Some(10.0),
                Some("2026-01-01")
            ),
            "the book's version in effect, its defaults filled in"
        );
        assert_eq!(llama.prices, Prices::default(), "no price in the book");
        // 2026-12-02: the second version.
        let later = catalog.models(&seen, &book, 1_796_169_600);
        let gpt = later.iter().find(|m| m.id == "gpt-4o").unwrap();
        assert_eq!(
            (
                gpt.prices.input_per_mtok,
                gpt.prices.effective_from.as_deref()
            ),
            (Some(2.0), Some("2026-12-01"))
        );
    }

    #[test]
    fn bad_files_name_the_problem() {
        assert!(Catalog::parse(
            "[[model]]\nid = \"a\"\nname = \"A\"\nprovider = \"p\"\nstatus = \"gone\"\n"
        )
        .unwrap_err()
        .contains("unknown variant"));
        let twice =
            "[[model]]\nid = \"a\"\nname = \"A\"\nprovider = \"p\"\nstatus = \"beta\"\n".repeat(2);
        assert!(Catalog::parse(&twice).unwrap_err().contains("twice"));
        let priced = "[[model]]\nid = \"a\"\nname = \"A\"\nprovider = \"p\"\nstatus = \"beta\"\nprices = { input_per_mtok = 1.0 }\n";
        let err = Catalog::parse(priced).unwrap_err();
        assert!(
            err.starts_with("model 1 (a): `prices` belong in the price book"),
            "{err}"
        );
    }
}
