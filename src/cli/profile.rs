//! `spored profile set|show`: this node's signed profile.

use anyhow::Result;
use clap::Subcommand;
use spore_spec::{NodeProfile, Signed};

use spore_spec::json::Value;
use spore_spec::wire::Message;

use super::Context;
use crate::output::{clean, print_json};

/// This node's stored profile (from the running node when there is one).
fn stored_profile(ctx: &Context, node_id: &str) -> Result<Option<NodeProfile>> {
    let v = ctx.query("profile", vec![("node_id", Value::Str(node_id.into()))])?;
    if v == Value::Null {
        return Ok(None);
    }
    NodeProfile::from_json(v)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("the stored profile cannot be read: {e}"))
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Sign and store a new profile (it spreads when the node runs)
    Set(SetArgs),
    /// Show this node's profile
    Show,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// The name the explorer and other nodes show for this node
    #[arg(long)]
    pub display_name: String,
    /// A few words about this node or its operator
    #[arg(long, default_value = "")]
    pub bio: String,
    /// A web page of the operator
    #[arg(long, default_value = "")]
    pub website: String,
    /// An image URL shown beside the name
    #[arg(long, default_value = "")]
    pub avatar_url: String,
    /// Where donations for this node's compute go
    #[arg(long, default_value = "")]
    pub donation_address: String,
}

pub fn run(ctx: &Context, cmd: ProfileCommand) -> Result<()> {
    match cmd {
        ProfileCommand::Set(args) => set(ctx, args),
        ProfileCommand::Show => show(ctx),
    }
}

fn set(ctx: &Context, args: SetArgs) -> Result<()> {
    let (identity, _) = ctx.data_dir.ensure_identity()?;
    let previous = stored_profile(ctx, &identity.node_id())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut profile = NodeProfile {
        node_id: identity.node_id(),
        display_name: args.display_name.trim().into(),
        bio: args.bio.trim().into(),
        website: args.website.trim().into(),
        avatar_url: args.avatar_url.trim().into(),
        donation_address: args.donation_address.trim().into(),
        // strictly newer than the stored one, so it always replaces it
        timestamp: previous.map_or(now, |p| now.max(p.timestamp.saturating_add(1))),
        schema_version: 1,
        ..NodeProfile::default()
    };
    profile.sign_with(&identity);
    ctx.publish(vec![Message::Profile(profile.clone()).encode_body()])?
        .ensure_stored()?;
    if ctx.json {
        print_json(&profile.to_value());
    } else {
        spore_actors::say!(
            "Profile saved for {} ({}).",
            profile.display_name,
            &profile.node_id[..16]
        );
    }
    Ok(())
}

fn show(ctx: &Context) -> Result<()> {
    let identity = ctx.data_dir.load_identity()?;
    let Some(profile) = stored_profile(ctx, &identity.node_id())? else {
        anyhow::bail!("no profile yet: set one with `spored profile set --display-name NAME`");
    };
    if ctx.json {
        print_json(&profile.to_value());
        return Ok(());
    }
    for (k, v) in [
        ("node_id", &profile.node_id),
        ("display_name", &profile.display_name),
        ("bio", &profile.bio),
        ("website", &profile.website),
        ("avatar_url", &profile.avatar_url),
        ("donation_address", &profile.donation_address),
    ] {
        spore_actors::say!("{k}: {}", clean(v));
    }
    spore_actors::say!("timestamp: {}", profile.timestamp);
    Ok(())
}
