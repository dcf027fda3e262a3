//! Starting a run from a message: its input, its context, and the message id as the run's
//! idempotency key, so a message delivered twice starts one run.

use std::time::Duration;

use a2a::{A2AError, SendMessageRequest};
use omniforge_control::tasks::{SubmitError, SubmitRun};
use omniforge_store::{Submission, Task};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::rpc::{Call, Refusal, run_of};
use super::wire::{OutputMode, input_of};
use crate::api::tasks::create::canonical;
use crate::error::ApiError;

/// The longest message or context id taken (they become idempotency keys and columns).
const MAX_ID: usize = 200;

/// Starts the run a message asks for, or finds the one an earlier delivery of the same
/// message started (the message id is the idempotency key).
pub(super) async fn start(
    call: &Call,
    request: &SendMessageRequest,
) -> Result<(Task, OutputMode), Refusal> {
    let message = &request.message;
    if let Some(task) = message.task_id.as_deref().filter(|t| !t.is_empty()) {
        let task = run_of(call, task).await?;
        let why = if task.state.is_terminal() {
            format!(
                "task {} has ended ({}); send a message without taskId to start a new run",
                task.id, task.state
            )
        } else {
            format!("task {} takes no further input while it runs", task.id)
        };
        return Err(A2AError::unsupported_operation(why).into());
    }
    let configuration = request.configuration.as_ref();
    if configuration.is_some_and(|c| c.task_push_notification_config.is_some()) {
        return Err(A2AError::push_notification_not_supported().into());
    }
    let mode =
        OutputMode::accepted(configuration.and_then(|c| c.accepted_output_modes.as_deref()))?;
    if !plain_id(&message.message_id) {
        return Err(A2AError::invalid_params(format!(
            "message.messageId: 1 to {MAX_ID} visible ASCII characters"
        ))
        .into());
    }
    let context = message.context_id.as_deref().filter(|c| !c.is_empty());
    if context.is_some_and(|c| !plain_id(c)) {
        return Err(A2AError::invalid_params(format!(
            "message.contextId: 1 to {MAX_ID} visible ASCII characters"
        ))
        .into());
    }
    let input = input_of(message)?;
    // What the client sent, not what the server adds: a retry of the message matches.
    let fingerprint = canonical(&json!({
        "agent": call.endpoint.agent.id.as_str(),
        "context": context,
        "input": serde_json::from_str::<Value>(input.get()).unwrap_or_default(),
    }));
    let digest = hex::encode(Sha256::digest(fingerprint.as_bytes()));
    let submission = call
        .app
        .tasks
        .submit_run(
            &call.principal.tenant,
            SubmitRun {
                agent: call.endpoint.agent.id.clone(),
                input,
                priority: 0,
                created_by: call.principal.actor(),
                request_id: call.request_id.clone(),
                idempotency: Some((idempotency_key(call, &message.message_id), digest)),
                parent: None,
                context: Some(context.map_or_else(a2a::new_context_id, str::to_owned)),
            },
        )
        .await;
    let task = match submission {
        Ok(Submission::Created(task) | Submission::Replayed(task)) => task,
        Ok(Submission::KeyReused) => {
            return Err(A2AError::invalid_params(format!(
                "message {} was sent before with other content; give a new message a new messageId",
                message.message_id
            ))
            .into());
        }
        Ok(Submission::QueueFull { max_queued }) => {
            return Err(ApiError::too_many_requests(
                format!("the tenant already has {max_queued} tasks queued (max_queued_tasks)"),
                "max_queued_tasks",
                Duration::from_secs(5),
            )
            .into());
        }
        Err(SubmitError::InvalidInput(error)) => {
            return Err(A2AError::invalid_params(format!("input: {}", error.message)).into());
        }
        Err(SubmitError::NoAgent) => return Err(ApiError::not_found("agent").into()),
        Err(SubmitError::Store(error)) => return Err(error.into()),
        Err(SubmitError::Resolve(error)) => {
            return Err(A2AError::internal(format!("the run cannot start: {error}")).into());
        }
    };
    Ok((task, mode))
}

/// The idempotency key of message `id` to the call's agent. It holds a space, which no
/// `Idempotency-Key` header can, so REST clients of the tenant cannot claim it first; and it
/// names the agent, so the same message id sent to two agents starts two runs.
fn idempotency_key(call: &Call, id: &str) -> String {
    format!("a2a {} {id}", call.endpoint.agent.id)
}

/// Whether a message or context id is 1 to [`MAX_ID`] visible ASCII characters.
fn plain_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}
