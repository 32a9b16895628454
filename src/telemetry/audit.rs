//! The audit line of a routed call, formatted here rather than by the generic log formatter.
//!
//! It is the one log line of every routed call at the default level. Through tracing-subscriber's
//! formatter (a field visitor, a `fmt::Write` call per piece, the time's `Display`) it cost
//! about 11,000 instructions per call, 6% of the router's (callgrind, `scripts/bench-calls.sh`);
//! written here into a buffer the thread keeps, about 1,800. What readers see does not
//! change: the formatter's line, field for field (`--log-format txt|json`, colours only on a
//! terminal), to the same writer (stderr, batched by [`super::log_writer`]), and only when the
//! log filter lets target `audit` through at info (`--log-level warn` writes none). The one thing
//! it leaves out is the enclosing `ext_proc` span, which the formatter put before the line at
//! debug level: its fields repeat the line's own.
//!
//! Values come from clients and tokens (the subject, the tool name): in text, one that could
//! end the line or mislead a reader (a control character, a space, a quote) is written quoted
//! and escaped, and in JSON every string is escaped, so that no value can forge a second line.

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::log_writer::BatchedWriter;
use super::LogFormat;

/// The log target, as a `--log-level` directive names it (`audit=off`).
pub const TARGET: &str = "audit";

/// One routed call: who (the gateway session, never its token), what, where, how it ended.
#[derive(Debug, Clone, Copy)]
pub struct AuditLine<'a> {
    /// The gateway session id (or a stateless caller's stand-in).
    pub session: &'a str,
    /// The verified subject, `-` without one.
    pub subject: &'a str,
    pub method: &'a str,
    /// The name the client called (empty for a relayed response or a resumed stream).
    pub name: &'a str,
    pub server: &'a str,
    /// The upstream's HTTP status; `None` (`-`) when the router does not see the response.
    pub status: Option<u16>,
}

/// How the log formatter wrote a field: `%` fields bare, `&str` fields quoted.
#[derive(Clone, Copy)]
enum Kind {
    Bare,
    Quoted,
}

impl Kind {
    fn write(self, out: &mut Vec<u8>, value: &str) {
        match self {
            Kind::Bare => bare(out, value),
            Kind::Quoted => quoted(out, value),
        }
    }
}

impl AuditLine<'_> {
    /// The line's text fields in the order the formatter wrote them (the status follows).
    fn fields(&self) -> [(&'static str, &str, Kind); 5] {
        [
            ("session", self.session, Kind::Bare),
            ("subject", self.subject, Kind::Quoted),
            ("method", self.method, Kind::Quoted),
            ("name", self.name, Kind::Bare),
            ("server", self.server, Kind::Bare),
        ]
    }
}

/// How lines look: the log format, and colours (on a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub format: LogFormat,
    pub ansi: bool,
}

struct Sink {
    writer: BatchedWriter<std::io::Stderr>,
    style: Style,
}

static SINK: OnceLock<Sink> = OnceLock::new();

thread_local! {
    /// The line being formatted: one buffer per thread, kept between lines.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where audit lines go: the writer the log formatter writes to, in its style. Done once, by
/// [`super::init_logging`]; until then (and in tests that install no logging) nothing is written.
pub(super) fn install(writer: BatchedWriter<std::io::Stderr>, style: Style) {
    let _ = SINK.set(Sink { writer, style });
}

/// Writes the audit line of one routed call, when the log filter lets it through.
pub fn write(line: &AuditLine<'_>) {
    let Some(sink) = SINK.get() else {
        return;
    };
    if !enabled() {
        return;
    }
    let now = SystemTime::now();
    LINE.with(|cell| {
        // Not re-entered (nothing here logs); should it ever be, the line gets a buffer of its own.
        let mut own = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match borrowed.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut own,
        };
        buf.clear();
        format(buf, line, sink.style, now);
        sink.writer.append(buf);
    });
}

/// Whether the filter of `--log-level` lets an info event of target `audit` through (decided
/// once per callsite for a plain level; `audit=off` and the like are honoured too).
fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// The line as the log formatter wrote it, newline included, at time `now`.
pub fn format(out: &mut Vec<u8>, line: &AuditLine<'_>, style: Style, now: SystemTime) {
    match style.format {
        LogFormat::Txt => txt(out, line, style.ansi, now),
        LogFormat::Json => json(out, line, now),
    }
}

// ANSI styles as the formatter paints them (nu-ansi-term): dimmed, green, italic, reset.
const DIM: &[u8] = b"\x1b[2m";
const GREEN: &[u8] = b"\x1b[32m";
const ITALIC: &[u8] = b"\x1b[3m";
const RESET: &[u8] = b"\x1b[0m";

/// `2026-12-04T10:53:30.794336Z  INFO audit: routed call session=… subject="…" method="…"
/// name=… server=… status=200`: how the formatter wrote `%` fields (bare) and `&str` fields
/// (quoted, escaped as Rust's `Debug`).
fn txt(out: &mut Vec<u8>, line: &AuditLine<'_>, ansi: bool, now: SystemTime) {
    if ansi {
        return txt_in_colour(out, line, now);
    }
    timestamp(out, now);
    out.extend_from_slice(b"  INFO audit: routed call");
    for (name, value, kind) in line.fields() {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        kind.write(out, value);
    }
    out.extend_from_slice(b" status=");
    status(out, line.status);
    out.push(b'\n');
}

/// [`txt`] painted as the formatter paints it on a terminal.
fn txt_in_colour(out: &mut Vec<u8>, line: &AuditLine<'_>, now: SystemTime) {
    let paint = |out: &mut Vec<u8>, style: &[u8], text: &[u8]| {
        out.extend_from_slice(style);
        out.extend_from_slice(text);
        out.extend_from_slice(RESET);
    };
    out.extend_from_slice(DIM);
    timestamp(out, now);
    out.extend_from_slice(RESET);
    out.push(b' ');
    paint(out, GREEN, b" INFO");
    out.push(b' ');
    paint(out, DIM, TARGET.as_bytes());
    paint(out, DIM, b":");
    out.extend_from_slice(b" routed call");
    let field = |out: &mut Vec<u8>, name: &str| {
        out.push(b' ');
        paint(out, ITALIC, name.as_bytes());
        paint(out, DIM, b"=");
    };
    for (name, value, kind) in line.fields() {
        field(out, name);
        kind.write(out, value);
    }
    field(out, "status");
    status(out, line.status);
    out.push(b'\n');
}

/// `{"timestamp":"…","level":"INFO","message":"routed call","session":"…",…,"status":"200",
/// "target":"audit"}`: the formatter's flattened JSON, every value a string.
fn json(out: &mut Vec<u8>, line: &AuditLine<'_>, now: SystemTime) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"routed call\"");
    let field = |out: &mut Vec<u8>, name: &str, value: &str| {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        crate::jsonrpc::write_json_string(out, value);
    };
    for (name, value, _) in line.fields() {
        field(out, name, value);
    }
    out.extend_from_slice(b",\"status\":\"");
    status(out, line.status);
    out.extend_from_slice(b"\",\"target\":\"");
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// A value as `Debug` writes a `&str`: quoted, with quotes, backslashes and control
/// characters escaped.
fn quoted(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// A value as the formatter wrote a `%` field, bare; quoted as [`quoted`] when it holds
/// anything that could end the line or blur where the value ends (a control character,
/// whitespace, a quote, a backslash).
fn bare(out: &mut Vec<u8>, s: &str) {
    // Printable ASCII without a space, a quote or a backslash, the usual case, is plain; other
    // text is judged character by character.
    let ascii_plain = |b: &u8| b.is_ascii_graphic() && *b != b'"' && *b != b'\\';
    let plain = s.as_bytes().iter().all(ascii_plain)
        || s.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '"' && c != '\\');
    if plain {
        out.extend_from_slice(s.as_bytes());
    } else {
        quoted(out, s);
    }
}

fn status(out: &mut Vec<u8>, status: Option<u16>) {
    match status {
        Some(s) => number(out, u64::from(s), 1),
        None => out.push(b'-'),
    }
}

/// `n` in decimal, at least `width` digits (zero-padded).
fn number(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}

/// RFC 3339 in UTC with microseconds, as the formatter's default timer writes it:
/// `2026-12-04T10:53:30.794336Z` (a year past 9999 is written as 9999).
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        /// The last second this thread wrote, and its text up to the fraction: the calendar
        /// arithmetic once a second rather than once a line.
        static SECOND: std::cell::Cell<(u64, [u8; 20])> =
            const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let date = SECOND.with(|last| match last.get() {
        (s, text) if s == secs => text,
        _ => {
            let text = second(secs);
            last.set((secs, text));
            text
        }
    });
    out.extend_from_slice(&date);
    number(out, u64::from(since.subsec_micros()), 6);
    out.push(b'Z');
}

/// `secs` after the epoch as `YYYY-MM-DDTHH:MM:SS.` (a year past 9999 as 9999).
fn second(secs: u64) -> [u8; 20] {
    let (year, month, day) = civil_date(secs / 86_400);
    let time = secs % 86_400;
    let mut t = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            t[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.min(9999));
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, time / 3600);
    put(14, 2, time / 60 % 60);
    put(17, 2, time % 60);
    t
}

/// The (year, month, day) of the `days`th day after 1970-01-01, in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// What the generic formatter wrote for the same line (as `audit` did through
    /// `tracing::info!` before), without its timestamp.
    fn through_tracing(line: &AuditLine<'_>, style: Style) -> String {
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let sink = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(style.ansi)
            .without_time()
            .with_writer(move || sink.clone());
        let status: &dyn std::fmt::Display = match &line.status {
            Some(s) => s,
            None => &"-",
        };
        let emit = || {
            tracing::info!(
                target: "audit",
                session = %line.session,
                subject = line.subject,
                method = line.method,
                name = %line.name,
                server = %line.server,
                status = %status,
                "routed call"
            );
        };
        match style.format {
            LogFormat::Txt => tracing::subscriber::with_default(builder.finish(), emit),
            LogFormat::Json => {
                tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), emit)
            }
        }
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf8")
    }

    fn ours(line: &AuditLine<'_>, style: Style, now: SystemTime) -> String {
        let mut out = Vec::new();
        format(&mut out, line, style, now);
        String::from_utf8(out).expect("utf8")
    }

    const NOW: &str = "2026-12-04T10:53:30.794336Z";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_796_381_610_794_336)
    }

    /// Ours without the timestamp, as the formatter writes it `without_time()`.
    fn untimed(line: &str, style: Style) -> String {
        match (style.format, style.ansi) {
            (LogFormat::Txt, false) => line.replacen(&format!("{NOW} "), "", 1),
            (LogFormat::Txt, true) => line.replacen(&format!("\x1b[2m{NOW}\x1b[0m "), "", 1),
            (LogFormat::Json, _) => line.replacen(&format!("\"timestamp\":\"{NOW}\","), "", 1),
        }
    }

    const STYLES: [Style; 3] = [
        Style {
            format: LogFormat::Txt,
            ansi: false,
        },
        Style {
            format: LogFormat::Txt,
            ansi: true,
        },
        Style {
            format: LogFormat::Json,
            ansi: false,
        },
    ];

    fn call<'a>(subject: &'a str, name: &'a str, status: Option<u16>) -> AuditLine<'a> {
        AuditLine {
            session: "09407ab2-be6a-44d0-97e1-8ef460fe2b43",
            subject,
            method: "tools/call",
            name,
            server: "test/fixture",
            status,
        }
    }

    #[test]
    fn the_line_is_the_one_the_log_formatter_wrote() {
        let cases = [
            call("-", "echo", Some(200)),
            call("alice", "pods_list", None),
            call("", "", Some(0)),
            call("alice \"the admin\" \\ o'neil", "echo", Some(404)),
            call("ünïcødé ✓", "echo", Some(502)),
            call("tab\there", "echo", Some(200)),
            AuditLine {
                method: "(resume)",
                ..call("bob@example.com", "", Some(200))
            },
        ];
        for line in cases {
            for style in STYLES {
                assert_eq!(
                    untimed(&ours(&line, style, now()), style),
                    through_tracing(&line, style),
                    "{line:?} {style:?}"
                );
            }
        }
        assert_eq!(
            ours(&call("-", "echo", Some(200)), STYLES[0], now()),
            format!(
                "{NOW}  INFO audit: routed call session=09407ab2-be6a-44d0-97e1-8ef460fe2b43 \
                 subject=\"-\" method=\"tools/call\" name=echo server=test/fixture status=200\n"
            )
        );
        assert_eq!(
            ours(&call("alice", "echo", None), STYLES[2], now()),
            format!(
                "{{\"timestamp\":\"{NOW}\",\"level\":\"INFO\",\"message\":\"routed call\",\
                 \"session\":\"09407ab2-be6a-44d0-97e1-8ef460fe2b43\",\"subject\":\"alice\",\
                 \"method\":\"tools/call\",\"name\":\"echo\",\"server\":\"test/fixture\",\
                 \"status\":\"-\",\"target\":\"audit\"}}\n"
            )
        );
    }

    #[test]
    fn no_value_can_forge_a_second_line() {
        let forged = "x status=200\n2026-12-04T10:53:30.794336Z  INFO audit: routed call session=s";
        let cases = [
            call(forged, "echo", Some(200)),
            call("-", forged, Some(200)),
            AuditLine {
                session: forged,
                server: forged,
                ..call("\r\u{1b}[31m\u{85}\u{2028}\"", "echo", Some(200))
            },
        ];
        for line in cases {
            for style in STYLES {
                let text = ours(&line, style, now());
                assert_eq!(text.matches('\n').count(), 1, "{text}");
                assert!(text.ends_with('\n'), "{text}");
                assert!(!text.contains('\r'), "{text}");
                assert!(!text.contains("\u{1b}[31m"), "{text}");
                if style.format == LogFormat::Json {
                    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
                    assert_eq!(v["subject"], line.subject);
                    assert_eq!(v["name"], line.name);
                    assert_eq!(v["session"], line.session);
                    assert_eq!(v["server"], line.server);
                } else {
                    // Unicode line breaks are escaped too.
                    assert!(
                        !text.contains('\u{85}') && !text.contains('\u{2028}'),
                        "{text}"
                    );
                }
            }
        }
        let text = ours(&call("-", forged, Some(200)), STYLES[0], now());
        assert!(
            text.contains(r#" name="x status=200\n2026-12-04T10:53:30.794336Z  INFO"#),
            "{text}"
        );
    }

    #[test]
    fn the_line_is_written_when_the_log_level_lets_audit_through() {
        let cases = [
            ("info", true),
            ("debug", true),
            ("warn", false),
            ("error", false),
            ("off", false),
            ("info,audit=off", false),
            ("warn,audit=info", true),
            ("mcp_router=debug", false),
        ];
        for (level, want) in cases {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(level))
                .with_writer(std::io::sink)
                .finish();
            let got = tracing::subscriber::with_default(subscriber, enabled);
            assert_eq!(got, want, "--log-level {level}");
        }
    }

    #[test]
    fn a_threads_last_second_is_reused_only_within_that_second() {
        let micros = [
            1_796_381_610_000_000,
            1_796_381_610_999_999,
            1_796_381_611_000_001,
            1_796_381_610_500_000,
            1_709_251_199_999_999,
        ];
        let want = [
            "2026-12-04T10:53:30.000000Z",
            "2026-12-04T10:53:30.999999Z",
            "2026-12-04T10:53:31.000001Z",
            "2026-12-04T10:53:30.500000Z",
            "2024-02-29T23:59:59.999999Z",
        ];
        for (micros, want) in micros.into_iter().zip(want) {
            let mut out = Vec::new();
            timestamp(&mut out, UNIX_EPOCH + Duration::from_micros(micros));
            assert_eq!(String::from_utf8(out).expect("utf8"), want, "{micros}");
        }
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400_000_001, "2000-02-29T00:00:00.000001Z"),
            (1_709_251_199_999_999, "2024-02-29T23:59:59.999999Z"),
            (1_796_381_610_794_336, NOW),
            (4_102_444_800_000_000, "2100-01-01T00:00:00.000000Z"),
            (253_402_300_799_000_000, "9999-12-31T23:59:59.000000Z"),
        ];
        for (micros, want) in cases {
            let mut out = Vec::new();
            timestamp(&mut out, UNIX_EPOCH + Duration::from_micros(micros));
            assert_eq!(String::from_utf8(out).expect("utf8"), want, "{micros}");
        }
    }
}
