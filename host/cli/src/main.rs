//! `omniforge`: the OmniForge command-line tool and server: run skills locally
//! (`omniforge run`), make and check packages (`omniforge skill …`, `omniforge key …`), run
//! the multi-tenant server (`omniforge serve`) and administer its database
//! (`omniforge migrate`, `omniforge admin …`).

mod admin;
mod agent;
mod author;
mod exit;
mod key;
mod mcp;
mod migrate;
mod offload;
mod remote;
mod run;
mod serve;
mod skill;
mod task;
mod telemetry;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's allocator: a request allocates and frees many small objects
/// on one worker thread and the last of them on another, and glibc's arenas then contend on
/// their locks (docs/performance.md, "MCP tools/call").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OmniForge: run AI-agent skills packaged as WebAssembly components, sandboxed.
#[derive(Debug, Parser)]
#[command(name = "omniforge", version, about, propagate_version = true, after_help = exit::TABLE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a skill component or package once, locally, in a fresh sandbox.
    Run(run::RunArgs),
    /// Pack, inspect, sign and verify skill packages; publish, invoke, list and search
    /// them on a server.
    #[command(subcommand)]
    Skill(skill::SkillCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Apply the database migrations (or show their status with --status).
    Migrate(migrate::MigrateArgs),
    /// Run the multi-tenant HTTP server.
    Serve(serve::ServeArgs),
    /// Operator tasks on the database (bootstrap).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Connect MCP clients to a server's skills.
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Submit, follow, cancel and retry durable tasks on a server.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Create, read, update, delete and relock agents on a server.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Check workflow documents.
    #[command(subcommand)]
    Workflow(agent::WorkflowCommand),
    /// Print the server's OpenAPI document (docs/api/openapi.json).
    Openapi,
    /// Internal commands the server runs as child processes.
    #[command(subcommand, hide = true)]
    Internal(InternalCommand),
}

#[derive(Debug, Subcommand)]
enum InternalCommand {
    /// Compile a component (a file or stdin) into an artifact (a file or stdout).
    Compile(offload::CompileArgs),
    /// Validate a package file, write its component, print its summary as JSON.
    Validate(offload::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    if !serving {
        init_tracing();
    }
    let runtime = if serving {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Skill(command) => skill::run(command).await,
            Command::Key(command) => report(key::run(command)),
            Command::Migrate(args) => report(migrate::run(args).await),
            Command::Serve(args) => report(serve::run(args).await),
            Command::Admin(command) => report(admin::run(command).await),
            Command::Mcp(command) => report(mcp::run(command)),
            Command::Task(command) => task::run(command).await,
            Command::Agent(command) => agent::run(command).await,
            Command::Workflow(command) => agent::run_workflow(command),
            Command::Openapi => report(print_openapi()),
            Command::Internal(InternalCommand::Compile(args)) => report(offload::compile(args)),
            Command::Internal(InternalCommand::Validate(args)) => report(offload::validate(args)),
        }
    })
}

fn print_openapi() -> anyhow::Result<()> {
    println!("{}", omniforge_server::openapi().to_pretty_json()?);
    Ok(())
}

use exit::report;

/// Logs go to stderr so stdout carries only the skill's output. `OMNIFORGE_LOG` (tracing's
/// filter syntax) overrides the default, which shows the skill's own log messages.
fn init_tracing() {
    let filter = EnvFilter::try_from_env("OMNIFORGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,omniforge::guest=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
