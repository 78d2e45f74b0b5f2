//! Log output: journald under systemd, plain or JSON lines on stderr otherwise.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("SIGNET_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Daemon logging. `format` is `plain`, `json` or `journald`; unset means journald when
/// systemd gave us a journal stream, plain otherwise.
pub fn init(format: Option<&str>) {
    let format = format
        .map(str::to_owned)
        .unwrap_or_else(|| if std::env::var_os("JOURNAL_STREAM").is_some() { "journald" } else { "plain" }.to_owned());
    let registry = tracing_subscriber::registry().with(filter());
    match format.as_str() {
        "journald" => match tracing_journald::layer() {
            Ok(layer) => registry.with(layer.with_syslog_identifier("signet".into())).init(),
            Err(e) => {
                registry.with(plain()).init();
                tracing::warn!(error = %e, "journald not reachable; logging to stderr");
            }
        },
        "json" => registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).init(),
        other => {
            registry.with(plain()).init();
            if other != "plain" {
                tracing::warn!(format = other, "unknown log_format; using plain");
            }
        }
    }
}

/// Human-readable lines on stderr; colour only for a terminal, never into files or journals.
fn plain<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal())
}

/// CLI commands: warnings and errors only, on stderr, so stdout stays machine-readable.
pub fn init_cli() {
    let filter = EnvFilter::try_from_env("SIGNET_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry().with(filter).with(plain()).try_init();
}
