//! `spored verify <file>`: kind, id and validity (or the exact reason) of each signed object.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use spore_spec::json::{object, Value};
use spore_spec::object::SignedObject;

use super::Context;
use crate::output::print_json;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// A JSON document or JSONL (one object or message envelope per line); '-' reads stdin
    pub file: PathBuf,
}

/// Reads `file` ('-' = stdin) fully.
pub fn read_input(file: &std::path::Path) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        return Ok(buf);
    }
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

/// The documents in `bytes`: the whole input if it is one JSON value, else one per non-empty
/// line. Each with its 1-based line number.
pub fn documents(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    if spore_spec::json::parse(bytes).is_ok() {
        return vec![(1, bytes)];
    }
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| line.iter().any(|b| !b.is_ascii_whitespace()))
        .map(|(i, line)| (i + 1, line))
        .collect()
}

pub fn run(ctx: &Context, args: VerifyArgs) -> Result<()> {
    let bytes = read_input(&args.file)?;
    let docs = documents(&bytes);
    anyhow::ensure!(!docs.is_empty(), "{} holds no JSON", args.file.display());
    let mut invalid = 0;
    for (line, doc) in docs {
        let (kind, id, verdict) = match SignedObject::parse(doc) {
            Err(e) => ("unknown", String::new(), Err(e.to_string())),
            Ok(object) => (
                object.kind(),
                object.claimed_id().to_string(),
                object.verify().map_err(|e| e.to_string()),
            ),
        };
        invalid += verdict.is_err() as usize;
        if ctx.json {
            print_json(&object([
                ("line", Value::Int(line as i64)),
                ("kind", Value::Str(kind.into())),
                ("id", Value::Str(id)),
                ("valid", Value::Bool(verdict.is_ok())),
                ("reason", verdict.err().map_or(Value::Null, Value::Str)),
            ]));
        } else {
            match verdict {
                Ok(()) => println!("line {line}: {kind} {id} valid"),
                Err(reason) => println!("line {line}: {kind} {id} INVALID: {reason}"),
            }
        }
    }
    if invalid > 0 {
        anyhow::bail!("{invalid} invalid object(s)");
    }
    Ok(())
}
