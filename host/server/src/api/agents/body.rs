//! An agent definition as a request body: JSON, or YAML (`application/yaml`), the format
//! many write workflows in. YAML is read into the same types; a plain scalar where the
//! definition takes text (a name, a tag) is that text, as YAML 1.1 writers such as PyYAML
//! expect when they leave `1e100` or `yes` unquoted.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use omniforge_control::agents::AgentSpec;
use omniforge_workflow::Format;

use crate::error::{ApiError, ApiJson};

/// The media types read as YAML.
const YAML: &[&str] = &["application/yaml", "application/x-yaml", "text/yaml"];

/// An [`AgentSpec`] read from a JSON or YAML body.
pub struct AgentBody(pub AgentSpec);

impl<S: Send + Sync> FromRequest<S> for AgentBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let yaml = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| YAML.contains(&media.trim().to_ascii_lowercase().as_str()));
        if !yaml {
            return ApiJson::<AgentSpec>::from_request(req, state)
                .await
                .map(|ApiJson(spec)| Self(spec));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "the request body is larger than this server accepts",
                )
            } else {
                ApiError::new(rejection.status(), "bad-request", rejection.body_text())
            }
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-yaml",
                "the body is not UTF-8",
            )
        })?;
        let value =
            omniforge_workflow::parse::value_of(text, Format::Yaml).map_err(|problems| {
                let detail = problems
                    .first()
                    .map(|p| p.message.clone())
                    .unwrap_or_default();
                ApiError::new(StatusCode::BAD_REQUEST, "malformed-yaml", detail)
            })?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "expected a mapping (an agent definition)",
            ));
        }
        // Read again into the types, not from the JSON value: the value has already made
        // `1e100` a number, where the type wants the text.
        read_yaml(text).map(Self).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                e.to_string(),
            )
        })
    }
}

fn read_yaml(text: &str) -> Result<AgentSpec, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_are_text_where_the_definition_takes_text() {
        let spec = read_yaml(
            "name: wc\ndescription: Infinity\ncard:\n  skills:\n  - id: 1e100\n    name: 42\n    \
             tags: [1e100, x, 7]\nskill: {name: a/b}\n",
        )
        .unwrap();
        assert_eq!(spec.description, "Infinity");
        let skill = &spec.card.skills[0];
        assert_eq!((skill.id.as_str(), skill.name.as_str()), ("1e100", "42"));
        assert_eq!(skill.tags, ["1e100", "x", "7"]);
    }
}
