//! Input files: NDJSON or CSV, plain or gzip, or standard input spooled to
//! a temporary file first (the import reads every input twice: once to
//! validate it and take its digest, once to publish it).

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::convert::csv_object;
use crate::{
    gateway::{body::type_name, EventKind},
    ProducerError,
};

/// How an input's rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// By the file name: `.csv` or `.csv.gz` is CSV, anything else (and
    /// standard input) NDJSON.
    Auto,
    /// One JSON object per line; blank lines are skipped.
    Ndjson,
    /// A header row of field names, then one event per row.
    Csv,
}

/// One input, ready to be read any number of times.
#[derive(Debug)]
pub struct Input {
    /// As the user named it (`-` for standard input), for messages.
    pub name: String,
    path: PathBuf,
    pub format: Format,
    /// Keeps standard input's spool file alive as long as the input.
    _spool: Option<tempfile::NamedTempFile>,
}

impl Input {
    /// Names `name` (`-` reads standard input to its end, into a temporary
    /// file), resolving `format` (never [`Format::Auto`] afterwards).
    pub fn open(name: &str, format: Format) -> Result<Self, ProducerError> {
        if name == "-" {
            let mut spool = tempfile::NamedTempFile::new().map_err(|e| read_error(name, e))?;
            io::copy(&mut io::stdin().lock(), spool.as_file_mut())
                .map_err(|e| read_error(name, e))?;
            return Ok(Self::spooled(name, spool, format));
        }
        let path = PathBuf::from(name);
        File::open(&path).map_err(|e| read_error(name, e))?;
        Ok(Self {
            name: name.to_owned(),
            format: resolve(format, &path),
            path,
            _spool: None,
        })
    }

    /// An input whose bytes are already in `spool` (standard input).
    pub fn spooled(name: &str, spool: tempfile::NamedTempFile, format: Format) -> Self {
        Self {
            name: name.to_owned(),
            path: spool.path().to_owned(),
            format: match format {
                Format::Auto => Format::Ndjson,
                other => other,
            },
            _spool: Some(spool),
        }
    }

    /// The decompressed bytes: gzip is recognised by its magic number, so
    /// `.gz` files and gzipped standard input both work.
    fn bytes(&self) -> Result<Box<dyn Read + Send>, ProducerError> {
        let mut file =
            BufReader::new(File::open(&self.path).map_err(|e| read_error(&self.name, e))?);
        let head = file.fill_buf().map_err(|e| read_error(&self.name, e))?;
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Box::new(flate2::bufread::MultiGzDecoder::new(file)))
        } else {
            Ok(Box::new(file))
        }
    }

    /// Reads the rows from the start.
    pub fn rows(&self, kind: EventKind) -> Result<Rows, ProducerError> {
        let reader = BufReader::with_capacity(
            256 * 1024,
            Hashing {
                inner: self.bytes()?,
                hasher: Sha256::new(),
            },
        );
        let parser = match self.format {
            Format::Csv => {
                let mut csv = csv::ReaderBuilder::new()
                    .flexible(true)
                    .has_headers(false)
                    .from_reader(reader);
                let mut header = csv::StringRecord::new();
                let header = match csv.read_record(&mut header) {
                    Ok(true) => header.iter().map(|h| h.trim().to_owned()).collect(),
                    Ok(false) => Vec::new(),
                    Err(e) => return Err(csv_error(&self.name, e)),
                };
                Parser::Csv {
                    reader: csv,
                    header,
                    record: csv::StringRecord::new(),
                }
            }
            Format::Ndjson | Format::Auto => Parser::Ndjson {
                reader,
                line: 0,
                buffer: Vec::new(),
            },
        };
        Ok(Rows {
            name: self.name.clone(),
            kind,
            parser,
            index: 0,
        })
    }
}

fn resolve(format: Format, path: &Path) -> Format {
    match format {
        Format::Auto => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let name = name.strip_suffix(".gz").unwrap_or(&name);
            if name.ends_with(".csv") {
                Format::Csv
            } else {
                Format::Ndjson
            }
        }
        other => other,
    }
}

fn read_error(name: &str, source: io::Error) -> ProducerError {
    ProducerError::Input {
        path: name.to_owned(),
        source,
    }
}

fn csv_error(name: &str, error: csv::Error) -> ProducerError {
    match error.into_kind() {
        csv::ErrorKind::Io(source) => read_error(name, source),
        other => read_error(name, io::Error::other(format!("{other:?}"))),
    }
}

/// Hashes every byte read through it.
struct Hashing {
    inner: Box<dyn Read + Send>,
    hasher: Sha256,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl Hashing {
    /// Reads what is left and returns the digest of everything.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex::encode(&self.hasher.finalize()[..8]))
    }
}

enum Parser {
    Ndjson {
        reader: BufReader<Hashing>,
        line: u64,
        buffer: Vec<u8>,
    },
    Csv {
        reader: csv::Reader<BufReader<Hashing>>,
        header: Vec<String>,
        record: csv::StringRecord,
    },
}

/// One row of an input.
#[derive(Debug)]
pub struct Row {
    /// The line it starts on, from 1 (a CSV header is line 1).
    pub line: u64,
    /// Its position among the input's rows, from 0.
    pub index: u64,
    /// The row as the gateway's JSON object, or why it is not one.
    pub object: Result<Map<String, Value>, RowProblem>,
}

/// A problem found before the row reached the event converter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Empty for the row as a whole.
    pub field: String,
    pub reason: String,
}

impl RowProblem {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The rows of one input, in order.
pub struct Rows {
    name: String,
    kind: EventKind,
    parser: Parser,
    index: u64,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("name", &self.name)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Rows {
    /// The next row, `None` at the end. Only failing to read the input is
    /// an error; a malformed row is a [`Row`] with a problem.
    pub fn next_row(&mut self) -> Result<Option<Row>, ProducerError> {
        let row = match &mut self.parser {
            Parser::Ndjson {
                reader,
                line,
                buffer,
            } => loop {
                buffer.clear();
                let n = reader
                    .read_until(b'\n', buffer)
                    .map_err(|e| read_error(&self.name, e))?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                if buffer.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let object = match serde_json::from_slice::<Value>(buffer) {
                    Ok(Value::Object(map)) => Ok(map),
                    Ok(other) => Err(RowProblem::new(
                        "",
                        format!("expected an event object, got {}", type_name(&other)),
                    )),
                    Err(e) => Err(RowProblem::new("", format!("invalid json: {e}"))),
                };
                break Row {
                    line: *line,
                    index: self.index,
                    object,
                };
            },
            Parser::Csv {
                reader,
                header,
                record,
            } => loop {
                let line = reader.position().line();
                match reader.read_record(record) {
                    Ok(false) => return Ok(None),
                    Ok(true) => {
                        if record.iter().all(|cell| cell.trim().is_empty()) {
                            continue;
                        }
                        let line = record.position().map_or(line, csv::Position::line);
                        break Row {
                            line,
                            index: self.index,
                            object: csv_object(self.kind, header, record),
                        };
                    }
                    Err(e) => {
                        let line = e.position().map_or(line, csv::Position::line);
                        match e.into_kind() {
                            csv::ErrorKind::Io(source) => {
                                return Err(read_error(&self.name, source))
                            }
                            csv::ErrorKind::Utf8 { err, .. } => {
                                break Row {
                                    line,
                                    index: self.index,
                                    object: Err(RowProblem::new(
                                        "",
                                        format!("invalid UTF-8 in CSV row: {err}"),
                                    )),
                                }
                            }
                            other => {
                                break Row {
                                    line,
                                    index: self.index,
                                    object: Err(RowProblem::new(
                                        "",
                                        format!("invalid CSV row: {other:?}"),
                                    )),
                                }
                            }
                        }
                    }
                }
            },
        };
        self.index += 1;
        Ok(Some(row))
    }

    /// Reads the rest of the input and returns its digest: the first 16
    /// hex digits of the SHA-256 of its (decompressed) bytes.
    pub fn digest(self) -> Result<String, ProducerError> {
        let hashing = match self.parser {
            Parser::Ndjson { reader, .. } => drain(reader),
            Parser::Csv { reader, .. } => drain(reader.into_inner()),
        };
        hashing
            .and_then(Hashing::finish)
            .map_err(|e| read_error(&self.name, e))
    }
}

/// What a buffered reader had read ahead is hashed already; reading the
/// buffer's rest through it keeps the digest over the whole input.
fn drain(mut reader: BufReader<Hashing>) -> io::Result<Hashing> {
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.into_inner())
}
