//! The `tracing` layer: turns each event into one text line and hands it off without waiting.
//!
//! A line reads `2026-11-25 21:20:49.123 DEBUG chime_engine::session: login{user=alice}:
//! message key=value`: UTC time to the millisecond, level, target, the event's spans from the
//! root (each with its fields), the message, then the other fields. Newlines inside a message
//! are written as `\n` so that one event is always one line.
//!
//! The layer filters by the logger's level, which can change at any time; to make that work it
//! tells `tracing` its interest in every callsite is "sometimes", so `enabled` is asked on each
//! event rather than cached.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::clock;
use crate::level::{Level, SharedLevel};
use crate::listener::ListenerMsg;
use crate::writer::{Command, Record, Stats};

/// The layer of one logger. Built by [`crate::Logger::start`]; exposed so a host can compose it
/// with layers of its own (`tracing_subscriber::registry().with(layer).with(...)`).
pub struct XlogLayer {
    pub(crate) level: SharedLevel,
    pub(crate) writer: SyncSender<Command>,
    pub(crate) listener: Option<SyncSender<ListenerMsg>>,
    /// Whether lines go to the listener now (switchable at run time, see
    /// [`crate::Logger::set_listener_enabled`]).
    pub(crate) listener_on: Arc<AtomicBool>,
    pub(crate) stats: Arc<Stats>,
}

impl fmt::Debug for XlogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XlogLayer")
            .field("level", &self.level.get())
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

/// The formatted fields of a span, kept in the span's extensions.
struct SpanFields(String);

/// Formats fields as ` key=value`, keeping the `message` field apart.
struct FieldWriter<'a> {
    message: &'a mut String,
    fields: &'a mut String,
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Writing to a String cannot fail.
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// Span fields are written like event fields; a span's own `message` field is just a field.
fn span_fields(out: &mut String, record: &dyn Fn(&mut dyn Visit)) {
    let mut message = String::new();
    let mut fields = String::new();
    record(&mut FieldWriter {
        message: &mut message,
        fields: &mut fields,
    });
    if !message.is_empty() {
        let _ = write!(out, " message={message}");
    }
    out.push_str(&fields);
}

fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARN",
        tracing::Level::INFO => "INFO",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::TRACE => "TRACE",
    }
}

/// Replaces line breaks so that one event stays one line.
fn escape_newlines(line: String) -> String {
    if line.contains(['\n', '\r']) {
        line.replace('\n', "\\n").replace('\r', "\\r")
    } else {
        line
    }
}

impl<S> Layer<S> for XlogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.level.get().allows(metadata.level())
    }

    fn max_level_hint(&self) -> Option<tracing_subscriber::filter::LevelFilter> {
        // Never more verbose than debug, whatever the level is changed to later.
        Some(tracing_subscriber::filter::LevelFilter::DEBUG)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = String::new();
        span_fields(&mut fields, &|v| attrs.record(v));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
            span_fields(fields, &|v| values.record(v));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let ms = clock::now_ms();
        let mut line = String::with_capacity(160);
        clock::format_timestamp(ms, &mut line);
        let _ = write!(line, " {} {}: ", level_name(meta.level()), meta.target());
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                line.push_str(span.name());
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>()
                    && !fields.is_empty()
                {
                    line.push('{');
                    line.push_str(fields.trim_start());
                    line.push('}');
                }
                line.push_str(": ");
            }
        }
        let mut message = String::new();
        let mut fields = String::new();
        event.record(&mut FieldWriter {
            message: &mut message,
            fields: &mut fields,
        });
        line.push_str(&message);
        if message.is_empty() {
            line.push_str(fields.trim_start());
        } else {
            line.push_str(&fields);
        }
        let line = escape_newlines(line);

        if let Some(listener) = &self.listener
            && self.listener_on.load(Ordering::Relaxed)
        {
            let msg = ListenerMsg::Line(Level::of_event(meta.level()), line.clone());
            if let Err(TrySendError::Full(_)) = listener.try_send(msg) {
                self.stats.listener_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        match self
            .writer
            .try_send(Command::Line(Record { ms, text: line }))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The logger has shut down; lines after that are not kept (nor counted as drops).
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_escaped() {
        assert_eq!(escape_newlines("a\nb\r\nc".to_owned()), "a\\nb\\r\\nc");
        assert_eq!(escape_newlines("plain".to_owned()), "plain");
    }
}
