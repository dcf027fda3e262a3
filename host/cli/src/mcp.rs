//! `omniforge mcp config`: the snippet an MCP client's configuration needs to use a server's
//! skills as tools (docs/mcp.md).

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::remote::{ClientArgs, endpoint};

/// Connecting MCP clients.
#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Print the configuration an MCP client needs for this server's `/mcp` (URL and key
    /// header), to paste into its settings.
    Config(ConfigArgs),
}

/// `omniforge mcp config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The client whose configuration format to print.
    #[arg(long, value_enum, default_value_t = McpClient::Generic)]
    client: McpClient,
    /// Write the API key itself into the snippet; by default the snippet reads it from the
    /// environment variable OMNIFORGE_API_KEY, so the key never lands in a settings file.
    #[arg(long)]
    inline_key: bool,
    #[command(flatten)]
    client_args: ClientArgs,
}

/// MCP clients with a configuration format of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum McpClient {
    /// Claude Code (`.mcp.json`) and Claude Desktop.
    Claude,
    /// Cursor (`.cursor/mcp.json`).
    Cursor,
    /// Any client: the URL and the header.
    Generic,
}

/// Prints the snippet.
pub fn run(command: McpCommand) -> Result<()> {
    let McpCommand::Config(args) = command;
    let (base, key) = endpoint(&args.client_args)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&snippet(&args, &base, key.as_deref()))?
    );
    Ok(())
}

fn snippet(args: &ConfigArgs, base: &str, key: Option<&str>) -> Value {
    let url = format!("{base}/mcp");
    let key = match (args.inline_key, key) {
        (true, Some(key)) => key.to_owned(),
        _ => match args.client {
            McpClient::Claude => "${OMNIFORGE_API_KEY}".to_owned(),
            McpClient::Cursor => "${env:OMNIFORGE_API_KEY}".to_owned(),
            McpClient::Generic => "$OMNIFORGE_API_KEY".to_owned(),
        },
    };
    let headers = json!({ "Authorization": format!("Bearer {key}") });
    match args.client {
        McpClient::Claude => json!({
            "mcpServers": { "omniforge": { "type": "http", "url": url, "headers": headers } }
        }),
        McpClient::Cursor => json!({
            "mcpServers": { "omniforge": { "url": url, "headers": headers } }
        }),
        McpClient::Generic => {
            json!({ "url": url, "transport": "streamable-http", "headers": headers })
        }
    }
}
