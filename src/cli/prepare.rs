//! `spored prepare --text FILE…`: a dataset from the user's own corpus, for a task of their own.
//!
//! The files are concatenated (each followed by a newline) and stored as
//! `<data dir>/datasets/<sha256>.txt`; that SHA-256 is the task's `dataset_cid`. Tokens are bytes
//! and the split is the built-in one, so `prepare_cid` is the same as the default task's.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use spore_spec::crypto::sha256_hex;
use spore_train::data::{Dataset, PREPARE_SPEC};

use super::Context;
use crate::data_dir::write_atomically;
use crate::output::print_json;
use spore_spec::json::{object, Value};

#[derive(clap::Args, Debug)]
pub struct PrepareArgs {
    /// Text files to train on (UTF-8 or any bytes; tokens are bytes)
    #[arg(long = "text", value_name = "FILE", required = true, num_args = 1..)]
    pub text: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: PrepareArgs) -> Result<()> {
    let mut bytes = Vec::new();
    for path in &args.text {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        bytes.extend_from_slice(&data);
        bytes.push(b'\n');
    }
    if bytes.len() < 10_000 {
        bail!(
            "the corpus has {} bytes; give at least 10,000 so that training and validation both have text",
            bytes.len()
        );
    }
    let data = Dataset::from_bytes(&bytes);
    let cid = sha256_hex(&bytes);
    let dir = ctx.data_dir.datasets();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{cid}.txt"));
    write_atomically(&path, &bytes, 0o644)?;
    let prepare_cid = sha256_hex(PREPARE_SPEC.as_bytes());
    let base = sha256_hex(&spore_train::RunConfig::baseline().to_bytes());
    if ctx.json {
        print_json(&object([
            ("dataset_cid", Value::Str(cid.clone())),
            ("prepare_cid", Value::Str(prepare_cid.clone())),
            ("path", Value::Str(path.display().to_string())),
            ("train_tokens", Value::Int(data.train.len() as i64)),
            ("val_tokens", Value::Int(data.val.len() as i64)),
        ]));
        return Ok(());
    }
    println!("dataset_cid  {cid}");
    println!("prepare_cid  {prepare_cid}");
    println!("stored       {}", path.display());
    println!(
        "tokens       {} train, {} validation (bytes)",
        data.train.len(),
        data.val.len()
    );
    println!(
        "\nA task on it: spored task create --name NAME --artifact-type {} --dataset-cid {cid} \\\n    --prepare-cid {prepare_cid} --base-code-cid {base} --time-budget 60",
        spore_train::config::ARTIFACT_TYPE
    );
    Ok(())
}
