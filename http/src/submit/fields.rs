//! Reading a submission's fields: every bad field reported at once, in one problem.

use super::*;

/// Collects every field error of one request.
#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(super) fn common(
        &mut self,
        language: Option<&str>,
        priority: Option<&str>,
        callback_url: Option<&str>,
        allowlist: &[ipnet::IpNet],
    ) -> Option<Common> {
        let language = match language {
            None => {
                self.add("source_language", "is required");
                None
            }
            Some(raw) => Language::parse(raw)
                .map_err(|e| self.add("source_language", e.0))
                .ok(),
        };
        let priority = match priority {
            None => Some(Priority::Normal),
            Some(raw) => Priority::parse(raw)
                .map_err(|e| self.add("priority", e.0))
                .ok(),
        };
        let callback_url = match callback_url.filter(|u| !u.trim().is_empty()) {
            None => Some(None),
            Some(raw) => parse_callback_url(raw, allowlist)
                .map(|u| Some(u.to_string()))
                .map_err(|e| self.add("callback_url", e.0))
                .ok(),
        };
        Some(Common {
            language: language?,
            priority: priority?,
            callback_url: callback_url?,
        })
    }

    /// The common fields of a JSON body.
    pub(super) fn json_common(
        &mut self,
        map: &Map<String, Value>,
        allowlist: &[ipnet::IpNet],
    ) -> Option<Common> {
        let language = string_field(map, "source_language", self);
        let priority = string_field(map, "priority", self);
        let callback = string_field(map, "callback_url", self);
        self.common(language, priority, callback, allowlist)
    }

    pub(super) fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid_fields(self.0))
        }
    }
}

/// Parses a JSON object body; syntax errors are 400, a non-object is 422.
pub(super) fn json_object(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Map<String, Value>, Problem> {
    match content_type(headers) {
        Some(m) if m.type_() == mime::APPLICATION && m.subtype() == mime::JSON => {}
        _ => {
            return Err(Problem::unsupported_media_type(
                "this route takes application/json",
            ));
        }
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::invalid_field("body", "must be a JSON object")),
        Err(e) => Err(Problem::malformed(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// Reads an optional string field: `null` or absent is `None`, any other type is an error.
pub(super) fn string_field<'a>(
    map: &'a Map<String, Value>,
    name: &str,
    errors: &mut Errors,
) -> Option<&'a str> {
    match map.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errors.add(name, format!("must be a string, got {}", json_type(other)));
            None
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The query parameters of `POST /api/v1/transcription`: `source_language` and `priority`,
/// as the old proxy took them.
#[derive(Debug, Default)]
pub(super) struct QueryFields {
    language: Option<String>,
    priority: Option<String>,
}

impl QueryFields {
    pub(super) fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        let mut fields = Self::default();
        let mut errors = Errors::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "source_language" => &mut fields.language,
                "priority" => &mut fields.priority,
                _ => continue, // unknown parameters are ignored, as the old proxy ignored them
            };
            if slot.is_some() {
                errors.add(&key, "must be given once");
            }
            *slot = Some(value.into_owned());
        }
        errors.finish()?;
        Ok(fields)
    }

    /// The common fields from the body's `(language, priority, callback)` and the query: the
    /// old proxy took the language and priority as query parameters, so either form is
    /// accepted, both only when they agree.
    pub(super) fn common(
        &self,
        errors: &mut Errors,
        (language, priority, callback): (Option<String>, Option<String>, Option<String>),
        allowlist: &[ipnet::IpNet],
    ) -> Option<Common> {
        let language = self.merge("source_language", language, errors);
        let priority = self.merge("priority", priority, errors);
        errors.common(
            language.as_deref(),
            priority.as_deref(),
            callback.as_deref(),
            allowlist,
        )
    }

    /// The value of `name` from the form or the query; both given must agree.
    pub(super) fn merge(
        &self,
        name: &str,
        form: Option<String>,
        errors: &mut Errors,
    ) -> Option<String> {
        let query = match name {
            "source_language" => self.language.clone(),
            _ => self.priority.clone(),
        };
        match (form, query) {
            // Languages and priorities are ASCII, in any case.
            (Some(f), Some(q)) if !f.trim().eq_ignore_ascii_case(q.trim()) => {
                errors.add(
                    name,
                    format!(
                        "is given as a form field ({f:?}) and as a query parameter ({q:?}) with different values; send one"
                    ),
                );
                Some(f)
            }
            (f, q) => f.or(q),
        }
    }
}
