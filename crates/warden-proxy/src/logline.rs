//! The JSON log line: the bytes `tracing_subscriber`'s JSON format writes
//! (`timestamp`, `level`, `fields`, `target`, `span`), written straight into the line.
//!
//! The stock formatter sends every token of a line through serde and an
//! `io::Write`-to-`fmt::Write` adaptor, and parses the current span's fields back
//! from their JSON text on every line. At one line per request that was about a
//! tenth of the proxy's own instructions. [`JsonLines`] escapes the event's fields
//! into the line directly and copies the span's JSON text as it is (its keys are
//! already sorted, so the stock parse and re-serialise gives the same text). Lines it
//! does not write itself go to the stock formatter: events bridged from the `log`
//! crate (their `log.*` fields are normalised there) and spans whose fields hold
//! numbers (re-parsing a float may change its last digit).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// One JSON object per event, as `tracing_subscriber::fmt().json()` with the
/// current span and no span list writes it.
pub struct JsonLines {
    stock: Format<Json>,
}

impl Default for JsonLines {
    fn default() -> Self {
        JsonLines {
            stock: tracing_subscriber::fmt::format()
                .json()
                .with_current_span(true)
                .with_span_list(false),
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.fields().iter().any(|f| f.name().starts_with("log.")) {
            return self.stock_line(ctx, w, event);
        }
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        let ext = span.as_ref().map(|s| s.extensions());
        let span_fields = match &ext {
            None => None,
            Some(ext) => match ext.get::<FormattedFields<JsonFields>>() {
                Some(f) if copyable(f) => Some(f.fields.as_str()),
                _ => None,
            },
        };
        if ext.is_some() && span_fields.is_none() {
            drop(ext);
            return self.stock_line(ctx, w, event);
        }
        // Formatted first, as the stock formatter does: a clock error drops the line.
        let mut ts = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        w.write_str("{\"timestamp\":")?;
        write_json_str(&mut w, &ts)?;
        w.write_str(",\"level\":\"")?;
        w.write_str(level_name(*meta.level()))?;
        w.write_str("\",\"fields\":{")?;
        let mut v = FieldsVisitor {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut v);
        v.result?;
        w.write_str("},\"target\":")?;
        write_json_str(&mut w, meta.target())?;
        if let (Some(span), Some(fields)) = (&span, span_fields) {
            w.write_str(",\"span\":")?;
            // `{...}` → `{...,"name":"<span>"}`; `{}` → `{"name":"<span>"}`.
            w.write_str(&fields[..fields.len() - 1])?;
            if fields.len() > 2 {
                w.write_char(',')?;
            }
            w.write_str("\"name\":")?;
            write_json_str(&mut w, span.metadata().name())?;
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

impl JsonLines {
    fn stock_line<S>(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        #[cfg(test)]
        tests::STOCK_LINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stock.format_event(ctx, w, event)
    }
}

/// Whether a span's field text can be copied as the stock formatter would write
/// it: a JSON object with no number outside its strings.
fn copyable(f: &FormattedFields<JsonFields>) -> bool {
    let b = f.fields.as_bytes();
    if b.len() < 2 || b[0] != b'{' || b[b.len() - 1] != b'}' {
        return false;
    }
    let (mut in_str, mut esc) = (false, false);
    for &c in b {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c.is_ascii_digit() || c == b'-' {
            return false;
        }
    }
    true
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        _ => "TRACE",
    }
}

/// The event's fields as `"name":value` members, in the order they are recorded,
/// with serde_json's value forms (what `tracing_serde` writes).
struct FieldsVisitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl FieldsVisitor<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let first = std::mem::replace(&mut self.first, false);
        self.result = (|| {
            if !first {
                self.w.write_char(',')?;
            }
            write_json_str(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for FieldsVisitor<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaper(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| write_json_str(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's float form (shortest round-trip; `null` when not finite).
        let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
        self.member(field, |w| w.write_str(&text));
    }
}

/// A quoted JSON string with serde_json's escaping.
fn write_json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaper(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what is written through it as JSON string contents: `"` and `\`
/// backslash-escaped, `\b \t \n \f \r` by name, other control characters as
/// `\u00xx`, everything else as is (serde_json's rules).
struct Escaper<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        let mut start = 0;
        // Clean runs are skipped eight bytes at a time; escaped bytes are ASCII,
        // so every cut is a character boundary.
        while let Some(j) = crate::jsonw::find_escape(&b[start..]) {
            let i = start + j;
            let c = b[i];
            let named = match c {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\x08' => "\\b",
                b'\t' => "\\t",
                b'\n' => "\\n",
                b'\x0c' => "\\f",
                b'\r' => "\\r",
                _ => "",
            };
            self.0.write_str(&s[start..i])?;
            if named.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.0.write_str("\\u00")?;
                self.0.write_char(char::from(HEX[usize::from(c >> 4)]))?;
                self.0.write_char(char::from(HEX[usize::from(c & 0xf)]))?;
            } else {
                self.0.write_str(named)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Lines [`JsonLines`] left to the stock formatter.
    pub(super) static STOCK_LINES: AtomicUsize = AtomicUsize::new(0);

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Dbg;

    /// Every kind of event and span the proxy writes (and some it does not),
    /// logged once through each formatter.
    fn emit() {
        let tricky = "quote \" back \\ nl \n tab \t ctl \u{1} del \u{7f} é 😀 \u{2028}";
        tracing::info!(event = "listening", addr = %"127.0.0.1:8080", tls = false, store = "memory", "warden serve listening");
        tracing::warn!(event = "injection", principal = %"alice", source = "user", verdict = %"flag", rules = ?vec!["inj.a", "inj.b"], "prompt injection signal");
        tracing::error!(event = "audit_write_failed", error = %tricky, "audit record could not be written");
        tracing::info!(n = 7u64, neg = -3i64, big = u64::MAX, f = 0.1f64, e = 1e300f64, nan = f64::NAN, inf = f64::INFINITY, yes = true, d = ?Dbg, r#type = "t", "numbers {} and {:?}", 1, "two");
        tracing::info!("message only");
        tracing::info!(target: "custom::target\"q", k = tricky);
        tracing::debug!(event = "filtered", "never written at info");
        let span =
            tracing::info_span!("request", request_id = %"0f3c9a2b5d", route = "chat.completions");
        let _g = span.enter();
        tracing::info!(event = "request", request_id = "0f3c9a2b5d", route = "chat.completions", principal = %"anonymous", status = 200u16, outcome = "ok", latency_ms = 3u64, "request finished");
        {
            let inner = tracing::info_span!("inner", z = "last", a = ?"first", tricky = tricky);
            let _i = inner.enter();
            tracing::warn!(event = "nested", "in the inner span");
            let empty = tracing::info_span!("empty");
            let _e = empty.enter();
            tracing::info!("in a span without fields");
        }
        let num = tracing::info_span!("numeric", port = 8080u64, f = 0.3f64, s = "x");
        num.in_scope(|| tracing::info!("in a span with numbers"));
        let late = tracing::info_span!("late", a = "1", b = tracing::field::Empty);
        late.record("b", "2");
        late.in_scope(|| tracing::info!("after record"));
        tracing::info!(parent: &num, "explicit parent");
        tracing::info!(parent: None, "explicit root");
    }

    fn lines(ours: bool) -> Vec<String> {
        let buf = Buf::default();
        let w = buf.clone();
        let builder = tracing_subscriber::fmt()
            .json()
            .with_writer(move || w.clone())
            .with_max_level(Level::INFO)
            .with_current_span(true)
            .with_span_list(false);
        if ours {
            tracing::subscriber::with_default(
                builder.event_format(JsonLines::default()).finish(),
                emit,
            );
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                // Timestamps differ between the runs: blank them (same length, same quoting).
                let v: serde_json::Value = serde_json::from_str(l).expect(l);
                let ts = v["timestamp"].as_str().expect(l).to_string();
                l.replacen(&ts, "TS", 1)
            })
            .collect()
    }

    #[test]
    fn lines_are_byte_for_byte_the_stock_json_format() {
        let stock = lines(false);
        let before = STOCK_LINES.load(Ordering::Relaxed);
        let ours = lines(true);
        // Only the two lines in the span with numbers went the stock way.
        assert_eq!(STOCK_LINES.load(Ordering::Relaxed) - before, 2);
        assert_eq!(stock.len(), 13, "{stock:#?}");
        for (a, b) in stock.iter().zip(&ours) {
            assert_eq!(a, b);
        }
        assert_eq!(stock.len(), ours.len());
        // The request line keeps its fields and the span's request id.
        let req = ours
            .iter()
            .find(|l| l.contains("request finished"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(req).unwrap();
        assert_eq!(v["fields"]["event"], "request");
        assert_eq!(v["fields"]["status"], 200);
        assert_eq!(v["span"]["request_id"], "0f3c9a2b5d");
        assert_eq!(v["span"]["name"], "request");
    }

    #[test]
    fn escaping_matches_serde_json() {
        for c in (0u8..0x80).map(char::from).chain(['é', '😀', '\u{2028}']) {
            for pad in (0..18).map(|n| "a".repeat(n)) {
                let s = format!("{pad}{c}{pad}{c}");
                let mut ours = String::new();
                write_json_str(&mut ours, &s).unwrap();
                assert_eq!(ours, serde_json::to_string(&s).unwrap());
            }
        }
    }
}
