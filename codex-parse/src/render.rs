//! The summary as text short enough to paste into an agent's context.

use std::fmt::Write;

use bg_shared::format::one_line;
use bg_shared::time::human_duration;

use crate::model::{Request, Summary, Tokens};

/// How much of a final message the summary shows (`--messages`: all).
const MESSAGE_CHARS: usize = 400;

pub fn summary(summary: &Summary, requests: &[&Request]) -> String {
    let mut out = String::new();
    let protocol = summary.protocol.map_or("unknown protocol", |p| p.as_str());
    let _ = write!(out, "{protocol}: {} request(s)", summary.requests.len());
    if summary.skipped_lines > 0 {
        let _ = write!(out, ", {} line(s) skipped", summary.skipped_lines);
    }
    out.push('\n');
    if let Some(unknown) = &summary.unknown_format {
        let _ = writeln!(out, "warning: {}", unknown.sentence());
    }
    for request in requests {
        request_block(&mut out, request);
    }
    out.push_str(&approvals(summary));
    out.push_str(&stuck(summary));
    out
}

fn request_block(out: &mut String, request: &Request) {
    let _ = write!(out, "[{}] {}", request.id, request.status.as_str());
    if let Some(ms) = request.duration_ms {
        let _ = write!(out, " in {}", human_duration(ms));
    }
    if let Some(thread) = &request.thread_id {
        let _ = write!(out, "  thread {thread}");
    }
    if let Some(tokens) = &request.tokens {
        out.push_str("  ");
        write_tokens(out, tokens);
    }
    out.push('\n');
    for command in &request.commands {
        let _ = write!(out, "  $ {}  -> ", one_line(&command.command, 160));
        match command.exit_code {
            Some(code) => _ = writeln!(out, "exit {code}"),
            None => _ = writeln!(out, "{}", command.status),
        }
    }
    if let Some(tests) = &request.tests {
        let _ = writeln!(
            out,
            "  tests: {} passed, {} failed",
            tests.passed, tests.failed
        );
    }
    for file in &request.files {
        let _ = writeln!(out, "  {} {}", file.kind, file.path);
    }
    for error in &request.errors {
        let _ = writeln!(out, "  error: {}", one_line(error, 300));
    }
    if let Some(message) = &request.final_message {
        let _ = writeln!(
            out,
            "  > {}",
            clip(message, MESSAGE_CHARS).replace('\n', "\n    ")
        );
    }
}

/// `--tokens`: one line per request that used any.
pub fn tokens(requests: &[&Request]) -> String {
    let mut out = String::new();
    for request in requests {
        if let Some(tokens) = &request.tokens {
            let _ = write!(out, "[{}] ", request.id);
            write_tokens(&mut out, tokens);
            out.push('\n');
        }
    }
    out
}

fn write_tokens(out: &mut String, tokens: &Tokens) {
    let _ = write!(
        out,
        "tokens: {} in ({} cached), {} out ({} reasoning), {} total",
        tokens.input, tokens.cached_input, tokens.output, tokens.reasoning_output, tokens.total
    );
}

pub fn approvals(summary: &Summary) -> String {
    let mut out = String::new();
    for approval in &summary.pending_approvals {
        let offers = approval
            .offered_decisions
            .as_ref()
            .map(|names| format!("   offers: {}", one_line(&names.join(", "), 200)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "pending approval {} ({}{}): {}{offers}   answer: {}",
            approval.request_id,
            approval.kind,
            approval
                .owner
                .as_ref()
                .map(|o| format!(", request {o}"))
                .unwrap_or_default(),
            one_line(approval.command.as_deref().unwrap_or("?"), 200),
            answer_hint(approval)
        );
    }
    out
}

/// `codex-send --approve 0 | --deny 0`, or the flags of what it offers.
fn answer_hint(approval: &crate::model::Approval) -> String {
    let id = &approval.request_id;
    let flags: Vec<String> = match &approval.offered_decisions {
        None => vec![format!("--approve {id}"), format!("--deny {id}")],
        Some(offered) => crate::model::offered_flags(offered)
            .into_iter()
            .map(|flag| format!("{flag} {id}"))
            .collect(),
    };
    if flags.is_empty() {
        return "none that codex-send gives".into();
    }
    format!("codex-send {}", flags.join(" | "))
}

pub fn stuck(summary: &Summary) -> String {
    let mut out = String::new();
    for stuck in &summary.stuck {
        let id = stuck
            .request_id
            .as_ref()
            .map(|id| format!(" [{id}]"))
            .unwrap_or_default();
        let _ = writeln!(out, "stuck: {}{id}: {}", stuck.reason, stuck.detail);
    }
    out
}

/// Every message (or reasoning text) of the requests, whole, as
/// (request id, text); the last `last` of them.
pub fn collect_texts(
    requests: &[&Request],
    reasoning: bool,
    last: Option<usize>,
) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = Vec::new();
    for request in requests {
        let texts = if reasoning {
            &request.reasoning
        } else {
            &request.messages
        };
        all.extend(texts.iter().map(|t| (request.id.clone(), t.clone())));
        // A message that never came whole: the summary's final message
        // is then what its deltas assembled (texts are kept for every
        // reader of them, so a final message that came is in `messages`).
        if !reasoning
            && request.messages.is_empty()
            && let Some(partial) = request.final_message.as_ref().filter(|m| !m.is_empty())
        {
            all.push((request.id.clone(), partial.clone()));
        }
    }
    let skip = last.map_or(0, |n| all.len().saturating_sub(n));
    all.drain(..skip);
    all
}

pub fn texts(texts: &[(String, String)]) -> String {
    let mut out = String::new();
    for (id, text) in texts {
        let _ = writeln!(out, "[{id}] {text}");
    }
    out
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(max).collect();
    clipped.push_str(" [...] (--messages shows it whole)");
    clipped
}
