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

    /// Prints the table cut to the terminal's width (none when stdout is not a terminal and
    /// `COLUMNS` is not set).
    pub fn print(&self) {
        spore_actors::console::say_raw(format_args!("{}", self.render(terminal_width())));
    }

    /// The table as text, each row at most `fit` columns wide when given (wide characters
    /// count two columns, as a terminal shows them).
    pub fn render(&self, fit: Option<usize>) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| clean(c)).collect())
            .collect();
        let mut widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.width()))
                    .chain([self.headers[i].width()])
                    .max()
                    .unwrap_or(0)
                    .min(self.widths[i].max(self.headers[i].width()))
            })
            .collect();
        if let Some(fit) = fit {
            // narrow the widest column a step at a time until the row fits (or all are narrow)
            let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
            while total(&widths) > fit {
                let (i, widest) = widths
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, w)| **w)
                    .map(|(i, w)| (i, *w))
                    .unwrap_or((0, 0));
                if widest <= 6 {
                    break;
                }
                widths[i] = widest - 1;
            }
        }
        let mut out = String::new();
        let mut line = |cols: Vec<&str>| {
            let parts: Vec<String> = cols
                .iter()
                .zip(&widths)
                .map(|(c, w)| pad(&cut(c, *w), *w))
                .collect();
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        line(self.headers.clone());
        let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(rules.iter().map(String::as_str).collect());
        for row in &cells {
            line(row.iter().map(String::as_str).collect());
        }
        out
    }
}

use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// `text` cut to `max` terminal columns, with `…` where it was cut.
fn cut(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    // sequences (emoji with variation selectors) can be wider than their characters' sum
    while !out.is_empty() && out.width() + 1 > max {
        out.pop();
    }
    out.push('…');
    out
}

/// `text` padded with spaces to `width` terminal columns.
fn pad(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width.saturating_sub(text.width())))
}

/// The terminal's width in columns: stdout's window size, else `COLUMNS`, else none.
pub fn terminal_width() -> Option<usize> {
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills the winsize it is given.
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return Some(size.ws_col as usize);
        }
    }
    std::env::var("COLUMNS")
        .ok()?
        .parse()
        .ok()
        .filter(|c| *c > 0)
}

pub use spore_actors::console::clean;

/// First `n` characters of an id (ids are hex; any other text is cut at a character boundary).
pub fn short(id: &str, n: usize) -> &str {
    match id.char_indices().nth(n) {
        Some((end, _)) => &id[..end],
        None => id,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(&[("CID", 12), ("Node", 8), ("Description", 50)]);
        t.row(vec![
            "abc".into(),
            "n1".into(),
            "学习率 0.003 → 0.002 (日本語)".into(),
        ]);
        t.row(vec![
            "defghi".into(),
            "n2".into(),
            "plain ascii description that is long".into(),
        ]);
        t
    }

    #[test]
    fn wide_characters_take_two_columns_and_rows_line_up() {
        let text = table().render(None);
        let lines: Vec<&str> = text.lines().collect();
        let at = |line: &str| line[..line.find(['学', 'p']).unwrap()].width();
        assert_eq!(at(lines[2]), at(lines[3]), "{text}");
    }

    #[test]
    fn a_cut_cell_never_exceeds_its_column() {
        for text in ["❤️❤️❤️❤️❤️❤️❤️❤️", "学习率学习率学习率", "abcdefghijklmnop"]
        {
            for max in 2..10 {
                assert!(cut(text, max).width() <= max, "{text:?} at {max}");
            }
        }
    }

    #[test]
    fn rows_fit_the_terminal_width() {
        for fit in [30, 40, 60] {
            let text = table().render(Some(fit));
            for line in text.lines() {
                assert!(line.width() <= fit, "{fit}: {line:?}");
            }
            // what did not fit is cut, and says so
            assert_eq!(text.contains('…'), fit < 48, "{fit}: {text}");
        }
    }
}
