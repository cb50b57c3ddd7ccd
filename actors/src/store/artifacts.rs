//! Content-addressed artifacts (code snapshots, training configs). The key is the SHA-256 of
//! the bytes, checked on every write; lookups take only well-formed cids, so no request can
//! name anything but an artifact (the reference's path traversal, §l.1, cannot happen).

use redb::{ReadableTable, ReadableTableMetadata};
use spore_spec::crypto::{is_lower_hex, sha256_hex};

use super::{Reader, StoreError, Writer};

/// Largest artifact accepted: what fits in one 10 MiB frame after base64.
pub const MAX_ARTIFACT_BYTES: usize = 7 * 1024 * 1024;

impl Writer<'_> {
    /// Stores `bytes` under `claimed_cid` if they hash to it. Returns false when already stored.
    pub fn put_artifact(&mut self, claimed_cid: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        if bytes.len() > MAX_ARTIFACT_BYTES {
            return Err(StoreError::ArtifactTooLarge(bytes.len()));
        }
        let computed = sha256_hex(bytes);
        if computed != claimed_cid {
            return Err(StoreError::ArtifactMismatch {
                claimed: claimed_cid.to_string(),
                computed,
            });
        }
        let table = &mut self.t.artifacts;
        if table.get(claimed_cid)?.is_some() {
            return Ok(false);
        }
        table.insert(claimed_cid, bytes)?;
        self.changes.artifacts.push(claimed_cid.to_string());
        Ok(true)
    }
}

impl Writer<'_> {
    pub fn has_artifact(&self, cid: &str) -> Result<bool, StoreError> {
        Ok(self.t.artifacts.get(cid)?.is_some())
    }
}

impl Reader {
    pub fn artifact(&self, cid: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_lower_hex(cid, 64) {
            return Err(StoreError::BadCid(cid.to_string()));
        }
        let table = &self.t.artifacts;
        Ok(table.get(cid)?.map(|b| b.value().to_vec()))
    }

    pub fn artifact_count(&self) -> Result<u64, StoreError> {
        Ok(self.t.artifacts.len()?)
    }
}

/// Most of a run's output kept for the explorer (the tail, where results and errors are).
pub const MAX_RUN_OUTPUT: usize = 16 * 1024;

impl Writer<'_> {
    /// Keeps what this node's run (`rerun = false`) or rerun of record `id` printed (its last
    /// [`MAX_RUN_OUTPUT`] bytes).
    pub fn put_run_output(&mut self, id: &str, rerun: bool, text: &str) -> Result<(), StoreError> {
        let mut start = text.len().saturating_sub(MAX_RUN_OUTPUT);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let key = format!("{id}:{}", if rerun { "rerun" } else { "run" });
        self.t
            .run_outputs
            .insert(key.as_str(), &text.as_bytes()[start..])?;
        Ok(())
    }
}

impl Writer<'_> {
    /// Keeps the training curve of this node's run (`rerun = false`) or rerun of record `id`:
    /// local data for the explorer, never synced or signed. Stored as JSON,
    /// `[[step, loss, tokens_per_s, seconds], …]`.
    pub fn put_curve(
        &mut self,
        id: &str,
        rerun: bool,
        curve: &[[f64; 4]],
    ) -> Result<(), StoreError> {
        if curve.is_empty() {
            return Ok(());
        }
        use spore_spec::json::{to_wire, Value};
        // plain JSON: a non-finite number (a diverged loss) is null
        let number = |x: f64| {
            if x.is_finite() {
                Value::Float(x)
            } else {
                Value::Null
            }
        };
        let points = curve
            .iter()
            .map(|p| Value::Array(p.iter().map(|&x| number(x)).collect()))
            .collect();
        let key = format!("{id}:{}", if rerun { "rerun-curve" } else { "run-curve" });
        let text = to_wire(&Value::Array(points));
        self.t.run_outputs.insert(key.as_str(), text.as_bytes())?;
        Ok(())
    }
}

impl Reader {
    /// The training curves (JSON) of this node's run and rerun of record `id`, when it ran them.
    pub fn curves(&self, id: &str) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok((
            self.local_text(id, "run-curve")?,
            self.local_text(id, "rerun-curve")?,
        ))
    }

    /// What this node's run and rerun of record `id` printed, when it ran them.
    pub fn run_outputs(&self, id: &str) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok((self.local_text(id, "run")?, self.local_text(id, "rerun")?))
    }

    /// One of this node's local texts about record `id` (`run`, `rerun`, `run-curve`, …).
    fn local_text(&self, id: &str, which: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{id}:{which}");
        Ok(self
            .t
            .run_outputs
            .get(key.as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }
}
