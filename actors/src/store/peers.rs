//! Known peers: addresses this node has reached, with when it last did.

use redb::ReadableTable;

use super::{Reader, StoreError, Writer};

impl Writer<'_> {
    pub fn record_peer(&mut self, address: &str, seen_at: i64) -> Result<(), StoreError> {
        self.t.peers.insert(address, seen_at)?;
        Ok(())
    }

    pub fn forget_peer(&mut self, address: &str) -> Result<bool, StoreError> {
        Ok(self.t.peers.remove(address)?.is_some())
    }
}

impl Reader {
    /// Known peers, most recently seen first.
    pub fn peers(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let table = &self.t.peers;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_string(), v.value()));
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }
}
