//! Between agent runs and A2A's wire types: a run as an A2A `Task`, its events as stream
//! responses, and a message's parts as a run's input. One place, so `SendMessage`,
//! `GetTask` and every stream describe a run the same way.

use a2a::{
    A2AError, Artifact, Message, Part, PartContent, Role, StreamResponse, Task as WireTask,
    TaskArtifactUpdateEvent, TaskState as WireState, TaskStatus, TaskStatusUpdateEvent, error_code,
};
use chrono::{DateTime, Utc};
use omniforge_store::{EventKind, Task, TaskEvent, TaskState};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The id of the one artifact a completed run has: its output.
const OUTPUT_ARTIFACT: &str = "output";

/// The media type of JSON parts.
const JSON: &str = "application/json";

/// How a run's output is handed back: as a data part, or as a text part holding its JSON
/// (for clients that accept only `text/plain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputMode {
    Data,
    Text,
}

impl OutputMode {
    /// The mode for a client's `acceptedOutputModes` (none: any).
    pub(crate) fn accepted(modes: Option<&[String]>) -> Result<Self, A2AError> {
        let Some(modes) = modes.filter(|m| !m.is_empty()) else {
            return Ok(Self::Data);
        };
        let accepts = |wanted: &str| {
            modes.iter().any(|m| {
                let m = m.split(';').next().unwrap_or("").trim();
                m.eq_ignore_ascii_case(wanted) || m == "*/*"
            })
        };
        if accepts(JSON) {
            Ok(Self::Data)
        } else if accepts("text/plain") {
            Ok(Self::Text)
        } else {
            Err(A2AError::new(
                error_code::CONTENT_TYPE_NOT_SUPPORTED,
                format!(
                    "this agent answers application/json or text/plain, not {}",
                    modes.join(", ")
                ),
            ))
        }
    }
}

/// A run's input from the message that starts it: its one data part, or its one text part
/// (JSON text is parsed; other text is a JSON string).
pub(crate) fn input_of(message: &Message) -> Result<Box<RawValue>, A2AError> {
    let value = match message.parts.as_slice() {
        [] => {
            return Err(A2AError::invalid_params(
                "message.parts: give the run's input in one part",
            ));
        }
        [part] => match &part.content {
            PartContent::Data(value) => value.clone(),
            PartContent::Text(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
            PartContent::Raw(_) | PartContent::Url(_) => {
                return Err(A2AError::new(
                    error_code::CONTENT_TYPE_NOT_SUPPORTED,
                    "this agent takes its input as a data part or a text part, not a file",
                ));
            }
        },
        _ => {
            return Err(A2AError::invalid_params(
                "message.parts: give the run's input in one data part or one text part",
            ));
        }
    };
    serde_json::value::to_raw_value(&value).map_err(|e| A2AError::internal(e.to_string()))
}

/// A2A's name for a task state.
pub(crate) fn wire_state(state: TaskState) -> WireState {
    match state {
        TaskState::Submitted => WireState::Submitted,
        TaskState::Working => WireState::Working,
        TaskState::Completed => WireState::Completed,
        TaskState::Failed => WireState::Failed,
        TaskState::Canceled => WireState::Canceled,
    }
}

/// The context a run belongs to: the one it was started in, else (a run started through
/// REST) its own id.
pub(crate) fn context_of(task: &Task) -> String {
    task.context_id
        .clone()
        .unwrap_or_else(|| task.id.to_string())
}

/// A run as an A2A task: its state, why it failed or was canceled, and its output as an
/// artifact once it completed.
pub(crate) fn wire_task(task: &Task, mode: OutputMode) -> WireTask {
    let context = context_of(task);
    let at = task
        .finished_at_ms
        .or(task.started_at_ms)
        .unwrap_or(task.created_at_ms);
    let message = task
        .error
        .as_ref()
        .filter(|_| task.state.is_terminal())
        .map(|problem| problem_message(task.id.as_str(), &context, problem));
    let artifacts = task
        .output
        .as_ref()
        .filter(|_| task.state == TaskState::Completed)
        .map(|output| {
            let value = serde_json::from_str(output.get()).unwrap_or(Value::Null);
            vec![output_artifact(value, mode)]
        });
    WireTask {
        id: task.id.to_string(),
        context_id: context,
        status: TaskStatus {
            state: wire_state(task.state),
            message,
            timestamp: timestamp(at),
        },
        artifacts,
        history: None,
        metadata: Some(
            [
                ("agentId".to_owned(), json!(task_agent(task).0)),
                ("agentVersion".to_owned(), json!(task_agent(task).1)),
            ]
            .into_iter()
            .collect(),
        ),
    }
}

fn task_agent(task: &Task) -> (Option<&str>, Option<i64>) {
    match &task.target {
        omniforge_store::TaskTarget::Agent {
            agent_id,
            agent_version,
        } => (Some(agent_id.as_str()), Some(*agent_version)),
        omniforge_store::TaskTarget::Skill { .. } => (None, None),
    }
}

fn timestamp(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// The artifact of a run's output.
fn output_artifact(output: Value, mode: OutputMode) -> Artifact {
    let part = match mode {
        OutputMode::Data => Part::data(output).with_media_type(JSON),
        OutputMode::Text => Part::text(output.to_string()).with_media_type("text/plain"),
    };
    Artifact {
        artifact_id: OUTPUT_ARTIFACT.to_owned(),
        name: Some(OUTPUT_ARTIFACT.to_owned()),
        description: Some("The run's output".to_owned()),
        parts: vec![part],
        metadata: None,
        extensions: None,
    }
}

/// The agent's message saying why a run failed or was canceled: the problem's detail as
/// text, and the problem document itself as data.
fn problem_message(task: &str, context: &str, problem: &Value) -> Message {
    let detail = problem
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| problem.get("title").and_then(Value::as_str))
        .unwrap_or("the run did not complete");
    agent_message(
        task,
        context,
        format!("{task}-ended"),
        vec![
            Part::text(detail),
            Part::data(problem.clone()).with_media_type(JSON),
        ],
    )
}

fn agent_message(task: &str, context: &str, id: String, parts: Vec<Part>) -> Message {
    Message {
        message_id: id,
        context_id: Some(context.to_owned()),
        task_id: Some(task.to_owned()),
        role: Role::Agent,
        parts,
        metadata: None,
        extensions: None,
        reference_task_ids: None,
    }
}

/// Turns one run's stored events into stream responses, in order.
pub(crate) struct EventMapper {
    task: String,
    context: String,
    mode: OutputMode,
    /// The problem of the result event, for the state event that ends the run.
    problem: Option<Value>,
}

impl EventMapper {
    /// A mapper for `task`'s events.
    pub(crate) fn new(task: &Task, mode: OutputMode) -> Self {
        Self {
            task: task.id.to_string(),
            context: context_of(task),
            mode,
            problem: None,
        }
    }

    /// What `event` says to an A2A client, if anything: a state change as a status update;
    /// a step's progress (started, finished, retry scheduled, breaker open) as a `working`
    /// update whose message holds the event's data; the output as an artifact update.
    pub(crate) fn map(&mut self, event: &TaskEvent) -> Option<StreamResponse> {
        let data: Value = serde_json::from_str(event.data.get()).unwrap_or(Value::Null);
        match event.kind {
            EventKind::State => {
                let state: TaskState = data
                    .get("state")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())?;
                let message = if state.is_terminal() {
                    self.problem
                        .take()
                        .map(|problem| problem_message(&self.task, &self.context, &problem))
                } else {
                    data.get("reason").and_then(Value::as_str).map(|reason| {
                        let id = format!("{}-{}", self.task, event.seq);
                        agent_message(&self.task, &self.context, id, vec![Part::text(reason)])
                    })
                };
                Some(self.status(wire_state(state), message, event.at_ms))
            }
            EventKind::Result => {
                if let Some(problem) = data.get("error") {
                    self.problem = Some(problem.clone());
                    return None;
                }
                let output = data.get("output")?.clone();
                Some(StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
                    task_id: self.task.clone(),
                    context_id: self.context.clone(),
                    artifact: output_artifact(output, self.mode),
                    append: Some(false),
                    last_chunk: Some(true),
                    metadata: None,
                }))
            }
            EventKind::Log => None,
            kind => {
                let mut progress = Map::new();
                progress.insert("event".into(), json!(kind.as_str()));
                if let Value::Object(fields) = data {
                    progress.extend(fields);
                }
                let id = format!("{}-{}", self.task, event.seq);
                let parts = vec![Part::data(Value::Object(progress)).with_media_type(JSON)];
                let message = agent_message(&self.task, &self.context, id, parts);
                Some(self.status(WireState::Working, Some(message), event.at_ms))
            }
        }
    }

    fn status(&self, state: WireState, message: Option<Message>, at_ms: i64) -> StreamResponse {
        StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
            task_id: self.task.clone(),
            context_id: self.context.clone(),
            status: TaskStatus {
                state,
                message,
                timestamp: timestamp(at_ms),
            },
            metadata: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(parts: Vec<Part>) -> Message {
        Message::new(Role::User, parts)
    }

    #[test]
    fn input_comes_from_one_data_or_text_part() {
        let data = message(vec![Part::data(json!({"name": "Ada"}))]);
        assert_eq!(input_of(&data).unwrap().get(), r#"{"name":"Ada"}"#);
        let json_text = message(vec![Part::text(r#"{"n": 3}"#)]);
        assert_eq!(input_of(&json_text).unwrap().get(), r#"{"n":3}"#);
        let prose = message(vec![Part::text("hello there")]);
        assert_eq!(input_of(&prose).unwrap().get(), r#""hello there""#);

        let none = input_of(&message(vec![])).unwrap_err();
        assert_eq!(none.code, error_code::INVALID_PARAMS);
        let two = input_of(&message(vec![Part::text("a"), Part::text("b")])).unwrap_err();
        assert_eq!(two.code, error_code::INVALID_PARAMS);
        let file = input_of(&message(vec![Part::url("https://example.com/x")])).unwrap_err();
        assert_eq!(file.code, error_code::CONTENT_TYPE_NOT_SUPPORTED);
    }

    #[test]
    fn output_modes_follow_what_the_client_accepts() {
        let modes = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(OutputMode::accepted(None).unwrap(), OutputMode::Data);
        assert_eq!(
            OutputMode::accepted(Some(&modes(&["text/plain"]))).unwrap(),
            OutputMode::Text
        );
        assert_eq!(
            OutputMode::accepted(Some(&modes(&["text/plain", "application/json"]))).unwrap(),
            OutputMode::Data
        );
        assert_eq!(
            OutputMode::accepted(Some(&modes(&["*/*"]))).unwrap(),
            OutputMode::Data
        );
        let refused = OutputMode::accepted(Some(&modes(&["image/png"]))).unwrap_err();
        assert_eq!(refused.code, error_code::CONTENT_TYPE_NOT_SUPPORTED);
    }
}
