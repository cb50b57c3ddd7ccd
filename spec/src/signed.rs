//! What the four signed object kinds share: canonical bytes, content id, Ed25519 signature.

use crate::crypto::{is_lower_hex, sha256_hex, verify_hex, Identity};
use crate::error::Reject;
use crate::json::{to_canonical, Value};

/// A signed, content-addressed protocol object.
pub trait Signed {
    /// The kind's name as `spored verify` prints it.
    const KIND: &'static str;

    /// The payload that is hashed and signed: the object minus its derived fields.
    fn canonical_value(&self) -> Value;

    /// The id the object claims (for manifests, its `task_id`).
    fn claimed_id(&self) -> &str;

    /// The public key (hex) that must have signed it.
    fn signer(&self) -> &str;

    /// The signature as carried (hex).
    fn signature(&self) -> &str;

    /// Rules beyond id and signature; none by default.
    fn check_rules(&self) -> Result<(), Reject> {
        Ok(())
    }

    /// Stores the id and signature computed by `sign`.
    fn set_id_and_signature(&mut self, id: String, signature: String);

    /// Canonical bytes: sorted keys, no whitespace, ASCII escapes, Python float layout.
    fn canonical_bytes(&self) -> Vec<u8> {
        to_canonical(&self.canonical_value()).into_bytes()
    }

    /// The id the content hashes to.
    fn computed_id(&self) -> String {
        sha256_hex(&self.canonical_bytes())
    }

    /// Checks id, signature and the kind's own rules, in that order.
    fn verify(&self) -> Result<(), Reject> {
        let canonical = self.canonical_bytes();
        let computed = sha256_hex(&canonical);
        if computed != self.claimed_id() {
            return Err(Reject::IdMismatch {
                claimed: self.claimed_id().to_string(),
                computed,
            });
        }
        if !is_lower_hex(self.signer(), 64) {
            return Err(Reject::BadFormat {
                field: "node_id",
                expected: "64 lowercase hex characters",
            });
        }
        if !verify_hex(self.signer(), &canonical, self.signature()) {
            return Err(Reject::BadSignature {
                signer: self.signer().to_string(),
            });
        }
        self.check_rules()
    }

    /// Signs with `identity` (which must be the object's signer) and sets id and signature.
    fn sign_with(&mut self, identity: &Identity) {
        let canonical = self.canonical_bytes();
        let signature = identity.sign_hex(&canonical);
        self.set_id_and_signature(sha256_hex(&canonical), signature);
    }
}
