//! `spored set <provider> <key>`: the LLM used to propose experiments, in `llm.toml` (mode 0600,
//! unlike the reference's world-readable file).

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use spore_spec::json::{object, Value};

use super::Context;
use crate::output::{clean, print_json, Table};

/// Known providers: (name, base URL, default model).
const PROVIDERS: [(&str, &str, &str); 5] = [
    (
        "anthropic",
        "https://api.anthropic.com/v1",
        "claude-sonnet-4-5-20250929",
    ),
    ("openai", "https://api.openai.com/v1", "gpt-4o"),
    (
        "groq",
        "https://api.groq.com/openai/v1",
        "moonshotai/kimi-k2-instruct-0905",
    ),
    ("xai", "https://api.x.ai/v1", "grok-3"),
    ("custom", "", ""),
];

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// anthropic, openai, groq, xai or custom (omit everything to show the current setting)
    pub provider: Option<String>,
    /// The API key; `-` reads it from stdin. On the command line it is visible to other users
    /// of this machine (`ps`): prefer --api-key-env or stdin
    pub api_key: Option<String>,
    /// Read the API key from this environment variable
    #[arg(long, value_name = "VAR", conflicts_with = "api_key")]
    pub api_key_env: Option<String>,
    /// The model to ask (default: the provider's)
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// The API's base URL (default: the provider's; required for custom)
    #[arg(long)]
    pub base_url: Option<String>,
}

/// The API key from the argument, stdin (`-`) or an environment variable.
fn api_key(args: &SetArgs) -> Result<Option<String>> {
    if let Some(var) = &args.api_key_env {
        let key =
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
        return Ok(Some(key.trim().to_string()));
    }
    match args.api_key.as_deref() {
        Some("-") => {
            let mut key = String::new();
            std::io::stdin()
                .read_line(&mut key)
                .context("reading the API key from stdin")?;
            Ok(Some(key.trim().to_string()))
        }
        other => Ok(other.map(str::to_string)),
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    pub provider: String,
    pub api_key: String,
    pub model: String,
    pub base_url: String,
    #[serde(default = "default_max_token")]
    pub max_token: u32,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

fn default_max_token() -> u32 {
    16384
}

fn default_temperature() -> f64 {
    0.7
}

/// `first8...last4`, so a key can be recognised without being shown.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

pub fn set(ctx: &Context, args: SetArgs) -> Result<()> {
    let path = ctx.data_dir.llm();
    let key = api_key(&args)?;
    let (Some(provider), Some(api_key)) = (args.provider.as_deref(), key.as_deref()) else {
        if args.provider.is_some() {
            bail!("missing API key: spored set <provider> <api-key|->, or --api-key-env VAR");
        }
        return show(ctx, &path);
    };
    // a local model behind the custom provider may need no key
    if api_key.is_empty() && provider != "custom" {
        bail!("the API key is empty");
    }
    let Some((_, base, model)) = PROVIDERS.iter().find(|p| p.0 == provider) else {
        bail!("unknown provider {provider:?} (one of anthropic, openai, groq, xai, custom)");
    };
    let base_url = args.base_url.clone().unwrap_or_else(|| base.to_string());
    let model = args.model.clone().unwrap_or_else(|| model.to_string());
    if provider == "custom" && (base_url.is_empty() || model.is_empty()) {
        bail!("the custom provider needs --base-url and --model");
    }
    let config = LlmConfig {
        provider: provider.into(),
        api_key: api_key.into(),
        model,
        base_url,
        max_token: default_max_token(),
        temperature: default_temperature(),
    };
    // key by key: a user's comments and other keys (max_token, temperature) stay
    tighten(&path)?;
    crate::config::edit_toml(
        &path,
        0o600,
        |doc| {
            crate::config::set_keeping_comment(doc, "provider", config.provider.as_str().into());
            crate::config::set_keeping_comment(doc, "api_key", config.api_key.as_str().into());
            crate::config::set_keeping_comment(doc, "model", config.model.as_str().into());
            crate::config::set_keeping_comment(doc, "base_url", config.base_url.as_str().into());
        },
        |text| {
            toml::from_str::<LlmConfig>(text)
                .map(drop)
                .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
        },
    )?;
    let note = ctx.reload_running()?;
    if ctx.json {
        print_json(&object([
            ("provider", Value::Str(config.provider)),
            ("model", Value::Str(config.model)),
            ("base_url", Value::Str(config.base_url)),
            ("api_key", Value::Str(mask(&config.api_key))),
            ("running_node", Value::Bool(note.is_some())),
        ]));
        return Ok(());
    }
    spore_actors::say!(
        "LLM set: {} model {} key {} ({})",
        config.provider,
        config.model,
        mask(&config.api_key),
        path.display()
    );
    if note.is_some() {
        spore_actors::say!("The running node proposes with it from its next experiment.");
    }
    Ok(())
}

/// `llm.toml` holds an API key: a file others can read (copied in, restored from a backup) is
/// made 0600 when it is read.
fn tighten(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {} to mode 0600", path.display()))?;
        tracing::warn!(path = %path.display(), was = format!("{mode:o}"), "llm.toml (it holds an API key) was readable by others; now 0600");
    }
    Ok(())
}

/// The configured LLM, if `llm.toml` exists; a broken file is an error naming it.
pub fn load(path: &std::path::Path) -> Result<Option<LlmConfig>> {
    tighten(path)?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let c: LlmConfig =
                toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
            if c.base_url.is_empty() || c.model.is_empty() {
                bail!("{}: base_url and model must be set", path.display());
            }
            Ok(Some(c))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn show(ctx: &Context, path: &std::path::Path) -> Result<()> {
    let current = load(path)?;
    if ctx.json {
        let providers = PROVIDERS
            .iter()
            .map(|(name, base, model)| {
                object([
                    ("provider", Value::Str((*name).into())),
                    ("base_url", Value::Str((*base).into())),
                    ("model", Value::Str((*model).into())),
                ])
            })
            .collect();
        let current = current.map_or(Value::Null, |c| {
            object([
                ("provider", Value::Str(c.provider)),
                ("model", Value::Str(c.model)),
                ("base_url", Value::Str(c.base_url)),
                ("api_key", Value::Str(mask(&c.api_key))),
            ])
        });
        print_json(&object([
            ("providers", Value::Array(providers)),
            ("current", current),
        ]));
        return Ok(());
    }
    let mut table = Table::new(&[("Provider", 10), ("Base URL", 40), ("Default model", 36)]);
    for (name, base, model) in PROVIDERS {
        table.row(vec![name.into(), base.into(), model.into()]);
    }
    table.print();
    match current {
        Some(c) => spore_actors::say!(
            "\nCurrent: {} model {} key {}",
            clean(&c.provider),
            clean(&c.model),
            mask(&c.api_key)
        ),
        None => spore_actors::say!("\nNo LLM configured: `spored set <provider> <api-key>`."),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mask_shows_only_the_ends() {
        assert_eq!(super::mask("sk-abcdefghijklmnop1234"), "sk-abcde...1234");
        assert_eq!(super::mask("short"), "*****");
    }
}
