//! Ids and signatures: SHA-256 of the canonical bytes, Ed25519 over the same bytes (via `ring`).

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Decodes hex of either case (the reference's `bytes.fromhex` also accepts upper case).
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// True when `text` is exactly `len` lowercase hex characters (ids, node ids, cids).
pub fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, message);
    tag.as_ref().try_into().expect("32 bytes")
}

/// Lowercase hex SHA-256 of `bytes`: the id (CID) of a canonical payload or an artifact.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// An Ed25519 signing identity made from a 32-byte seed, as the reference stores it.
pub struct Identity {
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &self.node_id())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The identity whose private key file holds `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .expect("any 32-byte seed is a valid Ed25519 key");
        Identity { seed, pair }
    }

    /// A fresh random identity.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .expect("the operating system's random source works");
        Self::from_seed(seed)
    }

    /// The seed as the 64 lowercase hex characters of `identity/private_key`.
    pub fn seed_hex(&self) -> String {
        to_hex(&self.seed)
    }

    /// The raw seed, for deriving the libp2p identity from the same key.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The public key as 64 lowercase hex characters.
    pub fn node_id(&self) -> String {
        to_hex(self.pair.public_key().as_ref())
    }

    /// The detached signature over `message`, as 128 lowercase hex characters.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        to_hex(self.pair.sign(message).as_ref())
    }
}

/// Checks an Ed25519 signature given as hex (either case) by the key `node_id` (hex).
pub fn verify_hex(node_id: &str, message: &[u8], signature: &str) -> bool {
    let (Some(key), Some(sig)) = (from_hex(node_id), from_hex(signature)) else {
        return false;
    };
    if key.len() != 32 || sig.len() != 64 {
        return false;
    }
    UnparsedPublicKey::new(&ED25519, key)
        .verify(message, &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_checks() {
        assert_eq!(to_hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
        assert!(is_lower_hex(&"a".repeat(64), 64));
        assert!(!is_lower_hex(&"A".repeat(64), 64));
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let id = Identity::from_seed([7; 32]);
        let sig = id.sign_hex(b"hello");
        assert!(verify_hex(&id.node_id(), b"hello", &sig));
        assert!(verify_hex(&id.node_id(), b"hello", &sig.to_uppercase()));
        assert!(!verify_hex(&id.node_id(), b"hellO", &sig));
        assert!(!verify_hex(&id.node_id(), b"hello", "zz"));
    }
}
