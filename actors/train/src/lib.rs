//! spore-train: what a spored node trains. A small GPT written for burn (any backend), its
//! declarative config (the native artifact `spore_gpt_config`), the built-in corpus and split,
//! the training loop with the val_bpb metric, the report format a training child prints, and the
//! built-in proposer that searches the config space.
//!
//! A training run happens in a child process (`spored train`, see [`child`]); the node's
//! ExperimentRunner starts it, watches it and reads its report.

pub mod child;
pub mod config;
pub mod data;
pub mod diff;
pub mod fused;
pub mod model;
pub mod muon;
pub mod prepare;
pub mod proposer;
pub mod report;
pub mod rng;
pub mod train;

pub use config::{ConfigError, RunConfig};
pub use data::Dataset;
