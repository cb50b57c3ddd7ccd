//! The built-in default task: a signed manifest every fresh node derives identically, so nodes
//! that never heard of each other still research the same task.
//!
//! It is signed by a fixed key (seed = SHA-256 of [`SIGNER_SEED_TEXT`]) at a fixed timestamp; the
//! signature is deterministic (Ed25519), so the `task_id` is the same everywhere. A test pins it.
//!
//! Its root is pinned too ([`root`]): the key is public, so anyone could sign a root "as its
//! creator", and nodes that took the first root they saw would hold different trees. The root
//! is the baseline, run once and signed with the task's key; every node accepts it and no other
//! (`lineage::TaskRoot`), and researches from it instead of running a baseline of its own.
//! A change to the baseline, the corpus or the split makes a new task, and its root has to be
//! made again: run `spored run --max-experiments 1` on a data dir whose
//! `identity/private_key` is the hex of SHA-256 of [`SIGNER_SEED_TEXT`], then
//! `spored export --task <id>`, and put the record's payload in `default_task_root.json`.

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

/// The default task's id (a test checks it is [`manifest`]'s).
pub const TASK_ID: &str = "019864f258ca2c6380c381d74e681c38f0d8e8dccef80fdba32f81467f21ffbe";
/// The id of its pinned root.
pub const ROOT_ID: &str = "0166be442a5917850cb15025d429943b04b03858d41b3d6d09ed252aadaf4678";
/// The pinned root's wire payload: the baseline, run for 60 s on a 2-vCPU AMD EPYC (Zen 4).
const ROOT_JSON: &str = include_str!("default_task_root.json");

/// The root `task_id` must have, when the binary pins one (the default task's).
pub fn pinned_root(task_id: &str) -> Option<&'static str> {
    (task_id == TASK_ID).then_some(ROOT_ID)
}

/// The default task's pinned root record.
pub fn root() -> spore_spec::ExperimentRecord {
    let value = spore_spec::json::parse(ROOT_JSON.trim_end().as_bytes())
        .expect("the pinned root is JSON (a test reads it)");
    spore_spec::ExperimentRecord::from_json(value).expect("the pinned root is a record")
}

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
        assert_eq!(a.task_id, TASK_ID);
    }

    #[test]
    fn the_pinned_root_is_the_baseline_signed_by_the_tasks_key() {
        let task = manifest();
        let root = root();
        root.verify().unwrap();
        assert_eq!(root.id, ROOT_ID);
        assert_eq!(root.node_id, task.created_by);
        assert_eq!(root.task_id, task.task_id);
        assert_eq!(root.parent, None);
        assert_eq!(root.version, 2);
        assert_eq!(root.status, spore_spec::Status::Keep);
        assert_eq!(root.code_cid, task.base_code_cid);
        assert_eq!(root.dataset_cid, task.dataset_cid);
        assert_eq!(root.prepare_cid, task.prepare_cid);
        assert_eq!(root.time_budget, task.time_budget);
        assert_eq!(pinned_root(&task.task_id), Some(ROOT_ID));
        assert_eq!(pinned_root(&root.id), None);
    }
}
