//! How the CLI prints an answer: an aligned table (the default), CSV, or
//! the JSON as served. The rows are the answer's `rows`, `models` or
//! `tiers` array, or the object itself; nested values print as JSON.

use std::fmt::Write;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The answer's list of rows.
fn rows(answer: &Value) -> Vec<&serde_json::Map<String, Value>> {
    for key in ["rows", "models", "tiers", "top_pairs"] {
        if let Some(Value::Array(items)) = answer.get(key) {
            return items.iter().filter_map(Value::as_object).collect();
        }
    }
    answer.as_object().into_iter().collect()
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let s = format!("{f:.3}");
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub fn render(answer: &Value, format: Format) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(answer).expect("json") + "\n";
    }
    let rows = rows(answer);
    let mut columns: Vec<&str> = Vec::new();
    for row in &rows {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(*c).map(cell).unwrap_or_default())
                .collect()
        })
        .collect();
    let mut out = String::new();
    match format {
        Format::Csv => {
            let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
            let _ = writeln!(out, "{}", header.join(","));
            for row in &table {
                let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
                let _ = writeln!(out, "{}", fields.join(","));
            }
        }
        _ => {
            if rows.is_empty() {
                return "(no rows)\n".into();
            }
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<&str>| -> String {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            let _ = writeln!(out, "{}", line(columns.clone()));
            for row in &table {
                let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_and_csv() {
        let answer = json!({"rows": [
            {"model_id": "a,b", "total": 3, "cost": 1.5},
            {"model_id": "c", "total": 12, "cost": 0.25, "extra": null}
        ]});
        assert_eq!(
            render(&answer, Format::Table),
            "model_id  total  cost  extra\na,b       3      1.5\nc         12     0.25\n"
        );
        assert_eq!(
            render(&answer, Format::Csv),
            "model_id,total,cost,extra\n\"a,b\",3,1.5,\nc,12,0.25,\n"
        );
        assert_eq!(render(&json!({"rows": []}), Format::Table), "(no rows)\n");
    }
}
