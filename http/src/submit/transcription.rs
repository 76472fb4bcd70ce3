//! `POST /api/v1/transcription`: audio sent directly (multipart) or named by an upload.

use super::fields::QueryFields;
use super::*;

fn multipart_problem(e: multer::Error) -> Problem {
    match e {
        multer::Error::FieldSizeExceeded { field_name, .. }
            if field_name.as_deref() == Some("audio_file") =>
        {
            Problem::too_large(format!(
                "audio_file exceeds {MAX_AUDIO_BYTES} bytes (50 MB)"
            ))
        }
        multer::Error::FieldSizeExceeded { field_name, .. } => Problem::invalid_field(
            field_name.as_deref().unwrap_or("form"),
            format!("exceeds {MAX_FORM_FIELD} bytes"),
        ),
        multer::Error::StreamSizeExceeded { .. } => Problem::too_large("the form is too large"),
        multer::Error::StreamReadFailed(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
            while let Some(s) = source {
                if let Some(late) = s.downcast_ref::<crate::body::BodyTimedOut>() {
                    return Problem::timed_out(late.to_string());
                }
                source = s.source();
            }
            Problem::malformed("the request body could not be read completely")
        }
        other => Problem::malformed(format!("the multipart body is malformed: {other}")),
    }
}

/// `POST /api/v1/transcription`: multipart with `audio_file`, `source_language`, `priority`,
/// `callback_url`; or JSON naming an `upload_id` from `POST /api/v1/uploads`.
pub async fn transcription<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    match content_type(&headers) {
        Some(m) if m.type_() == mime::MULTIPART && m.subtype() == mime::FORM_DATA => {
            let boundary = m
                .get_param(mime::BOUNDARY)
                .map(|b| b.as_str().to_owned())
                .ok_or_else(|| Problem::malformed("multipart/form-data without a boundary"))?;
            let query = QueryFields::parse(query.as_deref())?;
            multipart_transcription(&state, &caller, &headers, (boundary, query), body).await
        }
        Some(m) if m.type_() == mime::APPLICATION && m.subtype() == mime::JSON => {
            let query = QueryFields::parse(query.as_deref())?;
            uploaded_transcription(&state, &caller, &headers, query, body).await
        }
        _ => Err(Problem::unsupported_media_type(
            "this route takes multipart/form-data, or application/json with an upload_id",
        )),
    }
}

fn direct_too_large(limit: usize) -> Problem {
    Problem::too_large(format!(
        "audio sent directly may be at most {limit} bytes; upload larger files (up to {MAX_AUDIO_BYTES} bytes) through POST /api/v1/uploads and submit the upload_id"
    ))
}

async fn multipart_transcription<
    W: SubmitStore,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
>(
    state: &SubmitState<W, Q, B>,
    caller: &Caller,
    headers: &HeaderMap,
    (boundary, query): (String, QueryFields),
    body: Body,
) -> Result<Response, Problem> {
    let limit = state.settings.direct_upload_limit();
    let bytes = read_body(headers, body, limit + MULTIPART_OVERHEAD)
        .await
        .map_err(|p| {
            if p.status == 413 {
                direct_too_large(limit)
            } else {
                p
            }
        })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(MAX_FORM_FIELD)
            .for_field("audio_file", limit as u64),
    );
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let too_large = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { ref field_name, .. }
            if field_name.as_deref() == Some("audio_file") =>
        {
            direct_too_large(limit)
        }
        other => multipart_problem(other),
    };

    let mut audio: Option<(Option<String>, Bytes)> = None;
    let mut fields: Vec<(String, Result<String, ()>)> = Vec::new();
    let mut errors = Errors::default();
    while let Some(field) = form.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let data = field.bytes().await.map_err(too_large)?;
        match name.as_str() {
            "audio_file" if audio.is_some() => errors.add("audio_file", "must be sent once"),
            "audio_file" => audio = Some((filename, data)),
            "source_language" | "priority" | "callback_url" => {
                fields.push((name, String::from_utf8(data.to_vec()).map_err(|_| ())));
            }
            _ => {} // unknown fields are ignored, as the old proxy ignored them
        }
    }
    let mut text = |name: &str| -> Option<String> {
        match fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
        {
            Some(Ok(v)) => Some(v),
            Some(Err(())) => {
                errors.add(name, "is not valid UTF-8");
                None
            }
            None => None,
        }
    };
    let (language, priority, callback) = (
        text("source_language"),
        text("priority"),
        text("callback_url"),
    );
    let common = query.common(
        &mut errors,
        (language, priority, callback),
        &state.settings.callback_allowlist,
    );
    let probed = match audio {
        None => {
            errors.add("audio_file", "is required");
            None
        }
        Some((name, data)) => match audio::probe(data.clone(), name.as_deref()) {
            Ok(p) => Some((name, data, p)),
            Err(e) => {
                errors.add("audio_file", e.0);
                None
            }
        },
    };
    errors.finish()?;
    let (Some(c), Some((filename, data, probe))) = (common, probed) else {
        return Err(Problem::invalid_field("body", "is invalid"));
    };
    let payload = Payload::Audio {
        data,
        filename,
        info: probe.info,
    };
    accept(
        state,
        (caller, headers),
        ServiceKind::Transcription,
        c,
        payload,
    )
    .await
}

async fn uploaded_transcription<
    W: SubmitStore,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
>(
    state: &SubmitState<W, Q, B>,
    caller: &Caller,
    headers: &HeaderMap,
    query: QueryFields,
    body: Body,
) -> Result<Response, Problem> {
    let bytes = read_body(headers, body, MAX_JSON_BYTES).await?;
    let map = json_object(headers, &bytes)?;
    let mut errors = Errors::default();
    let upload_id = string_field(&map, "upload_id", &mut errors);
    let key = match upload_id {
        None if map.contains_key("upload_id") => None,
        None => {
            errors.add(
                "upload_id",
                "is required (or send the audio as multipart/form-data)",
            );
            None
        }
        Some(id) => BlobKey::upload(&caller.owner(), id).or_else(|| {
            errors.add("upload_id", "is not an upload id from POST /api/v1/uploads");
            None
        }),
    };
    let language = string_field(&map, "source_language", &mut errors).map(str::to_owned);
    let priority = string_field(&map, "priority", &mut errors).map(str::to_owned);
    let callback = string_field(&map, "callback_url", &mut errors).map(str::to_owned);
    let common = query.common(
        &mut errors,
        (language, priority, callback),
        &state.settings.callback_allowlist,
    );
    errors.finish()?;
    let (Some(key), Some(c)) = (key, common) else {
        return Err(Problem::invalid_field("body", "is invalid"));
    };
    let nothing = || {
        Problem::invalid_field(
            "upload_id",
            "nothing was uploaded under this id (or the upload expired)",
        )
    };
    let upload_id = BlobKey::upload_id(key.as_str()).unwrap_or_default();
    let blobs = &state.intake.blobs;
    let announced = uploads::slot_size(blobs, &caller.owner(), upload_id)
        .await?
        .ok_or_else(nothing)?;
    if uploads::older_than(upload_id, uploads::UPLOAD_LIFETIME) {
        return Err(nothing());
    }
    // Measured before it is read: whatever a client managed to store, at most the announced
    // size is read.
    let size = blobs.size(key.as_str()).await?.ok_or_else(nothing)?;
    if size > announced.min(MAX_AUDIO_BYTES as u64) {
        return Err(Problem::too_large(format!(
            "the upload is {size} bytes; {announced} were announced"
        )));
    }
    let data = blobs.get(key.as_str()).await?.ok_or_else(nothing)?;
    if data.len() as u64 > announced.min(MAX_AUDIO_BYTES as u64) {
        return Err(Problem::too_large(format!(
            "the upload exceeds the {announced} bytes announced"
        )));
    }
    let probe =
        audio::probe(data.clone(), None).map_err(|e| Problem::invalid_field("upload_id", e.0))?;
    // The bytes probed become the task's own input: a later write to the upload changes
    // nothing the miners get.
    let payload = Payload::Uploaded {
        upload: key,
        data,
        info: probe.info,
    };
    accept(
        state,
        (caller, headers),
        ServiceKind::Transcription,
        c,
        payload,
    )
    .await
}
