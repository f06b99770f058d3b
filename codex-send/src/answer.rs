//! Answers to Codex's approval requests, in the shape each protocol and
//! version accepts (docs/ARCHITECTURE.md, "Approvals and interrupts"). Anything else is worse than
//! no answer: an unknown decision fails the command, and a JSON-RPC error
//! reply hangs Codex for good.

use bg_shared::{Error, Result};
use serde_json::{Value, json};

use crate::wire::Protocol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Approve,
    ApproveForSession,
    /// With the reason the model is told, where the server takes one.
    Deny(Option<String>),
    /// Stop the whole turn.
    Cancel,
}

/// What the server asked, as far as the session's stream tells.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// app-server: the server request's method.
    pub method: Option<String>,
    /// The server's `ReviewDecision` (mcp-server, app-server's legacy
    /// requests) has only the structured denial: its version says so, or
    /// its approval events list `available_decisions`, as 0.153's do.
    pub structured_denial: bool,
    /// The decisions the request offers (app-server's `availableDecisions`,
    /// by name), where it says: no other may be sent.
    pub offered: Option<Vec<String>>,
}

/// The reply's `result`.
pub fn result(protocol: Protocol, asked: &Asked, answer: &Answer) -> Result<Value> {
    let decision = if protocol == Protocol::McpServer {
        review_decision(asked, answer)
    } else {
        app_decision(asked, answer)?
    };
    Ok(json!({ "decision": decision }))
}

/// A `ReviewDecision`: mcp-server's answers, and app-server's legacy
/// `execCommandApproval` / `applyPatchApproval` (whose 0.169 schema, like
/// mcp-server 0.153, has only the structured denial).
fn review_decision(asked: &Asked, answer: &Answer) -> Value {
    match answer {
        Answer::Approve => json!("approved"),
        Answer::ApproveForSession => json!("approved_for_session"),
        Answer::Deny(reason) if asked.structured_denial => {
            let rejection = reason.as_deref().unwrap_or("denied by codex-send");
            json!({ "denied": { "rejection": rejection } })
        }
        Answer::Deny(_) => json!("denied"),
        Answer::Cancel => json!("abort"),
    }
}

/// app-server v2: `item/commandExecution/requestApproval` and
/// `item/fileChange/requestApproval` take the same four words (and the
/// command one more, with an execpolicy amendment, not offered here).
/// Other server requests (user input, permissions, elicitations) are not
/// approvals: answering them with a decision would fail them.
fn app_decision(asked: &Asked, answer: &Answer) -> Result<Value> {
    match asked.method.as_deref() {
        None
        | Some("item/commandExecution/requestApproval" | "item/fileChange/requestApproval") => {}
        Some("execCommandApproval" | "applyPatchApproval") => {
            return Ok(review_decision(asked, answer));
        }
        Some(other) => {
            return Err(Error::usage(format!(
                "the server request is '{other}', not an approval codex-send can answer"
            )));
        }
    }
    let decision = match answer {
        Answer::Approve => "accept",
        Answer::ApproveForSession => "acceptForSession",
        Answer::Deny(_) => "decline",
        Answer::Cancel => "cancel",
    };
    check_offered(asked, decision)?;
    Ok(json!(decision))
}

/// Refuses a decision the request does not offer, naming those it does:
/// Codex shows its user only what it offers, and a client that answers
/// otherwise is outside what the server promised to take.
fn check_offered(asked: &Asked, decision: &str) -> Result<()> {
    let Some(offered) = &asked.offered else {
        return Ok(());
    };
    if offered.iter().any(|name| name == decision) {
        return Ok(());
    }
    let names: Vec<String> = offered
        .iter()
        .map(|name| bg_shared::format::printable(name).into_owned())
        .collect();
    Err(Error::usage(format!(
        "the request does not offer '{decision}'; it offers: {}{}",
        names.join(", "),
        flags_for(offered)
    )))
}

/// ` (codex-send --approve, --cancel)`: the flags that give what is offered.
fn flags_for(offered: &[String]) -> String {
    let flags = codex_parse::model::offered_flags(offered);
    if flags.is_empty() {
        String::new()
    } else {
        format!(" (codex-send {})", flags.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_take_the_shape_the_server_accepts() {
        let old = Asked::default();
        let new = Asked {
            structured_denial: true,
            ..Asked::default()
        };
        let deny = Answer::Deny(Some("no".into()));
        let decision = |asked, answer| result(Protocol::McpServer, asked, answer).ok();
        assert_eq!(decision(&old, &deny), Some(json!({"decision": "denied"})));
        assert_eq!(
            decision(&new, &deny),
            Some(json!({"decision": {"denied": {"rejection": "no"}}}))
        );
        assert_eq!(
            decision(&new, &Answer::Cancel),
            Some(json!({"decision": "abort"}))
        );
        let app = |method: &str, answer| {
            let asked = Asked {
                method: Some(method.into()),
                structured_denial: true,
                offered: None,
            };
            result(Protocol::AppServer, &asked, answer).ok()
        };
        assert_eq!(
            app(
                "item/fileChange/requestApproval",
                &Answer::ApproveForSession
            ),
            Some(json!({"decision": "acceptForSession"}))
        );
        assert_eq!(
            app("execCommandApproval", &Answer::Approve),
            Some(json!({"decision": "approved"}))
        );
        assert_eq!(
            app("item/commandExecution/requestApproval", &deny),
            Some(json!({"decision": "decline"}))
        );
        assert_eq!(
            app("item/fileChange/requestApproval", &Answer::Cancel),
            Some(json!({"decision": "cancel"}))
        );
        // The legacy requests take a ReviewDecision: 0.169's schema has
        // only the structured denial.
        assert_eq!(
            app("applyPatchApproval", &deny),
            Some(json!({"decision": {"denied": {"rejection": "no"}}}))
        );
        assert_eq!(app("item/tool/requestUserInput", &Answer::Approve), None);
    }

    #[test]
    fn a_decision_the_request_does_not_offer_is_refused_naming_those_it_does() {
        let asked = Asked {
            method: Some("item/commandExecution/requestApproval".into()),
            structured_denial: false,
            offered: Some(vec![
                "accept".into(),
                "acceptWithExecpolicyAmendment".into(),
                "cancel".into(),
            ]),
        };
        let deny = result(Protocol::AppServer, &asked, &Answer::Deny(None));
        let message = deny.err().map(|err| err.to_string()).unwrap_or_default();
        assert!(message.contains("does not offer 'decline'"), "{message}");
        assert!(
            message.contains("accept, acceptWithExecpolicyAmendment, cancel"),
            "{message}"
        );
        assert!(message.contains("--approve, --cancel"), "{message}");
        assert_eq!(
            result(Protocol::AppServer, &asked, &Answer::Cancel).ok(),
            Some(json!({"decision": "cancel"}))
        );
    }
}
