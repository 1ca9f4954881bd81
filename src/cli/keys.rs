//! `hallmark keys`: create, list and revoke API keys.

use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::store;
use crate::store::api_keys::{self, Role};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and only its hash is stored.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id or by its shown prefix (e.g. hm_1a2b3c4d).
    Revoke { key: String },
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

/// Runs one `keys` subcommand.
///
/// # Errors
/// When the database fails or the arguments are wrong.
pub async fn run(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let pool = store::lazy_pool(&settings.database)?;
    match command {
        KeysCommand::Create { role, name } => {
            let name = name.trim();
            anyhow::ensure!(
                (1..=200).contains(&name.len()),
                "--name must be 1 to 200 characters"
            );
            let key = api_keys::create(&pool, name, role).await?;
            eprintln!(
                "created {} key {:?} (id {}); it is shown only now:",
                key.info.role.0, key.info.name, key.info.id
            );
            println!("{}", key.secret.expose_secret());
        }
        KeysCommand::List => {
            println!(
                "{:<36}  {:<11}  {:<9}  {:<25}  {:<8}  name",
                "id", "prefix", "role", "created", "state"
            );
            for key in api_keys::list(&pool).await? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<36}  {:<11}  {:<9}  {:<25}  {:<8}  {}",
                    key.id,
                    key.prefix,
                    key.role.0,
                    key.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    state,
                    key.name
                );
            }
        }
        KeysCommand::Revoke { key } => {
            anyhow::ensure!(
                api_keys::revoke(&pool, key.trim()).await?,
                "no active key {key:?} (give its id, or a prefix that names exactly one key)"
            );
            println!("revoked {key}");
        }
    }
    Ok(())
}
