//! The JSON-RPC binding of one agent: one request per POST, dispatched by method.
//!
//! `SendMessage` waits for the run to end (or for the request's time to run out) unless the
//! client asked `returnImmediately`; `CancelTask` waits a little for a running run to stop,
//! so the task it answers says `canceled` whenever the run stops promptly. Methods the
//! agent does not offer (push notifications, an extended card, listing tasks) answer
//! their A2A errors.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use a2a::{
    A2AError, CancelTaskRequest, GetTaskRequest, JsonRpcId, JsonRpcResponse, SendMessageRequest,
    SendMessageResponse, SubscribeToTaskRequest, error_code, methods,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use omniforge_store::{Canceled, StoreError, Task, TaskId, TaskTarget};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::send::start;
use super::wire::{OutputMode, wire_task};
use super::{Endpoint, find, stream};
use crate::api::tasks::follow::{REREAD, signalled};
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::rbac::Permission;
use crate::error::ApiError;
use crate::middleware::{RequestId, RequestStart};

/// Time kept at the end of a request's timeout for answering.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// How long `CancelTask` waits for a running run to stop before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Why a request was not answered with a result: an A2A error inside the JSON-RPC answer,
/// or a refusal of the HTTP request itself (no such agent, a permission, a full queue).
pub(super) enum Refusal {
    Rpc(A2AError),
    Http(ApiError),
}

impl From<A2AError> for Refusal {
    fn from(error: A2AError) -> Self {
        Self::Rpc(error)
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self::Http(error)
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        tracing::error!("an A2A request failed on the database: {error}");
        Self::Rpc(A2AError::internal(
            "the server could not read or write its database",
        ))
    }
}

/// One JSON-RPC request, with who sent it to which agent.
pub(super) struct Call {
    pub(super) app: AppState,
    pub(super) principal: Principal,
    pub(super) endpoint: Endpoint,
    pub(super) request_id: String,
    pub(super) headers: HeaderMap,
    pub(super) peer: Option<IpAddr>,
    /// When the answer must be on its way: the request's timeout, less a margin.
    pub(super) deadline: Instant,
}

/// What a method answers: a result, or a stream of them.
enum Answer {
    Result(Value),
    Stream(Response),
}

/// Answers one JSON-RPC request to the agent the path names.
pub(super) async fn handle(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path((slug, name)): Path<(String, String)>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    let (id, method, params) = match envelope(&body) {
        Ok(request) => request,
        Err((id, error)) => return rpc_error(id, &error),
    };
    if let Some(version) = headers.get(a2a::SVC_PARAM_VERSION) {
        let version = version.to_str().unwrap_or("").trim();
        if !(version == "1" || version.starts_with("1.")) {
            let shown = if version.is_empty() { "0.3" } else { version };
            return rpc_error(id, &A2AError::version_not_supported(shown));
        }
    }
    let endpoint = match find(&app, &slug, &name).await {
        Ok(Some(endpoint)) if endpoint.tenant.id == principal.tenant => endpoint,
        Ok(_) => return ApiError::not_found("agent").into_response(),
        Err(error) => return error.into_response(),
    };
    let Some(permissions) = permissions_of(&method) else {
        return rpc_error(id, &A2AError::method_not_found(&method));
    };
    if let Some(missing) = permissions.iter().find(|p| !principal.can(**p)) {
        return ApiError::forbidden(format!("{method} needs the {missing} permission"))
            .with("permission", missing.as_str())
            .into_response();
    }
    let timeout = Duration::from_millis(app.config.http.request_timeout_ms);
    let started = extensions
        .get::<RequestStart>()
        .map_or_else(Instant::now, |start| start.0);
    let call = Call {
        peer: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip()),
        deadline: started + timeout.saturating_sub(ANSWER_MARGIN),
        app,
        principal,
        endpoint,
        request_id,
        headers,
    };
    let answered = match method.as_str() {
        methods::SEND_MESSAGE => send_message(&call, params).await.map(Answer::Result),
        methods::SEND_STREAMING_MESSAGE => send_streaming(&call, id.clone(), params)
            .await
            .map(Answer::Stream),
        methods::SUBSCRIBE_TO_TASK => subscribe(&call, id.clone(), params)
            .await
            .map(Answer::Stream),
        methods::GET_TASK => get_task(&call, params).await.map(Answer::Result),
        methods::CANCEL_TASK => cancel_task(&call, params).await.map(Answer::Result),
        methods::LIST_TASKS => Err(A2AError::unsupported_operation(
            "ListTasks is not offered: list an agent's runs with GET /api/v1/agents/{id}/runs",
        )
        .into()),
        methods::GET_EXTENDED_AGENT_CARD => Err(A2AError::extended_card_not_configured().into()),
        methods::CREATE_PUSH_CONFIG
        | methods::GET_PUSH_CONFIG
        | methods::LIST_PUSH_CONFIGS
        | methods::DELETE_PUSH_CONFIG => Err(A2AError::push_notification_not_supported().into()),
        _ => Err(A2AError::method_not_found(&method).into()),
    };
    match answered {
        Ok(Answer::Result(result)) => Json(JsonRpcResponse::success(id, result)).into_response(),
        Ok(Answer::Stream(response)) => response,
        Err(refusal) => refused(id, refusal),
    }
}

/// A method's parameters.
fn parse<T: DeserializeOwned>(params: Value) -> Result<T, Refusal> {
    serde_json::from_value(params)
        .map_err(|e| A2AError::invalid_params(format!("params: {e}")).into())
}

/// The id, method and params of a JSON-RPC request, or the error to answer with the id
/// read so far.
fn envelope(body: &[u8]) -> Result<(JsonRpcId, String, Value), (JsonRpcId, A2AError)> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| (JsonRpcId::Null, A2AError::parse_error(e.to_string())))?;
    let Value::Object(mut request) = request else {
        return Err((
            JsonRpcId::Null,
            A2AError::invalid_request("send one JSON-RPC request object (batches are not taken)"),
        ));
    };
    let id = match request.remove("id") {
        Some(Value::String(id)) => JsonRpcId::String(id),
        Some(Value::Number(n)) if n.is_i64() => JsonRpcId::Number(n.as_i64().unwrap_or(0)),
        Some(Value::Null) => JsonRpcId::Null,
        Some(_) => {
            return Err((
                JsonRpcId::Null,
                A2AError::invalid_request("id: a string, an integer or null"),
            ));
        }
        None => {
            return Err((
                JsonRpcId::Null,
                A2AError::invalid_request("id: required (notifications are not answered)"),
            ));
        }
    };
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err((id, A2AError::invalid_request("jsonrpc: must be \"2.0\"")));
    }
    let Some(Value::String(method)) = request.remove("method") else {
        return Err((id, A2AError::invalid_request("method: a string")));
    };
    let params = match request.remove("params") {
        None | Some(Value::Null) => json!({}),
        Some(params @ Value::Object(_)) => params,
        Some(_) => return Err((id, A2AError::invalid_params("params: an object"))),
    };
    Ok((id, method, params))
}

/// The permissions a method needs (`None`: no such method). A streaming send reads what it
/// writes, and its stream rechecks `task:read`.
fn permissions_of(method: &str) -> Option<&'static [Permission]> {
    if !methods::is_valid(method) {
        return None;
    }
    Some(match method {
        methods::SEND_STREAMING_MESSAGE => &[Permission::TaskWrite, Permission::TaskRead],
        methods::SEND_MESSAGE | methods::CANCEL_TASK => &[Permission::TaskWrite],
        methods::GET_EXTENDED_AGENT_CARD => &[Permission::AgentRead],
        _ => &[Permission::TaskRead],
    })
}

pub(super) fn rpc_error(id: JsonRpcId, error: &A2AError) -> Response {
    Json(JsonRpcResponse::error(id, error.to_jsonrpc_error())).into_response()
}

fn refused(id: JsonRpcId, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Rpc(error) => rpc_error(id, &error),
        Refusal::Http(error) => error.into_response(),
    }
}

async fn send_message(call: &Call, params: Value) -> Result<Value, Refusal> {
    let request: SendMessageRequest = parse(params)?;
    let return_immediately = request
        .configuration
        .as_ref()
        .and_then(|c| c.return_immediately)
        .unwrap_or(false);
    let (mut task, mode) = start(call, &request).await?;
    if !return_immediately {
        task = wait_for_end(call, &task.id, call.deadline).await?;
    }
    to_value(&SendMessageResponse::Task(wire_task(&task, mode)))
}

async fn send_streaming(call: &Call, id: JsonRpcId, params: Value) -> Result<Response, Refusal> {
    let request: SendMessageRequest = parse(params)?;
    if !call.endpoint.spec.card.streaming {
        return Err(A2AError::unsupported_operation("this agent does not stream").into());
    }
    // The stream's place first: a run started for a stream that is then refused would
    // run unwatched.
    let slot = stream::admit(call)?;
    let (task, mode) = start(call, &request).await?;
    Ok(stream::open(call, id, task, mode, slot))
}

async fn subscribe(call: &Call, id: JsonRpcId, params: Value) -> Result<Response, Refusal> {
    let request: SubscribeToTaskRequest = parse(params)?;
    if !call.endpoint.spec.card.streaming {
        return Err(A2AError::unsupported_operation("this agent does not stream").into());
    }
    let task = run_of(call, &request.id).await?;
    if task.state.is_terminal() {
        return Err(A2AError::unsupported_operation(format!(
            "task {} has ended ({}); read it with GetTask",
            task.id, task.state
        ))
        .into());
    }
    let slot = stream::admit(call)?;
    Ok(stream::open(call, id, task, OutputMode::Data, slot))
}

async fn get_task(call: &Call, params: Value) -> Result<Value, Refusal> {
    let request: GetTaskRequest = parse(params)?;
    if request.history_length.is_some_and(|n| n < 0) {
        return Err(A2AError::invalid_params("historyLength: 0 or more").into());
    }
    let task = run_of(call, &request.id).await?;
    to_value(&wire_task(&task, OutputMode::Data))
}

async fn cancel_task(call: &Call, params: Value) -> Result<Value, Refusal> {
    let request: CancelTaskRequest = parse(params)?;
    let task = run_of(call, &request.id).await?;
    let audit = call.principal.audit(&call.request_id);
    let canceled = call
        .app
        .tasks
        .cancel(&call.principal.tenant, &audit, &task.id)
        .await?
        .ok_or_else(|| A2AError::task_not_found(task.id.as_str()))?;
    let task = match canceled {
        Canceled::Dequeued(task) => task,
        Canceled::Requested(task) => {
            let until = call.deadline.min(Instant::now() + CANCEL_WAIT);
            wait_for_end(call, &task.id, until).await?
        }
        Canceled::AlreadyEnded(task) => {
            return Err(A2AError::new(
                error_code::TASK_NOT_CANCELABLE,
                format!("task {} has already ended ({})", task.id, task.state),
            )
            .into());
        }
    };
    to_value(&wire_task(&task, OutputMode::Data))
}

/// The run `id` of the endpoint's agent, or task-not-found (another agent's runs and
/// other tenants' tasks included).
pub(super) async fn run_of(call: &Call, id: &str) -> Result<Task, Refusal> {
    let not_found = || A2AError::task_not_found(id);
    let id = crate::api::tasks::task_id(id).map_err(|_| not_found())?;
    let task = call
        .app
        .db
        .tenant(&call.principal.tenant)
        .task(&id)
        .await?
        .ok_or_else(not_found)?;
    match &task.target {
        TaskTarget::Agent { agent_id, .. } if *agent_id == call.endpoint.agent.id => Ok(task),
        _ => Err(not_found().into()),
    }
}

/// The task once it has ended, or as it is at `until`.
async fn wait_for_end(call: &Call, id: &TaskId, until: Instant) -> Result<Task, Refusal> {
    let store = call.app.db.tenant(&call.principal.tenant);
    // Subscribed before the first read, so no signal falls in between.
    let mut follow = call.app.tasks.signals().follow_events();
    let until = tokio::time::Instant::from_std(until);
    loop {
        let task = store
            .task(id)
            .await?
            .ok_or_else(|| A2AError::task_not_found(id.as_str()))?;
        if task.state.is_terminal() || tokio::time::Instant::now() >= until {
            return Ok(task);
        }
        tokio::select! {
            () = signalled(&mut follow, id) => {}
            () = tokio::time::sleep(REREAD) => {}
            () = tokio::time::sleep_until(until) => {}
            () = call.app.stopping.cancelled() => return Ok(task),
        }
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, Refusal> {
    serde_json::to_value(value).map_err(|e| A2AError::internal(e.to_string()).into())
}
