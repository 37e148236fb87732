//! Plain-text tables for the admin tool's output: a header row and left-aligned columns,
//! readable by people and easy to pick apart with `awk`.

use std::io::Write;

use crate::error::Result;

/// Writes `rows` under `headers`, each column as wide as its widest cell, indented by
/// `indent` spaces. Cells never hold tabs or newlines from the servers: they are replaced by
/// spaces so a row stays one line.
pub fn write_table(
    out: &mut dyn Write,
    indent: usize,
    headers: &[&str],
    rows: &[Vec<String>],
) -> Result<()> {
    let clean = |cell: &str| cell.replace(['\t', '\n', '\r'], " ");
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = " ".repeat(indent);
        for (i, cell) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            if last {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// One partition of a listing (`create-tablename`'s summary, `list --tablename`).
pub struct PartitionLine {
    pub id: u64,
    pub start: f64,
    pub end: f64,
    pub host: String,
    /// `None`: the host has no sibling.
    pub sibling: Option<String>,
    pub table: String,
}

/// Writes `parts` as a table indented by 2, ranges to 6 decimals, `-` for no sibling.
pub fn write_partitions(
    out: &mut dyn Write,
    parts: impl IntoIterator<Item = PartitionLine>,
) -> Result<()> {
    let rows: Vec<Vec<String>> = parts
        .into_iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                format!("{:.6}", p.start),
                format!("{:.6}", p.end),
                p.host,
                p.sibling.unwrap_or_else(|| "-".into()),
                p.table,
            ]
        })
        .collect();
    write_table(
        out,
        2,
        &["id", "start", "end", "host", "sibling", "table"],
        &rows,
    )
}

/// The hosts a command registered: id, address, sibling (`-` for none).
pub fn write_hosts(
    out: &mut dyn Write,
    hosts: &[crate::admin::create::RegisteredHost],
) -> Result<()> {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.id.to_string(),
                h.addr.to_string(),
                h.sibling
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    write_table(out, 2, &["id", "address", "sibling"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_cells_stay_on_one_line() {
        let mut out = Vec::new();
        let rows = vec![
            vec![
                "1".to_string(),
                "127.0.0.1:33061".to_string(),
                "x".to_string(),
            ],
            vec!["12".to_string(), "h".to_string(), "a\tb\nc".to_string()],
        ];
        write_table(&mut out, 2, &["id", "address", "note"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "  id  address          note\n  1   127.0.0.1:33061  x\n  12  h                a b c\n"
        );
    }
}
