//! Where a task's training data and built-in baseline are on this node: the corpus (the
//! built-in one, the GPU corpus, or one `spored prepare` stored), its preparation, and the
//! baseline config sized for its vocabulary. Used by the research loop, the verifier and the
//! kernel warm-up alike.

use spore_spec::TaskManifest;
use spore_train::data::{KJV_SHA256, PREPARE_SPEC};
use spore_train::prepare::Preparation;

use crate::default_task;

/// Where a task's training data is on this node.
pub struct TaskData {
    pub corpus: Option<std::path::PathBuf>,
    pub prepare: Option<std::path::PathBuf>,
}

/// The corpus a task trains on (the built-in one, or one `spored prepare` stored here) and
/// its preparation (byte-level tokens, or a BPE document `spored prepare --bpe` stored here).
pub fn task_data(dir: &std::path::Path, task: &TaskManifest) -> Result<TaskData, String> {
    let prepare = preparation(dir, task)?;
    names_a_file(task, "dataset_cid", &task.dataset_cid)?;
    if task.dataset_cid == KJV_SHA256 {
        return Ok(TaskData {
            corpus: None,
            prepare,
        });
    }
    let path = dir.join(format!("{}.txt", task.dataset_cid));
    if path.exists() {
        Ok(TaskData {
            corpus: Some(path),
            prepare,
        })
    } else {
        let how = match task.dataset_cid == crate::gpu_corpus::CORPUS_SHA256 {
            true => "spored prepare --gpu-corpus",
            false => "spored prepare --text …",
        };
        Err(format!(
            "task {} trains on dataset {}, which is not on this node ({how})",
            task.task_id, task.dataset_cid
        ))
    }
}

/// Whether a task's cid may name a file here: only an exact 64-hex cid may (a stranger's
/// manifest could say `../../x`).
fn names_a_file(task: &TaskManifest, what: &str, cid: &str) -> Result<(), String> {
    match spore_spec::crypto::is_lower_hex(cid, 64) {
        true => Ok(()),
        false => Err(format!(
            "task {} has a {what} that is not a 64-hex cid: {}",
            task.task_id,
            crate::refusal::Capped(cid)
        )),
    }
}

/// The preparation document a task names, when it is not byte-level tokens (checked to be on
/// this node); its corpus is not looked at.
fn preparation(
    dir: &std::path::Path,
    task: &TaskManifest,
) -> Result<Option<std::path::PathBuf>, String> {
    if task.prepare_cid == spore_spec::crypto::sha256_hex(PREPARE_SPEC.as_bytes()) {
        return Ok(None);
    }
    names_a_file(task, "prepare_cid", &task.prepare_cid)?;
    let path = dir.join(format!("{}.prepare", task.prepare_cid));
    if !path.exists() {
        return Err(format!(
            "task {} uses a data preparation this node does not have (prepare_cid {}; \
             spored prepare --bpe … makes one)",
            task.task_id, task.prepare_cid
        ));
    }
    Ok(Some(path))
}

/// The built-in baseline sized for the task's vocabulary: a task made by `spored prepare`
/// names it as `base_code_cid` without storing it anywhere.
pub fn builtin_baseline(dir: &std::path::Path, task: &TaskManifest) -> Result<Vec<u8>, String> {
    let mut config = default_task::baseline();
    // sized by the preparation alone: the corpus may still be on its way
    if let Some(path) = preparation(dir, task)? {
        let document = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let preparation = Preparation::from_document(document).map_err(|e| e.to_string())?;
        config.model.vocab_size = preparation.vocab_size();
    }
    Ok(config.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifests_cids_name_files_only_as_64_hex() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "not a dataset").unwrap();
        let task = TaskManifest {
            task_id: "t".into(),
            prepare_cid: spore_spec::crypto::sha256_hex(PREPARE_SPEC.as_bytes()),
            dataset_cid: "../datasets/secret".into(),
            ..TaskManifest::default()
        };
        let err = task_data(dir.path(), &task).err().unwrap();
        assert!(
            err.contains("dataset_cid that is not a 64-hex cid"),
            "{err}"
        );
        let task = TaskManifest {
            prepare_cid: "../../identity/private_key".into(),
            dataset_cid: KJV_SHA256.into(),
            ..task
        };
        let err = task_data(dir.path(), &task).err().unwrap();
        assert!(
            err.contains("prepare_cid that is not a 64-hex cid"),
            "{err}"
        );
    }
}
