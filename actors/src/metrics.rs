//! What a node counts about itself for operators (`/metrics` of the explorer, Prometheus text):
//! objects ingested by origin and outcome (refusals by reason), experiments by status, the
//! verifier's queue, training speed, the last sync page. Counters only go up; gauges are set.
//! The store's own counts (records, tasks, …) and peer counts are read when scraped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::messages::IngestSummary;
use crate::refusal::IngestError;

/// Shared by the actors that count and the explorer that reports; clones count together.
#[derive(Clone, Debug, Default)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// (origin, outcome) → objects.
    ingested: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// status (`keep`, `discard`, `crash`, `interrupted`) → experiments run here.
    experiments: Mutex<BTreeMap<&'static str, u64>>,
    verifier_queue: AtomicU64,
    /// f64 bits.
    tokens_per_sec: AtomicU64,
    /// Unix seconds of the last sync page stored from a peer (0: none yet).
    last_sync_page: AtomicI64,
    /// The runs training now, by device (`Training::device`), as their last stage or progress
    /// line told.
    training: Mutex<std::collections::BTreeMap<String, Training>>,
}

/// What the node is training now on one slot (for the explorer's header): the run's label and
/// its last progress line, or the stage of its start it is in.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    /// What the run is: a proposal's config, `baseline`, a rerun.
    pub label: String,
    /// Where it runs: `cpu`, `gpu 0`, …
    pub device: String,
    pub progress: spore_train::report::ProgressLine,
    /// Before its first step: the stage of its start (on a GPU, kernels being prepared).
    pub preparing: Option<spore_train::report::StageLine>,
}

/// A refusal's reason as a label.
fn reason(problem: &IngestError) -> &'static str {
    match problem {
        IngestError::Wire(_) => "rejected_wire",
        IngestError::Object(_) => "rejected_object",
        IngestError::Lineage(_) => "rejected_lineage",
        IngestError::Artifact(_) => "rejected_artifact",
        IngestError::Rate(_) => "rejected_rate",
        IngestError::Full(_) => "rejected_full",
        IngestError::Superseded(_) => "rejected_superseded",
    }
}

impl Metrics {
    /// Counts one ingested batch from `origin` (`local`, `gossip`, `sync`, `fetch`, `legacy`).
    pub fn count_ingest(&self, origin: &'static str, summary: &IngestSummary) {
        let mut map = self.0.ingested.lock().unwrap_or_else(|e| e.into_inner());
        let mut add = |outcome: &'static str, n: u64| {
            if n > 0 {
                *map.entry((origin, outcome)).or_default() += n;
            }
        };
        add("accepted", summary.accepted);
        add("held", summary.held);
        add("duplicate", summary.duplicates);
        let mut named = 0;
        for problem in &summary.problems {
            add(reason(problem), 1);
            named += 1;
        }
        add("rejected_other", summary.rejected.saturating_sub(named));
    }

    pub fn count_experiment(&self, status: &'static str) {
        let mut map = self.0.experiments.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(status).or_default() += 1;
    }

    /// The run training now on `device` (`None`: none).
    pub fn set_training(&self, device: &str, now: Option<Training>) {
        let mut map = self.0.training.lock().unwrap_or_else(|e| e.into_inner());
        match now {
            Some(t) => map.insert(device.to_string(), t),
            None => map.remove(device),
        };
    }

    /// The runs training now, by device: `cpu`, then `gpu 0`, `gpu 1` … `gpu 10` (shorter names
    /// first, so numbers sort as numbers).
    pub fn training(&self) -> Vec<Training> {
        let map = self.0.training.lock().unwrap_or_else(|e| e.into_inner());
        let mut runs: Vec<Training> = map.values().cloned().collect();
        runs.sort_by(|a, b| (a.device.len(), &a.device).cmp(&(b.device.len(), &b.device)));
        runs
    }

    pub fn set_verifier_queue(&self, n: usize) {
        self.0.verifier_queue.store(n as u64, Ordering::Relaxed);
    }

    pub fn set_tokens_per_sec(&self, x: f64) {
        self.0.tokens_per_sec.store(x.to_bits(), Ordering::Relaxed);
    }

    pub fn sync_page_stored(&self) {
        self.0
            .last_sync_page
            .store(crate::unix_now(), Ordering::Relaxed);
    }

    pub fn ingested(&self) -> Vec<((&'static str, &'static str), u64)> {
        let map = self.0.ingested.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn experiments(&self) -> Vec<(&'static str, u64)> {
        let map = self.0.experiments.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn verifier_queue(&self) -> u64 {
        self.0.verifier_queue.load(Ordering::Relaxed)
    }

    pub fn tokens_per_sec(&self) -> f64 {
        f64::from_bits(self.0.tokens_per_sec.load(Ordering::Relaxed))
    }

    /// Unix seconds of the last sync page from a peer, if any.
    pub fn last_sync_page(&self) -> Option<i64> {
        Some(self.0.last_sync_page.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_reason_and_the_rest_as_other() {
        let m = Metrics::default();
        let summary = IngestSummary {
            accepted: 3,
            duplicates: 1,
            rejected: 3,
            problems: vec![
                IngestError::Object("bad signature".into()),
                IngestError::Object("bad id".into()),
            ],
            ..IngestSummary::default()
        };
        m.count_ingest("gossip", &summary);
        m.count_ingest("gossip", &summary);
        let got: BTreeMap<_, _> = m.ingested().into_iter().collect();
        assert_eq!(got[&("gossip", "accepted")], 6);
        assert_eq!(got[&("gossip", "duplicate")], 2);
        assert_eq!(got[&("gossip", "rejected_object")], 4);
        assert_eq!(got[&("gossip", "rejected_other")], 2);
        assert!(!got.contains_key(&("gossip", "held")));
    }
}
