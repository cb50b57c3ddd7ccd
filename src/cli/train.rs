//! `spored train`: one training run of a config artifact, in this process. The node's
//! ExperimentRunner starts it as a child and reads its output; users can run it by hand.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use spore_train::child::{self, ChildArgs};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The config artifact (TOML) to train
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Training budget in seconds
    #[arg(long, default_value_t = 60.0)]
    pub budget: f64,
    /// Train exactly this many optimiser steps (a verification rerun)
    #[arg(long)]
    pub steps: Option<usize>,
    /// Validation tokens to score (default: the default task's 65,536)
    #[arg(long)]
    pub eval_tokens: Option<usize>,
    /// Train on this corpus file instead of the built-in one
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Tokenize with this preparation document (`spored prepare --bpe`) instead of bytes
    #[arg(long, value_name = "FILE")]
    pub prepare: Option<PathBuf>,
    /// Refuse configs whose estimated training memory is larger (MiB)
    #[arg(long, default_value_t = 8192)]
    pub memory_limit_mb: u64,
    /// cpu, cuda or auto (cuda when built with it and a GPU is present)
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Share of the machine (percent): at most this share of each micro-batch goes through one
    /// forward pass (the rest follows in chunks: less memory, the same total batch)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub resource: u8,
    /// Keep the GPU backend's compiled kernels and autotune results here (the node passes its
    /// data dir's `gpu-kernels`)
    #[arg(long, value_name = "DIR")]
    pub kernel_cache: Option<PathBuf>,
    /// Train on this GPU (`nvidia-smi`'s index; default: the first visible one)
    #[arg(long, value_name = "INDEX")]
    pub gpu: Option<u32>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let child_args = ChildArgs {
        config: args.config,
        budget_s: args.budget,
        steps: args.steps,
        eval_tokens: args.eval_tokens,
        corpus: args.corpus,
        prepare: args.prepare,
        memory_limit_mb: args.memory_limit_mb,
        device: args.device,
        resource: args.resource,
        kernel_cache: args.kernel_cache,
        gpu: args.gpu,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    child::run(&child_args, &mut out)?;
    Ok(())
}
