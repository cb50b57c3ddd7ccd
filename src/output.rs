//! Terminal tables and small formatting helpers.

/// A plain text table: a header row and left-aligned columns, each cut to its own width.
pub struct Table {
    headers: Vec<&'static str>,
    widths: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns as (header, widest allowed).
    pub fn new(columns: &[(&'static str, usize)]) -> Table {
        Table {
            headers: columns.iter().map(|c| c.0).collect(),
            widths: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        spore_actors::console::say_raw(format_args!("{}", self.render()));
    }

    pub fn render(&self) -> String {
        let cut = |s: &str, max: usize| -> String {
            let one_line = clean(s);
            if one_line.chars().count() <= max {
                one_line
            } else {
                let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
                t.push('…');
                t
            }
        };
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&self.widths)
                    .map(|(c, w)| cut(c, *w))
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .chain([self.headers[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let mut line = |cols: Vec<&str>| {
            let parts: Vec<String> = cols
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}", w = *w))
                .collect();
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        line(self.headers.clone());
        line(
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        );
        for row in &cells {
            line(row.iter().map(String::as_str).collect());
        }
        out
    }
}

pub use spore_actors::console::clean;

/// First `n` characters of an id.
pub fn short(id: &str, n: usize) -> &str {
    &id[..n.min(id.len())]
}

/// 50300000 → 50.3M, 1200 → 1.2K.
pub fn human_count(n: i64) -> String {
    let x = n as f64;
    match n.unsigned_abs() {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", x / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", x / 1e6),
        _ => format!("{:.1}B", x / 1e9),
    }
}

/// Prints one JSON value on one line.
pub fn print_json(value: &spore_spec::Value) {
    spore_actors::say!("{}", spore_spec::json::to_wire(value));
}

/// Reading the JSON answers of `crate::query` to print them as text.
pub mod field {
    use spore_spec::Value;

    /// Member `key` as a string ("" when absent or not a string).
    pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
        v.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// Member `key` as an integer (0 when absent).
    pub fn n(v: &Value, key: &str) -> i64 {
        v.get(key).and_then(Value::as_i64).unwrap_or(0)
    }

    /// Member `key` as a number.
    pub fn f(v: &Value, key: &str) -> Option<f64> {
        match v.get(key)? {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn b(v: &Value, key: &str) -> bool {
        matches!(v.get(key), Some(Value::Bool(true)))
    }

    /// Member `key` as an array (empty when absent).
    pub fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
        match v.get(key) {
            Some(Value::Array(items)) => items,
            _ => &[],
        }
    }
}
