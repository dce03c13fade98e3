//! The stored rollup tiers and the two kinds of rollup: one definition of
//! each, from which every table, view and compaction statement is made.

/// A stored tier. Each is computed from the one below it (minute rows from
/// minute panes), so a row is always a merge of a bounded number of rows:
/// at most 60, 24 or 7, times the panes of a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Minute,
    Hour,
    Day,
    Week,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Minute, Tier::Hour, Tier::Day, Tier::Week];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
            Tier::Day => "day",
            Tier::Week => "week",
        }
    }

    /// The analysts' view suffix (`latency_hourly`, ...).
    pub fn view_suffix(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hourly",
            Tier::Day => "daily",
            Tier::Week => "weekly",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Tier::Minute => 60,
            Tier::Hour => 3_600,
            Tier::Day => 86_400,
            Tier::Week => 604_800,
        }
    }

    /// The tier this one is computed from (`None`: from the minute panes).
    pub fn lower(self) -> Option<Tier> {
        match self {
            Tier::Minute => None,
            Tier::Hour => Some(Tier::Minute),
            Tier::Day => Some(Tier::Hour),
            Tier::Week => Some(Tier::Day),
        }
    }

    /// The start of this tier's bucket holding `expr` (a UTC DateTime), in
    /// SQL both 18.16 and modern servers accept. Weeks are ISO weeks,
    /// starting on Monday.
    pub fn bucket_sql(self, expr: &str) -> String {
        match self {
            Tier::Minute => format!("toStartOfMinute({expr})"),
            Tier::Hour => format!("toStartOfHour({expr})"),
            Tier::Day => format!("toStartOfDay({expr})"),
            Tier::Week => format!("(toStartOfDay({expr}) - (toDayOfWeek({expr}) - 1) * 86400)"),
        }
    }

    /// The start of this tier's bucket holding `ts` (Unix seconds).
    pub fn bucket_of(self, ts: i64) -> i64 {
        match self {
            // 1970-01-01 was a Thursday: Monday-based weeks are offset by 3 days.
            Tier::Week => (ts + 3 * 86_400).div_euclid(604_800) * 604_800 - 3 * 86_400,
            _ => ts.div_euclid(self.seconds()) * self.seconds(),
        }
    }

    /// Partitions hold whole buckets of the tier above, so dropping an
    /// expired partition never leaves a higher bucket half-covered: days of
    /// minutes, Monday-weeks of hours, months (by the week's Monday) of days.
    pub fn partition_sql(self) -> &'static str {
        match self {
            Tier::Minute => "toYYYYMMDD(window_start)",
            Tier::Hour => "toMonday(window_start)",
            Tier::Day => "toYYYYMM(toMonday(window_start))",
            Tier::Week => "toYear(window_start)",
        }
    }

    pub fn table(self, kind: Kind) -> String {
        Rollup::full(kind).table(self)
    }

    pub fn view(self, kind: Kind) -> String {
        format!("{}_{}", kind.name(), self.view_suffix())
    }
}

/// The schema version of the rollup tables as this release writes them:
/// 6 made the stored tiers, 7 added the token classes, 8 the price book's
/// columns, 9 the usage by feature.
pub const SCHEMA_VERSION: u32 = 9;

/// A column summed, or folded with min/max, when rows merge.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub sql_type: &'static str,
    pub merge: &'static str,
    /// The migration that added the column: tables and views made by an
    /// earlier migration leave it out, so that migration's text (and its
    /// checksum) never changes.
    pub since: u32,
    /// What the minute panes hold for it, when they have no such column.
    pub from_panes: Option<&'static str>,
}

const fn metric(name: &'static str, sql_type: &'static str, merge: &'static str) -> Metric {
    Metric {
        name,
        sql_type,
        merge,
        since: 6,
        from_panes: None,
    }
}

/// A token class's sum, added by migration 7.
const fn token_class(name: &'static str) -> Metric {
    Metric {
        name,
        sql_type: "Int64",
        merge: "sum",
        since: 7,
        from_panes: None,
    }
}

/// A column of the price book, added by migration 8.
const fn priced(
    name: &'static str,
    sql_type: &'static str,
    merge: &'static str,
    from_panes: Option<&'static str>,
) -> Metric {
    Metric {
        name,
        sql_type,
        merge,
        since: 8,
        from_panes,
    }
}

/// The requests that carried no cost, and their tokens by class.
pub const UNPRICED_REQUESTS: &str = "unpriced_requests";
/// The unpriced token sums in the order the price book takes them: input,
/// output, cache read, cache write, reasoning.
pub const UNPRICED_TOKENS: [&str; 5] = [
    "unpriced_input_tokens_sum",
    "unpriced_output_tokens_sum",
    "unpriced_cache_read_input_tokens_sum",
    "unpriced_cache_write_input_tokens_sum",
    "unpriced_reasoning_output_tokens_sum",
];
/// The price book's cost of the unpriced tokens, in nano-dollars.
pub const COMPUTED_COST: &str = "computed_cost_usd_nanos_sum";
/// The price versions a row's computed cost used.
pub const PRICE_VERSIONS: &str = "price_versions";

const LATENCY_METRICS: &[Metric] = &[
    metric("calls", "UInt64", "sum"),
    metric("successes", "UInt64", "sum"),
    metric("errors", "UInt64", "sum"),
    metric("rt_sum", "Float64", "sum"),
    metric("rt_min", "Float64", "min"),
    metric("rt_max", "Float64", "max"),
    metric("input_tokens_sum", "Int64", "sum"),
    metric("input_tokens_count", "UInt64", "sum"),
    metric("output_tokens_sum", "Int64", "sum"),
    metric("output_tokens_count", "UInt64", "sum"),
];

const USAGE_METRICS: &[Metric] = &[
    metric("requests", "UInt64", "sum"),
    metric("input_tokens_sum", "Int64", "sum"),
    metric("output_tokens_sum", "Int64", "sum"),
    metric("cost_usd_nanos_sum", "Int64", "sum"),
    token_class("cache_read_input_tokens_sum"),
    token_class("cache_write_input_tokens_sum"),
    token_class("reasoning_output_tokens_sum"),
    priced(UNPRICED_REQUESTS, "Int64", "sum", None),
    priced(UNPRICED_TOKENS[0], "Int64", "sum", None),
    priced(UNPRICED_TOKENS[1], "Int64", "sum", None),
    priced(UNPRICED_TOKENS[2], "Int64", "sum", None),
    priced(UNPRICED_TOKENS[3], "Int64", "sum", None),
    priced(UNPRICED_TOKENS[4], "Int64", "sum", None),
    // Priced per row from the unpriced sums (see `super::pricing`); the
    // panes carry no cost for them.
    priced(COMPUTED_COST, "Int64", "sum", Some("toInt64(0)")),
    priced(
        PRICE_VERSIONS,
        "Array(String)",
        "groupUniqArrayArray",
        Some("emptyArrayString()"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Latency,
    Usage,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Latency, Kind::Usage];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Usage => "usage",
        }
    }

    pub fn panes_table(self) -> String {
        format!("{}_panes", self.name())
    }

    /// The dimensions a row is keyed by, after `window_start`.
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            Kind::Latency => &[
                "tenant_id",
                "model_id",
                "provider",
                "tool",
                "parameter_hash",
            ],
            Kind::Usage => &["tenant_id", "model_id", "provider", "feature"],
        }
    }

    /// Descriptive columns that follow the key (any value of the group).
    pub fn attributes(self) -> &'static [&'static str] {
        match self {
            Kind::Latency => &["parameters"],
            Kind::Usage => &[],
        }
    }

    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Kind::Latency => LATENCY_METRICS,
            Kind::Usage => USAGE_METRICS,
        }
    }

    /// The metrics the tables had after migration `version`.
    pub fn metrics_as_of(self, version: u32) -> impl Iterator<Item = &'static Metric> {
        self.metrics().iter().filter(move |m| m.since <= version)
    }

    /// Whether rows carry a response-time sketch.
    pub fn has_sketch(self) -> bool {
        self == Kind::Latency
    }
}

/// Which dimensions a stored rollup keeps. `Full` keeps every dimension;
/// the others are the same rows merged across tenants and parameter sets,
/// stored because the questions asked most (a model's or a model × tool's
/// trend, the top models) would otherwise merge hundreds of sketches per
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grouping {
    Full,
    ModelTool,
    Model,
    /// Everything merged: one row per window (live panels).
    Overall,
    /// Usage per tenant and feature, merged across models and providers
    /// (cost by feature over months). Since migration 9.
    Feature,
}

/// One stored rollup: a kind and what it is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rollup {
    pub kind: Kind,
    pub grouping: Grouping,
}

impl Rollup {
    pub const fn full(kind: Kind) -> Self {
        Self {
            kind,
            grouping: Grouping::Full,
        }
    }

    /// The stored rollups that migration `version` had made, with their
    /// tiers.
    pub fn all_as_of(version: u32) -> impl Iterator<Item = (Rollup, &'static [Tier])> {
        Self::all()
            .into_iter()
            .filter(move |(r, _)| r.since() <= version)
    }

    /// The migration that made this rollup's tables.
    pub fn since(self) -> u32 {
        match self.grouping {
            Grouping::Feature => 9,
            _ => 6,
        }
    }

    /// Every stored rollup, each with the tiers it is kept at, in the order
    /// they are computed (a grouped rollup reads the full one's tier).
    pub fn all() -> [(Rollup, &'static [Tier]); 6] {
        [
            (Rollup::full(Kind::Latency), &Tier::ALL),
            (Rollup::full(Kind::Usage), &Tier::ALL),
            (
                Rollup {
                    kind: Kind::Latency,
                    grouping: Grouping::ModelTool,
                },
                &[Tier::Hour, Tier::Day, Tier::Week],
            ),
            (
                Rollup {
                    kind: Kind::Latency,
                    grouping: Grouping::Model,
                },
                &[Tier::Day, Tier::Week],
            ),
            (
                Rollup {
                    kind: Kind::Latency,
                    grouping: Grouping::Overall,
                },
                &[Tier::Minute, Tier::Hour],
            ),
            (
                Rollup {
                    kind: Kind::Usage,
                    grouping: Grouping::Feature,
                },
                &[Tier::Day, Tier::Week],
            ),
        ]
    }

    /// The analysts' view of this rollup at `tier`; the by-model rollup has
    /// none (it serves `top_models_daily`).
    pub fn view(self, tier: Tier) -> Option<String> {
        let prefix = match self.grouping {
            Grouping::Full => return Some(tier.view(self.kind)),
            Grouping::ModelTool => "performance",
            Grouping::Model => return None,
            Grouping::Overall => "overall",
            Grouping::Feature => "usage_by_feature",
        };
        Some(format!("{prefix}_{}", tier.view_suffix()))
    }

    pub fn dimensions(self) -> &'static [&'static str] {
        match self.grouping {
            Grouping::Full => self.kind.dimensions(),
            Grouping::ModelTool => &["model_id", "provider", "tool"],
            Grouping::Model => &["model_id", "provider"],
            Grouping::Overall => &[],
            Grouping::Feature => &["tenant_id", "feature"],
        }
    }

    pub fn attributes(self) -> &'static [&'static str] {
        match self.grouping {
            Grouping::Full => self.kind.attributes(),
            _ => &[],
        }
    }

    /// The sorting key after the dimensions that lead it: the filters
    /// asked most (tenant, model, tool) first, then time, so a query for
    /// one model over a month reads that model's rows only.
    pub fn order_by(self) -> Vec<&'static str> {
        let lead: &[&str] = match (self.grouping, self.kind) {
            (Grouping::Full, _) => &["tenant_id", "model_id"],
            (Grouping::ModelTool, _) => &["model_id", "tool"],
            (Grouping::Model, _) => &["model_id"],
            (Grouping::Overall, _) => &[],
            (Grouping::Feature, _) => &["tenant_id", "feature"],
        };
        let mut key = lead.to_vec();
        key.push("window_start");
        key.extend(self.dimensions().iter().filter(|d| !lead.contains(d)));
        key
    }

    pub fn table(self, tier: Tier) -> String {
        let group = match self.grouping {
            Grouping::Full => "rollup",
            Grouping::ModelTool => "by_model_tool",
            Grouping::Model => "by_model",
            Grouping::Overall => "overall",
            Grouping::Feature => "by_feature",
        };
        format!("{}_{group}_{}", self.kind.name(), tier.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        // 2026-12-02 13:00 UTC is a Wednesday; its week starts Monday 11-30.
        assert_eq!(Tier::Week.bucket_of(1_796_216_400), 1_795_996_800);
        assert_eq!(Tier::Week.bucket_of(1_795_996_800), 1_795_996_800);
        assert_eq!(Tier::Week.bucket_of(1_795_996_799), 1_795_996_800 - 604_800);
        assert_eq!(Tier::Hour.bucket_of(3_601), 3_600);
        assert_eq!(Tier::Minute.bucket_of(-1), -60);
    }
}
