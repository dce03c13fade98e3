//! The price book a sink prices with: read from `pricing.book` at start
//! (a broken book stops the start, naming the entry and field), and read
//! again whenever the file changes, before the next batch's tiers are
//! recomputed. A book that breaks while running is refused and the last
//! good one kept, so a typo never prices anything at zero.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use centile_events::{PriceBook, PriceBookError};

use crate::rollup::pricing::{PriceSql, MAX_VERSIONS};

/// A book that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    #[error("price book {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("price book {path}: {source}")]
    Invalid {
        path: String,
        source: Box<PriceBookError>,
    },
    #[error("price book {path}: {count} versions, at most {MAX_VERSIONS} are supported")]
    TooLarge { path: String, count: usize },
}

/// Reads and checks a book file.
pub fn read_book(path: &Path) -> Result<PriceBook, PricesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PricesError::Read {
        path: shown.clone(),
        source,
    })?;
    let book = PriceBook::parse(&text).map_err(|source| PricesError::Invalid {
        path: shown.clone(),
        source: Box::new(source),
    })?;
    if book.len() > MAX_VERSIONS {
        return Err(PricesError::TooLarge {
            path: shown,
            count: book.len(),
        });
    }
    Ok(book)
}

#[derive(Debug)]
struct Loaded {
    book: Arc<PriceBook>,
    sql: Arc<PriceSql>,
    digest: String,
    versions: usize,
    /// The file's modification time and length when it was read.
    stamp: Option<(SystemTime, u64)>,
}

/// The current book, shared by clones.
#[derive(Debug, Clone)]
pub struct Prices {
    path: Option<PathBuf>,
    loaded: Arc<Mutex<Loaded>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Prices {
    /// A fixed book (tests, and commands given a book).
    pub fn fixed(book: &PriceBook) -> Self {
        Self {
            path: None,
            loaded: Arc::new(Mutex::new(Loaded {
                book: Arc::new(book.clone()),
                sql: Arc::new(PriceSql::new(book)),
                digest: book.digest(),
                versions: book.len(),
                stamp: None,
            })),
        }
    }

    /// The book at `path` (none configured: an empty book, which leaves
    /// events without a cost at a computed cost of 0, priced by `none`).
    pub fn load(path: Option<&Path>) -> Result<Self, PricesError> {
        let Some(path) = path else {
            return Ok(Self::fixed(&PriceBook::default()));
        };
        let before = stamp(path);
        let book = read_book(path)?;
        let prices = Self::fixed(&book);
        prices.lock().stamp = before;
        tracing::info!(path = %path.display(), versions = book.len(), digest = %book.digest(), "price book loaded");
        Ok(Self {
            path: Some(path.to_owned()),
            ..prices
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The book to price with now: the file is read again if it changed
    /// since it was last read. `Err` when it changed into something that
    /// cannot be used; the last good book stays current.
    pub fn refresh(&self) -> Result<bool, PricesError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let now = stamp(path);
        if now == self.lock().stamp {
            return Ok(false);
        }
        let result = read_book(path);
        let mut loaded = self.lock();
        // Read once per change, whatever the outcome: a broken file is
        // reported once, not on every batch.
        loaded.stamp = now;
        let book = result?;
        if book.digest() != loaded.digest {
            tracing::info!(path = %path.display(), versions = book.len(), digest = %book.digest(), "price book changed");
            loaded.sql = Arc::new(PriceSql::new(&book));
            loaded.digest = book.digest();
            loaded.versions = book.len();
            loaded.book = Arc::new(book);
            return Ok(true);
        }
        Ok(false)
    }

    pub fn sql(&self) -> Arc<PriceSql> {
        self.lock().sql.clone()
    }

    /// The current book itself (the query API lists its prices).
    pub fn book(&self) -> Arc<PriceBook> {
        self.lock().book.clone()
    }

    /// The digest of the current book, as the audit records it.
    pub fn digest(&self) -> String {
        self.lock().digest.clone()
    }

    pub fn versions(&self) -> usize {
        self.lock().versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "[[prices]]\nmodel = \"m\"\nprovider = \"p\"\neffective_from = 2026-01-01\ninput = \"1\"\noutput = \"2\"\n";

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("centile-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prices.toml");
        std::fs::write(&path, ONE).unwrap();
        let prices = Prices::load(Some(&path)).unwrap();
        let first = prices.digest();
        assert_eq!(prices.versions(), 1);
        assert!(!prices.refresh().unwrap(), "unchanged");

        std::fs::write(&path, ONE.replace("\"2\"", "\"2.5\"") + "\n").unwrap();
        assert!(prices.refresh().unwrap(), "a new price is a new book");
        assert_ne!(prices.digest(), first);
        let second = prices.digest();

        std::fs::write(&path, "[[prices]]\nmodel = \"m\"\n# the rest went missing").unwrap();
        let err = prices.refresh().unwrap_err().to_string();
        assert!(
            err.contains("field `provider`: missing required field"),
            "{err}"
        );
        assert_eq!(prices.digest(), second, "the last good book stays");
        assert!(!prices.refresh().unwrap(), "reported once");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_shipped_example_book_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prices.example.toml");
        let book = read_book(&path).expect("deploy/prices.example.toml");
        assert!(book.len() >= 8, "a price for every example catalog model");
        assert!(book.version_at("gpt-4o", "openai", 1_796_169_600).is_some());
    }

    #[test]
    fn a_broken_book_stops_the_start() {
        let err = Prices::load(Some(Path::new("/nonexistent/prices.toml"))).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("price book /nonexistent/prices.toml:"));
    }
}
