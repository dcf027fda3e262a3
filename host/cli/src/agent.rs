//! `omniforge agent create|get|list|update|delete|run|lock|relock` (agents on a server,
//! from JSON or YAML files) and `omniforge workflow validate` (a document checked locally).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use omniforge_workflow::Format;
use serde_json::Value;

use crate::exit;
use crate::remote::{Client, ClientArgs};
use crate::task::print;

/// Agents: workflows of skills, versioned, with lockfiles.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent from a definition file (JSON or YAML) and print it.
    Create(FileArgs),
    /// Print an agent.
    Get(IdArgs),
    /// List your tenant's agents.
    List(ListArgs),
    /// Replace an agent's definition with a file's, as its next version.
    Update(UpdateArgs),
    /// Delete an agent.
    Delete(VersionedIdArgs),
    /// Start a run of an agent (a task) and print it, or follow it with `--watch`.
    Run(RunArgs),
    /// Print an agent's lockfile: the exact version each skill runs.
    Lock(IdArgs),
    /// Resolve an agent's skills again and save the new pins as its next version.
    Relock(VersionedIdArgs),
}

/// Workflow documents.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check a workflow document (JSON or YAML) without a server: its shape, ids,
    /// expressions and limits. Skills are resolved only when an agent is saved.
    Validate(ValidateArgs),
}

/// A definition file.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The agent's definition (`.yaml`/`.yml` is read as YAML, anything else as JSON; `-`
    /// reads JSON from stdin).
    file: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

/// An agent id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The agent's id (`agt_…`).
    id: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// An agent id and, optionally, the version a change is based on.
#[derive(Debug, Args)]
pub struct VersionedIdArgs {
    /// The agent's id (`agt_…`).
    id: String,
    /// Only if the agent is at this version (sent as `If-Match`).
    #[arg(long)]
    if_version: Option<i64>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge agent update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The agent's id (`agt_…`).
    id: String,
    /// The new definition (JSON or YAML, as for `create`).
    file: PathBuf,
    /// The version this change is based on (default: the agent's version now, read first).
    #[arg(long)]
    if_version: Option<i64>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge agent list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only agents that use this skill (`namespace/name`).
    #[arg(long)]
    skill: Option<String>,
    /// Only agents in this status (`ready`, or `warning` when a pin was yanked).
    #[arg(long)]
    status: Option<String>,
    /// How many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge agent run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent's id (`agt_…`).
    id: String,
    /// The input JSON; `-` reads it from stdin, `@FILE` from a file.
    #[arg(long, short, default_value = "{}")]
    input: String,
    /// Makes the submission safe to repeat: the same key and input answer the same run.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Follow the run's events (its steps) until it ends; the exit status says how.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge workflow validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The document (`.yaml`/`.yml` is read as YAML, anything else as JSON).
    file: PathBuf,
}

/// Runs an `agent` command.
pub async fn run(command: AgentCommand) -> ExitCode {
    exit::report(match command {
        AgentCommand::Create(args) => create(args).await,
        AgentCommand::Get(args) => {
            show(&args.client, reqwest::Method::GET, &args.id, "", None).await
        }
        AgentCommand::List(args) => list(args).await,
        AgentCommand::Run(args) => return start_run(args).await,
        AgentCommand::Update(args) => update(args).await,
        AgentCommand::Delete(args) => {
            show(
                &args.client,
                reqwest::Method::DELETE,
                &args.id,
                "",
                args.if_version,
            )
            .await
        }
        AgentCommand::Lock(args) => {
            show(&args.client, reqwest::Method::GET, &args.id, "/lock", None).await
        }
        AgentCommand::Relock(args) => {
            show(
                &args.client,
                reqwest::Method::POST,
                &args.id,
                "/relock",
                args.if_version,
            )
            .await
        }
    })
}

async fn start_run(args: RunArgs) -> ExitCode {
    let started = async {
        let input: Value = serde_json::from_str(&crate::run::read_input(&args.input)?)
            .context("the input is not JSON")?;
        let client = Client::new(&args.client)?;
        let mut request = client
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/agents/{}/runs", args.id),
            )?
            .json(&serde_json::json!({ "input": input }));
        if let Some(key) = &args.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let run = client.send(request).await?;
        Ok::<_, anyhow::Error>((client, run))
    }
    .await;
    let (client, run) = match started {
        Ok(started) => started,
        Err(e) => return exit::report(Err(e)),
    };
    if !args.watch {
        return exit::report(print(&run));
    }
    let id = run["id"].as_str().unwrap_or_default().to_owned();
    crate::task::watch(&client, &id, 0, 120).await
}

/// Runs a `workflow` command.
pub fn run_workflow(command: WorkflowCommand) -> ExitCode {
    match command {
        WorkflowCommand::Validate(args) => exit::report(validate(&args.file)),
    }
}

/// A JSON or YAML file as a JSON value (`-`: JSON from stdin).
fn read_document(path: &Path) -> Result<Value> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    omniforge_workflow::parse::value_of(&text, Format::of_path(path)).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow!("{}: {}", path.display(), lines.join("; "))
    })
}

fn validate(path: &Path) -> Result<()> {
    let document = read_document(path)?;
    let checked = omniforge_workflow::parse::from_value(&document)
        .and_then(omniforge_workflow::validate::check);
    match checked {
        Ok(plan) => {
            let workflow = plan.workflow();
            println!(
                "{}: valid ({} steps, {} skill steps, {} agent steps)",
                path.display(),
                workflow.all_steps().len(),
                workflow.skill_steps().count(),
                workflow.agents().len()
            );
            Ok(())
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{}: {problem}", path.display());
            }
            Err(anyhow!("{}: {} problem(s)", path.display(), problems.len()))
        }
    }
}

async fn create(args: FileArgs) -> Result<()> {
    let definition = read_document(&args.file)?;
    let client = Client::new(&args.client)?;
    let request = client
        .request(reqwest::Method::POST, "/api/v1/agents")?
        .json(&definition);
    print(&client.send(request).await?)
}

async fn update(args: UpdateArgs) -> Result<()> {
    let definition = read_document(&args.file)?;
    let client = Client::new(&args.client)?;
    let version = match args.if_version {
        Some(version) => version,
        None => {
            let current = client
                .send(client.request(reqwest::Method::GET, &format!("/api/v1/agents/{}", args.id))?)
                .await?;
            current["version"]
                .as_i64()
                .ok_or_else(|| anyhow!("the server's answer has no version"))?
        }
    };
    let request = client
        .request(reqwest::Method::PUT, &format!("/api/v1/agents/{}", args.id))?
        .header("if-match", format!("\"{version}\""))
        .json(&definition);
    print(&client.send(request).await?)
}

async fn show(
    client: &ClientArgs,
    method: reqwest::Method,
    id: &str,
    action: &str,
    version: Option<i64>,
) -> Result<()> {
    let client = Client::new(client)?;
    let deleting = method == reqwest::Method::DELETE;
    let mut request = client.request(method, &format!("/api/v1/agents/{id}{action}"))?;
    if let Some(version) = version {
        request = request.header("if-match", format!("\"{version}\""));
    }
    let answer = client.send(request).await?;
    if deleting {
        println!("deleted {id}");
        return Ok(());
    }
    print(&answer)
}

async fn list(args: ListArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(skill) = args.skill {
        query.push(("skill", skill));
    }
    if let Some(status) = args.status {
        query.push(("status", status));
    }
    let request = client
        .request(reqwest::Method::GET, "/api/v1/agents")?
        .query(&query);
    print(&client.send(request).await?)
}
