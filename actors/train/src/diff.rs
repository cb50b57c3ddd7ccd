//! Unified diffs in the format of Python's `difflib.unified_diff(..., lineterm="")` joined with
//! `\n`, which is what a record's `diff` field holds (reference §g.3 step 7).

/// The unified diff from `old` to `new` with 3 lines of context, `name` as both file names.
pub fn unified(old: &str, new: &str, name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    let hunks = group(&ops, 3);
    if hunks.is_empty() {
        return String::new();
    }
    let mut out = vec![format!("--- {name}"), format!("+++ {name}")];
    for hunk in hunks {
        let (a0, a1) = (
            hunk.first().map_or(0, |o| o.a),
            hunk.last().map_or(0, |o| o.a_end()),
        );
        let (b0, b1) = (
            hunk.first().map_or(0, |o| o.b),
            hunk.last().map_or(0, |o| o.b_end()),
        );
        out.push(format!("@@ -{} +{} @@", range(a0, a1), range(b0, b1)));
        for op in hunk {
            match op.kind {
                Kind::Equal => out.extend(a[op.a..op.a_end()].iter().map(|l| format!(" {l}"))),
                Kind::Delete => out.extend(a[op.a..op.a_end()].iter().map(|l| format!("-{l}"))),
                Kind::Insert => out.extend(b[op.b..op.b_end()].iter().map(|l| format!("+{l}"))),
            }
        }
    }
    out.join("\n")
}

/// difflib's `_format_range_unified`.
fn range(start: usize, stop: usize) -> String {
    let mut beginning = start + 1;
    let length = stop - start;
    if length == 1 {
        return beginning.to_string();
    }
    if length == 0 {
        beginning -= 1;
    }
    format!("{beginning},{length}")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Equal,
    Delete,
    Insert,
}

#[derive(Clone, Copy, Debug)]
struct Op {
    kind: Kind,
    a: usize,
    b: usize,
    len: usize,
}

impl Op {
    fn a_end(&self) -> usize {
        if self.kind == Kind::Insert {
            self.a
        } else {
            self.a + self.len
        }
    }
    fn b_end(&self) -> usize {
        if self.kind == Kind::Delete {
            self.b
        } else {
            self.b + self.len
        }
    }
}

/// A line-level edit script from the longest common subsequence (inputs are small configs).
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<Op> = Vec::new();
    let mut push = |kind: Kind, a: usize, b: usize| match ops.last_mut() {
        Some(last) if last.kind == kind => last.len += 1,
        _ => ops.push(Op { kind, a, b, len: 1 }),
    };
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            push(Kind::Equal, i, j);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            push(Kind::Delete, i, j);
            i += 1;
        } else {
            push(Kind::Insert, i, j);
            j += 1;
        }
    }
    ops
}

/// difflib's `get_grouped_opcodes`: hunks of changes with `context` equal lines around them.
fn group(ops: &[Op], context: usize) -> Vec<Vec<Op>> {
    if !ops.iter().any(|o| o.kind != Kind::Equal) {
        return Vec::new();
    }
    let mut ops = ops.to_vec();
    if let Some(first) = ops.first_mut() {
        if first.kind == Kind::Equal && first.len > context {
            let cut = first.len - context;
            first.a += cut;
            first.b += cut;
            first.len = context;
        }
    }
    if let Some(last) = ops.last_mut() {
        if last.kind == Kind::Equal && last.len > context {
            last.len = context;
        }
    }
    let mut groups = Vec::new();
    let mut current = Vec::new();
    for op in ops {
        if op.kind == Kind::Equal && op.len > 2 * context {
            current.push(Op { len: context, ..op });
            groups.push(std::mem::take(&mut current));
            let skip = op.len - context;
            current.push(Op {
                a: op.a + skip,
                b: op.b + skip,
                len: context,
                ..op
            });
        } else {
            current.push(op);
        }
    }
    if !(current.is_empty() || current.len() == 1 && current[0].kind == Kind::Equal) {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn matches_difflib_output() {
        // python3: "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(),
        //          fromfile="config.toml", tofile="config.toml", lineterm=""))
        let a = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n";
        let b = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\nl\n";
        let want = "--- config.toml\n+++ config.toml\n@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n@@ -9,3 +9,4 @@\n i\n j\n k\n+l";
        assert_eq!(unified(a, b, "config.toml"), want);
        assert_eq!(unified(a, a, "config.toml"), "");
        let want = "--- x\n+++ x\n@@ -1 +1 @@\n-one\n+two";
        assert_eq!(unified("one", "two", "x"), want);
    }
}
