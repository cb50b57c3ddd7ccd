//! The built-in default task: a signed manifest every fresh node derives identically, so nodes
//! that never heard of each other still research the same task.
//!
//! It is signed by a fixed key (seed = SHA-256 of [`SIGNER_SEED_TEXT`]) at a fixed timestamp; the
//! signature is deterministic (Ed25519), so the `task_id` is the same everywhere. A test pins it.

use spore_spec::crypto::sha256;
use spore_spec::{Identity, Signed, TaskManifest};
use spore_train::config::ARTIFACT_TYPE;
use spore_train::data::{KJV_SHA256, PREPARE_SPEC};
use spore_train::RunConfig;

/// The text whose SHA-256 is the default task's signing seed (public on purpose: the key
/// signs nothing but this manifest).
pub const SIGNER_SEED_TEXT: &str = "spored default task signer v1";
/// 2026-01-01T00:00:00Z.
pub const TIMESTAMP: i64 = 1_767_225_600;
/// A CPU-sized budget.
pub const TIME_BUDGET: i64 = 60;

/// The default task's baseline artifact: its bytes' SHA-256 is `base_code_cid`.
pub fn baseline() -> RunConfig {
    RunConfig::baseline()
}

/// The signed manifest.
pub fn manifest() -> TaskManifest {
    let signer = Identity::from_seed(sha256(SIGNER_SEED_TEXT.as_bytes()));
    let mut manifest = TaskManifest {
        name: "kjv-gpt-cpu".into(),
        description:
            "Lowest validation bits per byte of a small byte-level GPT trained on the King \
                      James Bible in 60 seconds (spored's built-in task; CPU-sized)."
                .into(),
        task_type: "ml_train".into(),
        artifact_type: ARTIFACT_TYPE.into(),
        metric: "val_bpb".into(),
        goal: "minimize".into(),
        base_code_cid: spore_spec::crypto::sha256_hex(&baseline().to_bytes()),
        prepare_cid: spore_spec::crypto::sha256_hex(PREPARE_SPEC.as_bytes()),
        dataset_cid: KJV_SHA256.into(),
        time_budget: TIME_BUDGET,
        created_by: signer.node_id(),
        timestamp: TIMESTAMP,
        version: 1,
        ..TaskManifest::default()
    };
    manifest.sign_with(&signer);
    manifest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_task_is_the_same_everywhere_and_verifies() {
        let a = manifest();
        assert_eq!(a, manifest());
        a.verify().unwrap();
        assert_eq!(a.artifact_type, "spore_gpt_config");
        assert_eq!(a.time_budget, 60);
        // Pinned: changing the baseline, the corpus or the split makes a different task.
        assert_eq!(
            a.task_id,
            "019864f258ca2c6380c381d74e681c38f0d8e8dccef80fdba32f81467f21ffbe"
        );
    }
}
