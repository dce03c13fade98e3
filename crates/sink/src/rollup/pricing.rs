//! The price book in SQL: which version prices a row, and the cost of the
//! row's unpriced token sums, in the same integer arithmetic as
//! [`centile_events::TokenPrices::cost_nanos`].
//!
//! ClickHouse 18.16 has no ASOF JOIN and no dictionaries we could load
//! portably, so the book is spliced into the statement: a `multiIf` gives
//! the 1-based index of the version in effect (0: none), and one array per
//! token class holds the prices, indexed by it. Versions hold from 00:00
//! UTC of their date, so a minute, hour or day row is always within one
//! version; a week row is priced the same way when one version covers the
//! whole week, and is the sum of its days' costs otherwise.

use centile_events::PriceBook;

/// At most this many versions go into one statement: the book is spliced
/// into the SQL, and ClickHouse parses at most 256 KiB of it.
pub const MAX_VERSIONS: usize = 1_000;

/// The version id rows record when no version prices a model.
pub const NO_PRICE: &str = "none";

/// A ClickHouse string literal: quotes and backslashes escaped, and `?`
/// doubled because the client reads a lone `?` as a bind placeholder.
pub fn literal(value: &str) -> String {
    format!(
        "'{}'",
        value
            .replace('\\', "\\\\")
            .replace('\'', "\\'")
            .replace('?', "??")
    )
}

/// SQL made for the ClickHouse client as plain SQL for any other client
/// (`centile-sink compact-sql` prints it): the only `??` in generated SQL
/// are [`literal`]'s doubled `?`, which other clients would keep doubled.
pub fn for_other_clients(sql: &str) -> String {
    sql.replace("??", "?")
}

/// The book's versions as SQL fragments.
#[derive(Debug, Clone, Default)]
pub struct PriceSql {
    /// `(model_id, provider, effective_from secs)` per 1-based index.
    versions: Vec<(String, String, i64)>,
    /// The version ids, `'none'` first (index 0).
    ids: Vec<String>,
    /// Per rate (fresh input, cache read, cache write, plain output,
    /// reasoning): pico-dollars per token, 0 first.
    rates: [Vec<i64>; 5],
}

impl PriceSql {
    pub fn new(book: &PriceBook) -> Self {
        let mut sql = Self {
            ids: vec![NO_PRICE.to_owned()],
            rates: Default::default(),
            versions: Vec::new(),
        };
        for rate in &mut sql.rates {
            rate.push(0);
        }
        for v in book.versions() {
            sql.versions.push((
                v.model_id.clone(),
                v.provider.clone(),
                v.effective_from_secs,
            ));
            sql.ids.push(v.id());
            for (list, rate) in sql.rates.iter_mut().zip(v.prices.rates()) {
                list.push(rate);
            }
        }
        sql
    }

    /// The 1-based index of the version in effect for the row's
    /// `model_id` and `provider` at `at` (a UTC DateTime expression), or 0.
    pub fn index(&self, at: &str) -> String {
        if self.versions.is_empty() {
            return "toUInt32(0)".into();
        }
        // Latest first, so the first condition that holds is the version
        // in effect.
        let mut order: Vec<usize> = (0..self.versions.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(self.versions[*i].2));
        let mut branches = Vec::new();
        for i in order {
            let (model, provider, from) = &self.versions[i];
            branches.push(format!(
                "model_id = {} AND provider = {} AND {at} >= toDateTime({from}, 'UTC'), {}",
                literal(model),
                literal(provider),
                i + 1
            ));
        }
        format!("toUInt32(multiIf({}, 0))", branches.join(", "))
    }

    /// The version id at `index` (an index expression).
    pub fn id(&self, index: &str) -> String {
        let ids: Vec<String> = self.ids.iter().map(|id| literal(id)).collect();
        format!("arrayElement([{}], {index} + 1)", ids.join(", "))
    }

    /// The cost in nano-dollars of the token sums `[input, output,
    /// cache_read, cache_write, reasoning]` (Int64 expressions) at the
    /// version `index`: rounded half-up once, with each product split into
    /// thousands and a remainder as the Rust side does.
    pub fn cost(&self, index: &str, sums: [&str; 5]) -> String {
        let [input, output, cache_read, cache_write, reasoning] = sums;
        let billed = [
            format!("greatest({input} - {cache_read} - {cache_write}, toInt64(0))"),
            format!("greatest({cache_read}, toInt64(0))"),
            format!("greatest({cache_write}, toInt64(0))"),
            format!("greatest({output} - {reasoning}, toInt64(0))"),
            format!("greatest({reasoning}, toInt64(0))"),
        ];
        let mut whole = Vec::new();
        let mut rest = Vec::new();
        for (tokens, rates) in billed.iter().zip(&self.rates) {
            let list: Vec<String> = rates.iter().map(i64::to_string).collect();
            let rate = format!("toInt64(arrayElement([{}], {index} + 1))", list.join(", "));
            whole.push(format!("intDiv({tokens}, 1000) * {rate}"));
            rest.push(format!("({tokens} % 1000) * {rate}"));
        }
        format!(
            "toInt64({} + intDiv({} + 500, 1000))",
            whole.join(" + "),
            rest.join(" + ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_sql_keeps_a_question_mark_single() {
        let sql = format!("SELECT {}", literal("what? it's"));
        assert_eq!(sql, "SELECT 'what?? it\\'s'");
        assert_eq!(for_other_clients(&sql), "SELECT 'what? it\\'s'");
    }

    #[test]
    fn an_empty_book_prices_nothing() {
        let sql = PriceSql::new(&PriceBook::default());
        assert_eq!(sql.index("b"), "toUInt32(0)");
        assert_eq!(sql.id("i"), "arrayElement(['none'], i + 1)");
    }

    #[test]
    fn the_latest_version_is_tried_first() {
        let book = PriceBook::parse(
            "[[prices]]\nmodel = \"m'x\"\nprovider = \"p\"\neffective_from = 2026-01-01\ninput = 1\noutput = 2\n\
             [[prices]]\nmodel = \"m'x\"\nprovider = \"p\"\neffective_from = 2026-06-01\ninput = 3\noutput = 4\n",
        )
        .unwrap();
        let index = PriceSql::new(&book).index("b");
        let june = index.find("1780272000").unwrap();
        let january = index.find("1767225600").unwrap();
        assert!(june < january, "{index}");
        assert!(index.contains("model_id = 'm\\'x'"), "{index}");
    }
}
