//! Owns the namespace guard: whether a command may read or write a control plane, given the
//! kongctl labels on it (`KONGCTL-namespace`, `KONGCTL-protected`) and the namespace asked for.

use std::collections::BTreeMap;

use embedded_gateway::model::{NAMESPACE_LABEL, PROTECTED_LABEL};

/// What the command is about to do to the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `diff`, `dump`, `plan`: may look at an unadopted control plane, with a warning.
    Read,
    /// `apply`, `sync`, `reset`: must own the control plane.
    Write,
    /// `delete control-plane`.
    Delete,
}

/// The guard's verdict when it lets the command go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed, with a warning to print (e.g. a read of an unadopted control plane).
    AllowedWithWarning(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "control plane `{cp}` is not adopted into any namespace\n\nhint: run `gantry adopt control-plane {cp} --namespace {ns}` first"
    )]
    Unadopted { cp: String, ns: String },
    #[error(
        "control plane `{cp}` belongs to namespace `{owner}`, not `{ns}`\n\nhint: use `--namespace {owner}`, or `gantry adopt control-plane {cp} --namespace {ns} --overwrite-namespace` to take it over"
    )]
    Foreign {
        cp: String,
        owner: String,
        ns: String,
    },
    #[error(
        "control plane `{cp}` is protected (label `{PROTECTED_LABEL}: true`); refusing to {what} it"
    )]
    Protected { cp: String, what: &'static str },
    #[error(
        "namespace `{0}` is invalid: must consist of lowercase alphanumeric characters or '-', and must start and end with an alphanumeric character"
    )]
    InvalidNamespace(String),
}

/// kongctl's namespace rule: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63 characters.
pub fn valid_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && ok(&b[0])
        && ok(&b[b.len() - 1])
        && b.iter().all(|c| ok(c) || *c == b'-')
}

pub fn is_protected(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get(PROTECTED_LABEL)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Decides whether `access` to control plane `cp` (with `labels`) is allowed under `namespace`.
/// Without a namespace the guard only enforces protection.
pub fn check(
    cp: &str,
    labels: &BTreeMap<String, String>,
    namespace: Option<&str>,
    access: Access,
) -> Result<Verdict, Refusal> {
    if access != Access::Read && is_protected(labels) {
        return Err(Refusal::Protected {
            cp: cp.to_owned(),
            what: if access == Access::Delete {
                "delete"
            } else {
                "change"
            },
        });
    }
    let Some(ns) = namespace else {
        return Ok(Verdict::Allowed);
    };
    if !valid_namespace(ns) {
        return Err(Refusal::InvalidNamespace(ns.to_owned()));
    }
    match labels.get(NAMESPACE_LABEL) {
        Some(owner) if owner == ns => Ok(Verdict::Allowed),
        Some(owner) => Err(Refusal::Foreign {
            cp: cp.to_owned(),
            owner: owner.clone(),
            ns: ns.to_owned(),
        }),
        None if access == Access::Read => Ok(Verdict::AllowedWithWarning(format!(
            "control plane `{cp}` is not adopted into namespace `{ns}` (run `gantry adopt control-plane {cp} --namespace {ns}` before applying)"
        ))),
        None => Err(Refusal::Unadopted {
            cp: cp.to_owned(),
            ns: ns.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn writes_to_an_unadopted_control_plane_are_refused_with_the_adopt_command() {
        let err = check("cp1", &labels(&[]), Some("team-a"), Access::Write).unwrap_err();
        assert!(
            err.to_string()
                .contains("gantry adopt control-plane cp1 --namespace team-a"),
            "{err}"
        );
    }

    #[test]
    fn reads_of_an_unadopted_control_plane_warn() {
        let v = check("cp1", &labels(&[]), Some("team-a"), Access::Read).unwrap();
        assert!(matches!(v, Verdict::AllowedWithWarning(w) if w.contains("not adopted")));
    }

    #[test]
    fn a_foreign_namespace_is_refused_naming_both() {
        let l = labels(&[(NAMESPACE_LABEL, "team-b")]);
        let err = check("cp1", &l, Some("team-a"), Access::Read).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`team-b`") && msg.contains("`team-a`"),
            "{msg}"
        );
    }

    #[test]
    fn the_owning_namespace_may_write() {
        let l = labels(&[(NAMESPACE_LABEL, "team-a")]);
        assert_eq!(
            check("cp1", &l, Some("team-a"), Access::Write),
            Ok(Verdict::Allowed)
        );
    }

    #[test]
    fn protection_blocks_writes_and_deletes_but_not_reads() {
        let l = labels(&[(NAMESPACE_LABEL, "a"), (PROTECTED_LABEL, "true")]);
        assert!(check("cp", &l, Some("a"), Access::Write).is_err());
        assert!(check("cp", &l, None, Access::Delete).is_err());
        assert_eq!(
            check("cp", &l, Some("a"), Access::Read),
            Ok(Verdict::Allowed)
        );
    }

    #[test]
    fn namespaces_follow_kongctls_rule() {
        assert!(valid_namespace("basic-llm-routing-recipe"));
        for bad in ["", "-a", "a-", "Team", "a_b", &"a".repeat(64)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }
}
