//! `omniforge skill publish|invoke|list|search|yank|unyank`: talk to a running server.
//!
//! The server and API key come from flags, else `OMNIFORGE_SERVER` / `OMNIFORGE_API_KEY`,
//! else the client config file (`$XDG_CONFIG_HOME/omniforge/config.toml` or
//! `~/.config/omniforge/config.toml`, keys `server` and `api_key`), else the server defaults
//! to `http://127.0.0.1:8080`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use omniforge_registry::{PackageLimits, pack_dir};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::exit;
use crate::run::read_input;

/// Where the server is and who we are.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server base URL [env: OMNIFORGE_SERVER; default: the config file's, or
    /// http://127.0.0.1:8080].
    #[arg(long)]
    server: Option<String>,
    /// API key [env: OMNIFORGE_API_KEY; default: the config file's].
    #[arg(long, hide_env_values = true)]
    api_key: Option<String>,
    /// Client config file (TOML with `server` and `api_key`).
    #[arg(long)]
    client_config: Option<PathBuf>,
}

/// Arguments of `omniforge skill publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// A package (`.zip`) or a directory with omniforge.toml and the built component (packed
    /// first).
    package: PathBuf,
    /// Return as soon as the server has stored the package, without waiting for it to
    /// compile the component (until it has, invocations answer 503 `skill-compiling`).
    #[arg(long)]
    no_wait: bool,
    /// Longest wait for the server to compile the component, in seconds.
    #[arg(long, default_value_t = 600)]
    wait_secs: u64,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge skill invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// `namespace/name`, optionally `@requirement` (`examples/hello@^1`).
    skill: String,
    /// The input JSON; `-` reads it from stdin, `@FILE` from a file.
    #[arg(long, short, default_value = "{}")]
    input: String,
    /// Print the whole answer (output, version, usage) instead of the output alone.
    #[arg(long)]
    report: bool,
    /// Longest wait, in seconds, for a server still compiling the skill (it answers 503
    /// `skill-compiling` with `Retry-After`; the invocation is retried after it).
    #[arg(long, default_value_t = 300)]
    wait_secs: u64,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge skill list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the caller's tenant's skills.
    #[arg(long)]
    mine: bool,
    /// `name`, `updated` or `downloads`.
    #[arg(long, default_value = "name")]
    sort: String,
    /// How many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge skill search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to find in names, descriptions and keywords.
    query: String,
    /// How many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Arguments of `omniforge skill yank` and `unyank`.
#[derive(Debug, Args)]
pub struct YankArgs {
    /// `namespace/name@version`.
    skill: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    server: Option<String>,
    api_key: Option<String>,
}

/// A configured HTTP client for one server.
pub(crate) struct Client {
    http: reqwest::Client,
    pub(crate) base: String,
    key: Option<String>,
}

fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("omniforge").join("config.toml"))
}

/// The server's base URL and the API key (if any) that `args`, the environment and the client
/// config file name.
pub(crate) fn endpoint(args: &ClientArgs) -> Result<(String, Option<String>)> {
    let client = Client::new(args)?;
    Ok((client.base, client.key))
}

impl Client {
    pub(crate) fn new(args: &ClientArgs) -> Result<Self> {
        let path = config_path(args.client_config.as_deref());
        let file = match &path {
            Some(path) if path.exists() || args.client_config.is_some() => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("{}", path.display()))?
            }
            _ => ClientFile::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let base = args
            .server
            .clone()
            .or_else(|| env("OMNIFORGE_SERVER"))
            .or(file.server)
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let key = args
            .api_key
            .clone()
            .or_else(|| env("OMNIFORGE_API_KEY"))
            .or(file.api_key);
        Ok(Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key,
        })
    }

    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder> {
        let key = self.key.as_deref().ok_or_else(|| {
            anyhow!("no API key: pass --api-key, set OMNIFORGE_API_KEY, or put api_key in the client config file")
        })?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key))
    }

    /// Sends a request and returns the JSON answer, or the problem as an error.
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, Problem> {
        let response = request.send().await.map_err(|e| Problem {
            status: 0,
            kind: String::new(),
            message: format!("cannot reach {}: {e}", self.base),
            retry_after: None,
        })?;
        Self::answer(response).await
    }

    /// The JSON of a response, or its problem as an error.
    pub(crate) async fn answer(response: reqwest::Response) -> Result<Value, Problem> {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status < 400 {
            return Ok(body);
        }
        let kind = body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        let mut detail = body["detail"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        // Every problem of a refused document, one per line (the detail names the first).
        if let Some(problems) = body["problems"].as_array().filter(|p| p.len() > 1) {
            for problem in problems {
                let step = problem["step"].as_str().map(|s| format!("step {s:?}, "));
                detail.push_str(&format!(
                    "\n  {}{}: {}",
                    step.unwrap_or_default(),
                    problem["field"].as_str().unwrap_or_default(),
                    problem["message"].as_str().unwrap_or_default()
                ));
            }
        }
        // A skill's own error names its kind (`invalid-input`, `not-found`, …) too.
        let label = match (kind.as_str(), body["kind"].as_str()) {
            ("", _) => String::new(),
            ("skill-error", Some(skill_kind)) => format!(" skill-error ({skill_kind})"),
            (kind, _) => format!(" {kind}"),
        };
        Err(Problem {
            status,
            message: format!("{status}{label}: {detail}"),
            kind,
            retry_after,
        })
    }
}

/// An error answer of the server (or none: status 0 when it could not be reached).
#[derive(Debug)]
pub(crate) struct Problem {
    status: u16,
    pub(crate) kind: String,
    message: String,
    /// The `Retry-After` seconds, when the server said.
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem document the server stored (a task's `error`).
    pub(crate) fn from_document(document: &Value) -> Self {
        let kind = document["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        let status = document["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(500);
        let detail = document["detail"].as_str().unwrap_or_default();
        Self {
            status,
            message: format!("{status} {kind}: {detail}"),
            kind,
            retry_after: None,
        }
    }

    /// The exit code from the table in [`crate::exit`].
    pub(crate) fn exit_code(&self) -> u8 {
        match (self.status, self.kind.as_str()) {
            (_, "skill-trapped") => exit::TRAP,
            (_, "limit-exceeded" | "timeout") | (429, _) => exit::LIMIT,
            (_, "invalid-input" | "skill-error") => exit::SKILL_ERROR,
            (401 | 403, _) => exit::AUTH,
            (0, _) | (500.., _) => exit::UNAVAILABLE,
            _ => exit::USAGE,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

fn package_bytes(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        let (bytes, _) = pack_dir(path, None, &PackageLimits::default())
            .with_context(|| format!("packing {}", path.display()))?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Uploads a package, with a progress bar on a terminal.
pub async fn publish(args: PublishArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let bytes = package_bytes(&args.package)?;
    let total = bytes.len() as u64;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("uploading {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let chunks: Vec<Vec<u8>> = bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        progress.inc(chunk.len() as u64);
        Ok::<_, std::io::Error>(chunk)
    }));
    let request = client
        .request(reqwest::Method::POST, "/api/v1/skills")?
        .header(reqwest::header::CONTENT_TYPE, "application/zip")
        .header(reqwest::header::CONTENT_LENGTH, total)
        .body(reqwest::Body::wrap_stream(stream));
    let answer = client.send(request).await;
    bar.finish_and_clear();
    let answer = answer?;
    let (name, version) = (
        answer["name"].as_str().unwrap_or_default(),
        answer["version"].as_str().unwrap_or_default(),
    );
    println!(
        "published {name} {version} (sha256:{}, {} bytes, {})",
        answer["digest"].as_str().unwrap_or_default(),
        answer["size_bytes"],
        answer["visibility"].as_str().unwrap_or_default(),
    );
    if answer["compiled"] == Value::Bool(false) && !args.no_wait {
        wait_until_compiled(&client, name, version, args.wait_secs).await?;
    }
    Ok(())
}

/// Polls the version until the server has compiled its component (publishing answered
/// before the compile ended: a large component on a busy machine).
async fn wait_until_compiled(
    client: &Client,
    name: &str,
    version: &str,
    wait_secs: u64,
) -> Result<()> {
    eprintln!("the server is compiling {name} {version}; waiting (--no-wait to skip)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_secs);
    loop {
        let request = client.request(
            reqwest::Method::GET,
            &format!("/api/v1/skills/{name}/versions/{version}"),
        )?;
        if client.send(request).await?["compiled"] == Value::Bool(true) {
            eprintln!("compiled: {name} {version} is ready to invoke");
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Problem {
                status: 503,
                kind: "skill-compiling".into(),
                message: format!(
                    "{name} {version} is published but still compiling after {wait_secs} s; \
                     invocations answer 503 skill-compiling until it is done"
                ),
                retry_after: None,
            }
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Splits `ns/name[@req]`.
pub(crate) fn parse_target(target: &str) -> Result<(&str, Option<&str>)> {
    let (name, req) = match target.split_once('@') {
        Some((name, req)) => (name, Some(req)),
        None => (target, None),
    };
    let valid = name
        .split_once('/')
        .is_some_and(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'));
    if !valid {
        bail!("{target:?}: expected namespace/name, optionally @requirement");
    }
    Ok((name, req))
}

/// Invokes a skill and prints its output; exits like `omniforge run` on failures.
pub async fn invoke(args: InvokeArgs) -> ExitCode {
    exit::report(try_invoke(&args).await)
}

async fn try_invoke(args: &InvokeArgs) -> Result<()> {
    let (name, requirement) = parse_target(&args.skill)?;
    // Sent as written: re-serializing a parsed value would reorder the input's keys.
    let input: Box<RawValue> =
        serde_json::from_str(&read_input(&args.input)?).context("the input is not JSON")?;
    let client = Client::new(&args.client)?;
    #[derive(serde::Serialize)]
    struct Body<'a> {
        input: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
    }
    let body = Body {
        input: &input,
        version: requirement,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.wait_secs);
    let mut noted = false;
    let answer = loop {
        let request = client
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/skills/{name}/invoke"),
            )?
            .json(&body);
        match client.send(request).await {
            Err(problem) if problem.kind == "skill-compiling" => {
                let wait = std::time::Duration::from_secs(problem.retry_after.unwrap_or(2));
                if std::time::Instant::now() + wait > deadline {
                    return Err(problem.into());
                }
                if !noted {
                    eprintln!("the server is still compiling {name}; retrying");
                    noted = true;
                }
                tokio::time::sleep(wait).await;
            }
            other => break other?,
        }
    };
    if args.report {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        println!("{}", answer["output"]);
    }
    if let Some(pending) = answer.get("pending_update") {
        eprintln!(
            "note: {} {} asks for new permissions ({}); update the installation to use it",
            name,
            pending["version"].as_str().unwrap_or_default(),
            pending["new_permissions"]
        );
    }
    Ok(())
}

fn print_skills(page: &Value, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&page["items"])?);
        return Ok(());
    }
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("no skills found");
    }
    for skill in items {
        println!(
            "{:<40} {:<10} {:<8} {}",
            skill["full_name"].as_str().unwrap_or_default(),
            skill["latest_version"].as_str().unwrap_or("-"),
            skill["visibility"].as_str().unwrap_or_default(),
            skill["description"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

/// Lists skills the caller can see.
pub async fn list(args: ListArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let mut query = vec![
        ("sort", args.sort.clone()),
        ("limit", args.limit.to_string()),
    ];
    if args.mine {
        query.push(("owner", "mine".into()));
    }
    let request = client
        .request(reqwest::Method::GET, "/api/v1/skills")?
        .query(&query);
    print_skills(&client.send(request).await?, args.json)
}

/// Searches skills.
pub async fn search(args: SearchArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let request = client
        .request(reqwest::Method::GET, "/api/v1/skills")?
        .query(&[("q", args.query.clone()), ("limit", args.limit.to_string())]);
    print_skills(&client.send(request).await?, args.json)
}

/// Yanks (or unyanks) one version.
pub async fn yank(args: YankArgs, yanked: bool) -> Result<()> {
    let (name, version) = parse_target(&args.skill)?;
    let version = version.ok_or_else(|| anyhow!("name the version: {name}@1.2.3"))?;
    let client = Client::new(&args.client)?;
    let action = if yanked { "yank" } else { "unyank" };
    let request = client.request(
        reqwest::Method::POST,
        &format!("/api/v1/skills/{name}/versions/{version}/{action}"),
    )?;
    client.send(request).await?;
    println!("{action}ed {name} {version}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_namespace_name_and_an_optional_requirement() {
        assert_eq!(parse_target("a/b").unwrap(), ("a/b", None));
        assert_eq!(parse_target("a/b@^1.2").unwrap(), ("a/b", Some("^1.2")));
        for bad in ["a", "/b", "a/", "a/b/c", "a/b/c@1"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
