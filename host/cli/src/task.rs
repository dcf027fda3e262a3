//! `omniforge task submit|get|list|cancel|retry|watch`: durable tasks on a server.
//!
//! `watch` follows a task's Server-Sent Events and prints each as a JSON line. When the
//! connection drops (a server restarting, a proxy timing out) it reconnects with the last
//! event id it printed, so it prints every event once, in order, and ends with the task.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::exit;
use crate::remote::{Client, ClientArgs, Problem, parse_target};
use crate::run::read_input;

/// Durable tasks: asynchronous invocations that survive restarts.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Queue a skill's invocation as a task and print it (or follow it with --watch).
    Submit(SubmitArgs),
    /// Print a task.
    Get(IdArgs),
    /// List your tenant's tasks, newest first.
    List(ListArgs),
    /// Cancel a task: a queued one never starts, a running one is stopped.
    Cancel(IdArgs),
    /// Run a failed or canceled task again, as a new task.
    Retry(IdArgs),
    /// Print a task's events as JSON lines until it ends; exits as the task ended.
    Watch(WatchArgs),
}

/// Arguments of `omniforge task submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// `namespace/name`, optionally `@requirement` (`examples/hello@^1`).
    skill: String,
    /// The input JSON; `-` reads it from stdin, `@FILE` from a file.
    #[arg(long, short, default_value = "{}")]
    input: String,
    /// Higher runs first among your queued tasks (-1000 to 1000).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    priority: i32,
    /// Do not start before this time (unix milliseconds).
    #[arg(long)]
    not_before_ms: Option<i64>,
    /// Makes the submission safe to repeat: the same key and input answer the same task.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Follow the task's events until it ends, as `watch` does.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// A task id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The task's id (`tsk_…`).
    id: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge task list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks in this state (submitted, working, completed, failed, canceled).
    #[arg(long)]
    state: Option<String>,
    /// Only tasks of this skill.
    #[arg(long)]
    skill: Option<String>,
    /// How many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge task watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The task's id (`tsk_…`).
    id: String,
    /// Print events numbered after this one only.
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// How long to keep trying to reconnect to a server that went away, in seconds.
    #[arg(long, default_value_t = 120)]
    reconnect_secs: u64,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs a `task` command.
pub async fn run(command: TaskCommand) -> ExitCode {
    match command {
        TaskCommand::Submit(args) => submit(args).await,
        TaskCommand::Get(args) => exit::report(show(&args, reqwest::Method::GET, "").await),
        TaskCommand::List(args) => exit::report(list(args).await),
        TaskCommand::Cancel(args) => {
            exit::report(show(&args, reqwest::Method::POST, "/cancel").await)
        }
        TaskCommand::Retry(args) => {
            exit::report(show(&args, reqwest::Method::POST, "/retry").await)
        }
        TaskCommand::Watch(args) => {
            let client = match Client::new(&args.client) {
                Ok(client) => client,
                Err(e) => return exit::report(Err(e)),
            };
            watch(&client, &args.id, args.after, args.reconnect_secs).await
        }
    }
}

async fn submit(args: SubmitArgs) -> ExitCode {
    let submitted = async {
        let (name, requirement) = parse_target(&args.skill)?;
        let input: Box<RawValue> =
            serde_json::from_str(&read_input(&args.input)?).context("the input is not JSON")?;
        let client = Client::new(&args.client)?;
        let mut body = json!({ "skill": name, "input": input, "priority": args.priority });
        if let Some(requirement) = requirement {
            body["version"] = json!(requirement);
        }
        if let Some(at) = args.not_before_ms {
            body["not_before_ms"] = json!(at);
        }
        let mut request = client
            .request(reqwest::Method::POST, "/api/v1/tasks")?
            .json(&body);
        if let Some(key) = &args.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let task = client.send(request).await?;
        Ok::<_, anyhow::Error>((client, task))
    }
    .await;
    let (client, task) = match submitted {
        Ok(submitted) => submitted,
        Err(e) => return exit::report(Err(e)),
    };
    if !args.watch {
        return exit::report(print(&task));
    }
    let id = task["id"].as_str().unwrap_or_default().to_owned();
    watch(&client, &id, 0, 120).await
}

async fn show(args: &IdArgs, method: reqwest::Method, action: &str) -> Result<()> {
    let client = Client::new(&args.client)?;
    let request = client.request(method, &format!("/api/v1/tasks/{}{action}", args.id))?;
    print(&client.send(request).await?)
}

async fn list(args: ListArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(state) = args.state {
        query.push(("state", state));
    }
    if let Some(skill) = args.skill {
        query.push(("skill", skill));
    }
    let request = client
        .request(reqwest::Method::GET, "/api/v1/tasks")?
        .query(&query);
    print(&client.send(request).await?)
}

/// Prints a server's answer as pretty JSON.
pub(crate) fn print(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// One Server-Sent Event.
#[derive(Debug, Default)]
struct Event {
    id: Option<i64>,
    kind: String,
    data: String,
}

/// Follows `id`'s events after `after`, printing each as a JSON line, until its last; exits
/// 0 when it completed, otherwise with the code of its error.
pub(crate) async fn watch(
    client: &Client,
    id: &str,
    mut after: i64,
    reconnect_secs: u64,
) -> ExitCode {
    let mut last_contact = Instant::now();
    loop {
        match follow(client, id, &mut after).await {
            Ok(Some(state)) => return exit_code(client, id, &state).await,
            // The stream ended before the task did: reconnect at once.
            Ok(None) => last_contact = Instant::now(),
            Err(Followed::Refused(problem)) => return exit::report(Err(problem.into())),
            Err(Followed::Lost(e)) => {
                if last_contact.elapsed() > Duration::from_secs(reconnect_secs) {
                    return exit::report(Err(e.context(format!(
                        "the server stayed unreachable for {reconnect_secs} s"
                    ))));
                }
                eprintln!("lost the event stream ({e:#}); reconnecting after event {after}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Why a stream stopped early.
enum Followed {
    /// The server answered with a problem: reconnecting will not help.
    Refused(Problem),
    /// The connection failed or dropped.
    Lost(anyhow::Error),
}

/// One connection's worth of events; `Some(state)` once the task's last event was printed.
async fn follow(client: &Client, id: &str, after: &mut i64) -> Result<Option<String>, Followed> {
    let request = client
        .request(reqwest::Method::GET, &format!("/api/v1/tasks/{id}/events"))
        .map_err(Followed::Lost)?
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .header("last-event-id", after.to_string());
    let response = request
        .send()
        .await
        .map_err(|e| Followed::Lost(anyhow!("cannot reach {}: {e}", client.base)))?;
    if !response.status().is_success() {
        let problem = Client::answer(response)
            .await
            .err()
            .unwrap_or_else(|| Problem::from_document(&Value::Null));
        return Err(match problem.exit_code() {
            exit::UNAVAILABLE => Followed::Lost(problem.into()),
            _ => Followed::Refused(problem),
        });
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut event = Event::default();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Followed::Lost(e.into()))?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if !line.is_empty() {
                field(&mut event, line);
                continue;
            }
            let done = std::mem::take(&mut event);
            let Some(seq) = done.id else { continue };
            *after = seq;
            let data: Value = serde_json::from_str(&done.data).unwrap_or(Value::Null);
            println!("{}", json!({ "seq": seq, "type": done.kind, "data": data }));
            if let Some(state) = ending(&done.kind, &data) {
                return Ok(Some(state));
            }
        }
    }
    Ok(None)
}

/// Reads one `field: value` line into `event` (comments and unknown fields are ignored).
fn field(event: &mut Event, line: &str) {
    let (name, value) = line.split_once(':').unwrap_or((line, ""));
    let value = value.strip_prefix(' ').unwrap_or(value);
    match name {
        "id" => event.id = value.parse().ok(),
        "event" => event.kind = value.to_owned(),
        "data" => {
            if !event.data.is_empty() {
                event.data.push('\n');
            }
            event.data.push_str(value);
        }
        _ => {}
    }
}

/// The state `data` ends the task in, when it is the task's last state event.
fn ending(kind: &str, data: &Value) -> Option<String> {
    let state = data["state"].as_str().filter(|_| kind == "state")?;
    matches!(state, "completed" | "failed" | "canceled").then(|| state.to_owned())
}

/// The exit code of a task that ended `state`: 0 when it completed, otherwise its error's.
async fn exit_code(client: &Client, id: &str, state: &str) -> ExitCode {
    if state == "completed" {
        return ExitCode::SUCCESS;
    }
    let task = match client.request(reqwest::Method::GET, &format!("/api/v1/tasks/{id}")) {
        Ok(request) => client.send(request).await.ok(),
        Err(_) => None,
    };
    let problem = task.as_ref().and_then(|t| t.get("error"));
    if let Some(problem) = problem {
        eprintln!("task {id} {state}: {}", Problem::from_document(problem));
    }
    ExitCode::from(problem.map_or(exit::USAGE, |p| Problem::from_document(p).exit_code()))
}
