//! `/ui/exec`: the form, and its post run through `POST /v1/exec`'s own
//! handler (capability checks, fan-out to the other servers, the
//! `exec.result` audit), its NDJSON answer read back into the page: whole
//! (a plain form post), or streamed as each node answers (the page's
//! script posts with `stream=1` and swaps in each new rendering of the
//! results).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use drover_proto::api::{ExecEvent, ExecNodeResult, ExecRequest};
use drover_proto::paths;
use drover_types::acl::{AclScope, Capability};
use drover_types::{CodedError, DurationSpec, ErrorCode};
use drover_ui::Section;
use drover_ui::pages::exec::{ExecForm, ExecOutcome, ExecOutcomeFragment, ExecPage, ExecPreview};

use super::{UiError, UiForm, Viewer};
use crate::AppState;
use crate::extract::ApiJson;
use crate::identity::AuditNote;

/// Output kept per node and stream, as `drover exec`'s default.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// The answer of a run is read whole: every node's capped output, and
/// some room for the framing.
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// The posted form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ExecFormPost {
    csrf: Option<String>,
    nodes: String,
    filter: String,
    command: String,
    timeout: String,
    /// Set by the page's script: answer with the results as they come
    /// (one JSON object a line, `{"html": …, "done": …}`), not a page.
    stream: Option<String>,
    /// Set by the **Preview** button: show the nodes it would run on,
    /// and the button that runs it, without running anything.
    preview: Option<String>,
}

/// What a post shows below the form.
enum Shown {
    /// The selection, before the confirmation.
    Preview(ExecPreview),
    /// Every node's result.
    Results(Vec<ExecNodeResult>),
}

/// While streaming, the results are rendered again at most this often
/// (each rendering regroups every result so far).
const RENDER_EVERY: std::time::Duration = std::time::Duration::from_millis(150);

/// A page for the caller: without `node` `exec`, no form.
fn page(viewer: &Viewer, form: ExecForm) -> ExecPage {
    ExecPage {
        chrome: viewer.chrome("Exec", Section::Exec),
        refused: viewer.caller.require(AclScope::Node, Capability::Exec).err().map(|error| error.0.message),
        form,
        error: None,
        outcome: None,
        preview: None,
    }
}

/// `GET /ui/exec`.
pub(super) async fn form(viewer: Viewer) -> Result<Response, UiError> {
    let form = ExecForm { timeout: "30s".to_owned(), ..ExecForm::default() };
    Ok(viewer.page(drover_ui::render(&page(&viewer, form))))
}

/// `POST /ui/exec`: runs the command and shows the results; a selection or
/// timeout that does not parse (400) or a selection that matches no node
/// (404) is shown above the form, a refusal is an error page (403), all
/// audited as `exec.run`.
pub(super) async fn run(
    State(app): State<AppState>,
    viewer: Viewer,
    UiForm(post): UiForm<ExecFormPost>,
) -> Result<Response, UiError> {
    viewer.check_csrf(post.csrf.as_deref())?;
    let streamed = post.stream.is_some_and(|stream| !stream.is_empty());
    let previewing = post.preview.is_some_and(|preview| !preview.is_empty());
    let form = ExecForm { nodes: post.nodes, filter: post.filter, command: post.command, timeout: post.timeout };
    let mut shown = page(&viewer, form.clone());
    let outcome = match request_of(&form) {
        Ok(request) if previewing => preview(&app, &viewer, &request).await.map(Shown::Preview),
        Ok(request) if streamed => match start(&app, &viewer, request).await {
            Ok(body) => {
                let mut response = (
                    [
                        (axum::http::header::CONTENT_TYPE, "application/x-ndjson"),
                        (axum::http::header::CACHE_CONTROL, "no-store"),
                    ],
                    axum::body::Body::from_stream(stream_fragments(body)),
                )
                    .into_response();
                response.extensions_mut().insert(AuditNote {
                    target: Some(paths::EXEC.to_owned()),
                    details: "from the dashboard".to_owned(),
                });
                return Ok(response);
            }
            Err(error) => Err(error),
        },
        Ok(request) => execute(&app, &viewer, request).await.map(Shown::Results),
        Err(error) => Err(error),
    };
    let response = match outcome {
        Ok(Shown::Preview(preview)) => {
            shown.preview = Some(preview);
            // Nothing ran: not audited as a run (a refusal still is).
            let mut response = viewer.page(drover_ui::render(&shown));
            response.extensions_mut().insert(crate::identity::Quiet);
            return Ok(response);
        }
        Ok(Shown::Results(results)) => {
            shown.outcome = Some(ExecOutcome::new(&results, |names| drover_filter::fold_names(names)));
            viewer.page(drover_ui::render(&shown))
        }
        Err(error) if matches!(error.code, ErrorCode::InvalidInput | ErrorCode::NotFound) => {
            shown.error = Some(format!("error: {}", error.message));
            let status = crate::error::status_of(error.code);
            let mut response = (status, viewer.page(drover_ui::render(&shown))).into_response();
            response.extensions_mut().insert(error);
            response
        }
        Err(error) => return Err(UiError::new(error, &viewer.caller.name)),
    };
    let mut response = response;
    response
        .extensions_mut()
        .insert(AuditNote { target: Some(paths::EXEC.to_owned()), details: "from the dashboard".to_owned() });
    Ok(response)
}

/// The request the CLI would send for the same words: the node list
/// expanded as `drover exec NODES` expands it, the command run by
/// `/bin/sh -c`.
fn request_of(form: &ExecForm) -> Result<ExecRequest, CodedError> {
    let mut nodes: Vec<String> = Vec::new();
    for word in form.nodes.split_whitespace() {
        let expanded = drover_filter::expand_names(word)
            .map_err(|error| CodedError::invalid(format!("bad node list {word:?}: {error}")))?;
        for name in expanded {
            if !nodes.contains(&name) {
                nodes.push(name);
            }
        }
    }
    let filter = Some(form.filter.trim().to_owned()).filter(|filter| !filter.is_empty());
    if nodes.is_empty() && filter.is_none() {
        return Err(CodedError::invalid(
            "name nodes or give a filter: no command reaches the whole fleet by accident (as `drover exec`)",
        ));
    }
    if form.command.trim().is_empty() {
        return Err(CodedError::invalid("give a command to run"));
    }
    let timeout_text = if form.timeout.trim().is_empty() { "30s" } else { form.timeout.trim() };
    let timeout = timeout_text
        .parse::<DurationSpec>()
        .map_err(|error| CodedError::invalid(format!("timeout {timeout_text:?}: {error}")))?;
    Ok(ExecRequest {
        nodes,
        filter,
        command: vec![form.command.trim().to_owned()],
        timeout_ms: u64::try_from(timeout.get().as_millis()).unwrap_or(u64::MAX),
        max_output_bytes: MAX_OUTPUT_BYTES,
        ..ExecRequest::default()
    })
}

/// The nodes `request` would run on, as `POST /v1/exec` would select
/// them for this caller (the same capability checks), without running.
async fn preview(app: &AppState, viewer: &Viewer, request: &ExecRequest) -> Result<ExecPreview, CodedError> {
    viewer.caller.require(AclScope::Node, Capability::Exec).map_err(|error| error.0)?;
    let access = super::super::nodes::exec_access(&viewer.caller, request);
    let (runs, denied) = app.server.exec_preview(request, &access).await?;
    Ok(ExecPreview::new(&runs, &denied, |names| drover_filter::fold_names(names)))
}

/// Starts the request through `POST /v1/exec`'s handler: its NDJSON
/// answer, event by event as the nodes answer.
async fn start(app: &AppState, viewer: &Viewer, request: ExecRequest) -> Result<axum::body::Body, CodedError> {
    let answer = super::super::nodes::exec(State(app.clone()), viewer.caller.clone(), ApiJson(request))
        .await
        .map_err(|error| error.0)?;
    Ok(answer.into_body())
}

/// The exec's events turned into renderings of the results so far, one
/// JSON object a line: `{"html": "<section…", "done": false}`, at most
/// one per [`RENDER_EVERY`] while nodes answer, and a last one with
/// `"done": true` once every node has.
fn stream_fragments(
    body: axum::body::Body,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> {
    use futures_util::StreamExt;
    let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut selected: Vec<String> = Vec::new();
        let mut results: Vec<ExecNodeResult> = Vec::new();
        let mut changed = false;
        let mut last_sent = tokio::time::Instant::now() - RENDER_EVERY;
        loop {
            let due = last_sent + RENDER_EVERY;
            tokio::select! {
                chunk = chunks.next() => {
                    let Some(Ok(chunk)) = chunk else { break };
                    pending.extend_from_slice(&chunk);
                    while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        match serde_json::from_slice::<ExecEvent>(&line[..end]) {
                            Ok(ExecEvent::Start { nodes }) => selected = nodes,
                            Ok(ExecEvent::Result(result)) => results.push(result),
                            Ok(ExecEvent::End) | Err(_) => {}
                        }
                        changed = true;
                    }
                }
                () = tokio::time::sleep_until(due), if changed => {
                    changed = false;
                    last_sent = tokio::time::Instant::now();
                    if sender.send(fragment(&results, &selected, false)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sender.send(fragment(&results, &selected, true)).await;
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|line| (Ok(line), receiver))
    })
}

/// One line of the stream: the results part of the page as it stands.
fn fragment(results: &[ExecNodeResult], selected: &[String], done: bool) -> bytes::Bytes {
    let fold = |names: &[&str]| drover_filter::fold_names(names);
    let outcome = if done { ExecOutcome::new(results, fold) } else { ExecOutcome::so_far(results, selected, fold) };
    let html = drover_ui::render(&ExecOutcomeFragment { outcome });
    let mut line = serde_json::json!({ "html": html, "done": done }).to_string();
    line.push('\n');
    bytes::Bytes::from(line)
}

/// Runs the request through `POST /v1/exec`'s handler and reads every
/// node's result from its answer.
async fn execute(app: &AppState, viewer: &Viewer, request: ExecRequest) -> Result<Vec<ExecNodeResult>, CodedError> {
    let body = axum::body::to_bytes(start(app, viewer, request).await?, MAX_ANSWER_BYTES)
        .await
        .map_err(|error| CodedError::new(ErrorCode::Unavailable, format!("reading the exec answer: {error}")))?;
    let mut results = Vec::new();
    for line in body.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()) {
        let event: ExecEvent = serde_json::from_slice(line).map_err(|error| {
            CodedError::new(ErrorCode::Internal, format!("an exec event that does not read: {error}"))
        })?;
        if let ExecEvent::Result(result) = event {
            results.push(result);
        }
    }
    Ok(results)
}
