//! The LLM proposer: asks a chat model for the next config.
//!
//! Two wire formats: OpenAI-compatible `POST {base}/chat/completions` (OpenAI, Groq, xAI,
//! OpenRouter, and local Ollama / vLLM / llama.cpp through `base_url`) and Anthropic's
//! `POST {base}/messages`. Calls time out; network errors, 429 and 5xx are retried (1 s, 2 s); a
//! malformed answer gets one repair request and is then skipped, so the loop falls back to the
//! built-in search for that experiment. Nothing here can crash the node.
//!
//! The model answers with a full `spore_gpt_config` in a ```toml block; the node parses and
//! range-checks it like any peer's config, so a model can propose values, never code.

use std::time::Duration;

use spore_train::proposer::Proposal;
use spore_train::RunConfig;

/// What `llm.toml` holds, with the timeout we apply.
#[derive(Clone, Debug)]
pub struct LlmSettings {
    pub provider: String,
    pub api_key: String,
    pub model: String,
    pub base_url: String,
    pub max_tokens: u32,
    pub temperature: f64,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("HTTP {status} from the LLM API: {body}")]
    Http { status: u16, body: String },
    #[error("cannot reach the LLM API: {0}")]
    Network(String),
    #[error("the LLM API answered in an unexpected format: {0}")]
    Format(String),
}

impl LlmError {
    fn retryable(&self) -> bool {
        match self {
            LlmError::Network(_) => true,
            LlmError::Http { status, .. } => *status == 429 || *status >= 500,
            LlmError::Format(_) => false,
        }
    }
}

impl LlmSettings {
    fn anthropic(&self) -> bool {
        self.provider == "anthropic"
    }

    /// One chat completion: the answer's text.
    pub fn complete(&self, system: &str, user: &str) -> Result<String, LlmError> {
        let base = self.base_url.trim_end_matches('/');
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .tls_config(crate::tls::config())
            .http_status_as_error(false)
            .build()
            .new_agent();
        let (url, body) = if self.anthropic() {
            (
                format!("{base}/messages"),
                serde_json::json!({
                    "model": self.model,
                    "max_tokens": self.max_tokens,
                    "temperature": self.temperature,
                    "system": system,
                    "messages": [{"role": "user", "content": user}],
                }),
            )
        } else {
            (
                format!("{base}/chat/completions"),
                serde_json::json!({
                    "model": self.model,
                    "max_tokens": self.max_tokens,
                    "temperature": self.temperature,
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": user},
                    ],
                }),
            )
        };
        let mut request = agent.post(&url).header("content-type", "application/json");
        if self.anthropic() {
            request = request
                .header("x-api-key", &self.api_key)
                .header("anthropic-version", "2023-06-01");
        } else if !self.api_key.is_empty() {
            request = request.header("authorization", &format!("Bearer {}", self.api_key));
        }
        let mut response = request
            .send(body.to_string().as_bytes())
            .map_err(|e| LlmError::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
            .map_err(|e| LlmError::Network(e.to_string()))?;
        if status != 200 {
            return Err(LlmError::Http {
                status,
                body: text.chars().take(300).collect(),
            });
        }
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| LlmError::Format(e.to_string()))?;
        let answer = if self.anthropic() {
            json["content"].as_array().map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("")
            })
        } else {
            json["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string)
        };
        answer.ok_or_else(|| LlmError::Format("no answer text in the response".into()))
    }

    /// Asks, and checks the answer with `check`; an unusable answer gets one repair request
    /// that quotes the problem and asks again for `Description:`, `Hypothesis:`, then `shape`.
    /// `Err` carries why the answer was skipped.
    fn ask_with_repair<T>(
        &self,
        system: &str,
        user: &str,
        shape: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        let first = self
            .complete_with_retries(system, user)
            .map_err(|e| e.to_string())?;
        match check(&first) {
            Ok(answer) => Ok(answer),
            Err(problem) => {
                let repair = format!(
                    "{user}\n## Your previous answer was unusable\n{problem}\nAnswer again: \
                     'Description:', 'Hypothesis:', then {shape}."
                );
                let second = self
                    .complete_with_retries(system, &repair)
                    .map_err(|e| e.to_string())?;
                check(&second).map_err(|p| format!("skipped after one repair request: {p}"))
            }
        }
    }

    /// `complete` with up to 3 attempts for transient failures.
    pub fn complete_with_retries(&self, system: &str, user: &str) -> Result<String, LlmError> {
        let mut attempt = 0;
        loop {
            match self.complete(system, user) {
                Err(e) if e.retryable() && attempt < 2 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_secs(attempt));
                }
                other => return other,
            }
        }
    }
}

/// What the prompt says about the search so far.
#[derive(Clone, Debug, Default)]
pub struct PromptContext {
    pub parent_val_bpb: f64,
    pub best_val_bpb: f64,
    pub task_records: u64,
    /// (status, val_bpb, description) of experiments already run from this parent.
    pub tried_from_parent: Vec<(String, f64, String)>,
}

pub const SYSTEM_PROMPT: &str = "You are an autonomous ML researcher minimising val_bpb (validation \
bits per byte) of a small byte-level GPT trained for a fixed time budget on a CPU or GPU. You change \
only the training config, a TOML document with the sections [model] and [train] and exactly the \
keys shown. Answer with one line starting 'Description:' (what you changed), one line starting \
'Hypothesis:' (why it should lower val_bpb), then the FULL new config in one ```toml block. Make \
one or two focused changes; keep the model small enough to take many steps in the budget.";

/// The user prompt for a child of `parent_text`.
pub fn user_prompt(parent_text: &str, ctx: &PromptContext) -> String {
    let mut out = format!(
        "## Current state\nparent val_bpb: {:.6}\nbest in the task: {:.6}\nexperiments in the task: {}\n\n",
        ctx.parent_val_bpb, ctx.best_val_bpb, ctx.task_records
    );
    if !ctx.tried_from_parent.is_empty() {
        out.push_str("## Already tried from this parent\n");
        for (status, val, description) in ctx.tried_from_parent.iter().take(10) {
            out.push_str(&format!("- {status} val_bpb {val:.6}: {description}\n"));
        }
        out.push('\n');
    }
    out.push_str("## Current config\n```toml\n");
    out.push_str(parent_text.trim_end());
    out.push_str("\n```\n\n## Task\nPropose the next config. Do not repeat what was tried.\n");
    out
}

/// The config, description and hypothesis in an answer.
pub fn parse_answer(text: &str) -> Result<(RunConfig, String, String), String> {
    let block = code_block(text).ok_or("the answer has no ```toml block")?;
    let config = RunConfig::from_bytes(block.as_bytes()).map_err(|e| e.to_string())?;
    let (description, hypothesis) = labels(text);
    Ok((config, description, hypothesis))
}

/// The first ```toml block, else the first ``` block.
fn code_block(text: &str) -> Option<String> {
    let find = |fence: &str| {
        let start = text.find(fence)? + fence.len();
        let rest = &text[start..];
        let rest = &rest[rest.find('\n')? + 1..];
        let end = rest.find("```")?;
        Some(rest[..end].to_string())
    };
    find("```toml").or_else(|| find("```"))
}

/// Ask for a proposal; one repair request if the first answer is unusable. `Err` carries why
/// the answer was skipped.
pub fn propose(
    settings: &LlmSettings,
    parent_text: &str,
    ctx: &PromptContext,
    memory_limit: u64,
    tried: &dyn Fn(&str) -> bool,
) -> Result<Proposal, String> {
    let user = user_prompt(parent_text, ctx);
    let check = |answer: &str| -> Result<Proposal, String> {
        let (config, description, hypothesis) = parse_answer(answer)?;
        if config.memory_estimate() > memory_limit {
            return Err(format!(
                "the config needs about {} MiB, over this node's limit of {} MiB",
                config.memory_estimate() >> 20,
                memory_limit >> 20
            ));
        }
        let description = if description.is_empty() {
            "LLM proposal".to_string()
        } else {
            description
        };
        let proposal = Proposal::of(config, description, hypothesis);
        if proposal.bytes == parent_text.as_bytes() || tried(&proposal.cid) {
            return Err("the config was already tried".into());
        }
        Ok(proposal)
    };
    settings.ask_with_repair(
        SYSTEM_PROMPT,
        &user,
        "the full config in one ```toml block",
        check,
    )
}

/// What a code proposal for a command task is asked with.
#[derive(Clone, Debug, Default)]
pub struct CodePrompt {
    pub task_name: String,
    pub task_description: String,
    pub metric: String,
    /// `minimize` or `maximize`.
    pub goal: String,
    /// The candidate's file name (`sort.py`).
    pub file_name: String,
    pub parent_metric: f64,
    pub best_metric: f64,
    pub task_records: u64,
    /// (status, metric, description) of experiments already run from this parent.
    pub tried_from_parent: Vec<(String, f64, String)>,
}

/// A code edit the model proposed: the full new file.
#[derive(Clone, Debug)]
pub struct CodeProposal {
    pub code: Vec<u8>,
    pub cid: String,
    pub description: String,
    pub hypothesis: String,
}

/// Largest candidate file a model may propose.
pub const MAX_CODE_BYTES: usize = 256 * 1024;

pub fn code_system_prompt(p: &CodePrompt) -> String {
    format!(
        "You are an autonomous researcher improving one source file, {file}, for the task \"{name}\": \
{description} An evaluator you cannot change runs {file}, checks that it is correct and reports \
{metric} ({goal} it). The file runs in a sandbox with no network, no extra packages and a private \
working directory; only the standard library is available. Answer with one line starting \
'Description:' (what you changed), one line starting 'Hypothesis:' (why it should {goal} \
{metric}), then the FULL new {file} in one ``` code block. Make one focused change and keep the \
file correct.",
        file = p.file_name,
        name = p.task_name,
        description = p.task_description,
        metric = p.metric,
        goal = p.goal,
    )
}

pub fn code_user_prompt(parent_code: &str, p: &CodePrompt) -> String {
    let mut out = format!(
        "## Current state\nparent {m}: {:.6}\nbest in the task: {:.6}\nexperiments in the task: {}\n\n",
        p.parent_metric,
        p.best_metric,
        p.task_records,
        m = p.metric
    );
    if !p.tried_from_parent.is_empty() {
        out.push_str("## Already tried from this parent\n");
        for (status, value, description) in p.tried_from_parent.iter().take(10) {
            out.push_str(&format!(
                "- {status} {} {value:.6}: {description}\n",
                p.metric
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!("## Current {}\n```\n", p.file_name));
    out.push_str(parent_code.trim_end());
    out.push_str(
        "\n```\n\n## Task\nPropose the next version of the file. Do not repeat what was tried.\n",
    );
    out
}

/// The code, description and hypothesis in an answer.
pub fn parse_code_answer(text: &str) -> Result<(String, String, String), String> {
    let code = code_block(text).ok_or("the answer has no ``` code block")?;
    if code.trim().is_empty() {
        return Err("the code block is empty".into());
    }
    if code.len() > MAX_CODE_BYTES {
        return Err(format!("the file is over {MAX_CODE_BYTES} bytes"));
    }
    let (description, hypothesis) = labels(text);
    Ok((code, description, hypothesis))
}

fn labels(text: &str) -> (String, String) {
    let label = |name: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| {
                let lower = l.to_ascii_lowercase();
                lower
                    .starts_with(name)
                    .then(|| l[name.len()..].trim().to_string())
            })
            .unwrap_or_default()
    };
    (label("description:"), label("hypothesis:"))
}

/// Ask for a code edit of `parent_code`; one repair request if the first answer is unusable.
pub fn propose_code(
    settings: &LlmSettings,
    parent_code: &str,
    prompt: &CodePrompt,
    tried: &dyn Fn(&str) -> bool,
) -> Result<CodeProposal, String> {
    let system = code_system_prompt(prompt);
    let user = code_user_prompt(parent_code, prompt);
    let check = |answer: &str| -> Result<CodeProposal, String> {
        let (code, description, hypothesis) = parse_code_answer(answer)?;
        let cid = spore_spec::crypto::sha256_hex(code.as_bytes());
        if code.trim_end() == parent_code.trim_end() || tried(&cid) {
            return Err("that file was already tried".into());
        }
        Ok(CodeProposal {
            code: code.into_bytes(),
            cid,
            description: if description.is_empty() {
                "LLM proposal".into()
            } else {
                description
            },
            hypothesis,
        })
    };
    settings.ask_with_repair(&system, &user, "the full file in one ``` code block", check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_labels_and_fences() {
        let config = String::from_utf8(RunConfig::baseline().to_bytes()).unwrap();
        let answer = format!(
            "Description: raise the LR\nHypothesis: faster progress\n```toml\n{config}```\n"
        );
        let (c, d, h) = parse_answer(&answer).unwrap();
        assert_eq!(c, RunConfig::baseline());
        assert_eq!(
            (d.as_str(), h.as_str()),
            ("raise the LR", "faster progress")
        );
        assert!(parse_answer("no code here").is_err());
        assert!(parse_answer("```toml\nimport os\n```").is_err());
        let bad = config.replace("lr = 0.003", "lr = -3.0");
        assert!(parse_answer(&format!("```\n{bad}```"))
            .unwrap_err()
            .contains("train.lr"));
    }
}
