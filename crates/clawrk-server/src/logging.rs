//! Logs: text (the default) or one JSON object per line (`CLAWRK_LOG_FORMAT=json`), filtered by
//! `RUST_LOG` (default `info`), on stderr.
//!
//! The HTTP framework reports requests it could not parse (a bad request line, oversized headers)
//! at ERROR from inside its connection handler, before clawrk sees them; those are the client's
//! mistakes, not the server's, so they are logged again as WARN under `clawrk::http` and the
//! framework's own line is dropped. An ERROR line thus always means something an operator must look
//! at.

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Where the framework logs connection-level (client) errors.
const FRAMEWORK_CONNECTIONS: &str = "actix_http::h1";

/// Whether an event is the framework's report of a request it could not read.
fn is_framework_client_error(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with(FRAMEWORK_CONNECTIONS)
}

/// Lets through the framework's client errors (`keep == true`) or everything else. The framework
/// logs through the `log` crate, whose bridge shares one callsite per level among all targets (and
/// asks with each record's own metadata): the decision is made per event, for ERROR callsites only.
#[derive(Clone, Copy)]
struct FrameworkClientErrors {
    keep: bool,
}

impl<S> Filter<S> for FrameworkClientErrors {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        is_framework_client_error(meta) == self.keep
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        match (*meta.level() == Level::ERROR, self.keep) {
            (true, _) => Interest::sometimes(),
            (false, true) => Interest::never(),
            (false, false) => Interest::always(),
        }
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        is_framework_client_error(event.metadata()) == self.keep
    }
}

/// Logs the framework's client errors again, as warnings.
struct ClientErrors;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for ClientErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if is_framework_client_error(event.metadata()) {
            let mut m = Message(String::new());
            event.record(&mut m);
            tracing::warn!(target: "clawrk::http", error = %m.0, "malformed request refused before routing");
        }
    }
}

/// The log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = filter.and(FrameworkClientErrors { keep: false });
    // The re-logging layer comes last: the event it emits from inside another event's dispatch
    // resets the per-layer filter state of the outer event for the layers after it.
    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(lines),
            )
            .with(ClientErrors.with_filter(FrameworkClientErrors { keep: true }))
            .init(),
        LogFormat::Text => {
            // Colours only for a terminal: log files and collectors get plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(ansi)
                        .with_writer(std::io::stderr)
                        .with_filter(lines),
                )
                .with(ClientErrors.with_filter(FrameworkClientErrors { keep: true }))
                .init()
        }
    }
}
