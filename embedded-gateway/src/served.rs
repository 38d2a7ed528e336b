//! Owns what this node serves: it swaps store snapshots into the proxy in revision order
//! (a late, older snapshot never replaces a newer one), remembers the served revision and the
//! config hash (sha256 of the canonical snapshot, so operators can compare nodes), tracks
//! whether the store is reachable, and, for a shared (PostgreSQL) store, keeps the last good
//! snapshot on local disk so a node can serve it while the database is down, at start too.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::proxy::Proxy;
use crate::snapshot::ConfigSnapshot;

/// The served configuration. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Served {
    inner: Arc<Inner>,
}

struct Inner {
    proxy: Proxy,
    state: Mutex<State>,
    last_good: Option<LastGood>,
    reachable: AtomicBool,
}

#[derive(Default)]
struct State {
    applied: bool,
    revision: u64,
    hash: String,
}

/// Where and for which control plane the last good snapshot is kept.
#[derive(Debug, Clone)]
pub struct LastGood {
    pub path: PathBuf,
    pub cp_id: String,
    pub cp_name: String,
}

/// Format version of the last-good file.
const LAST_GOOD_FORMAT: u64 = 1;

impl LastGood {
    /// `DATA_DIR/last-good-NAME.json`.
    pub fn path_for(data_dir: &Path, cp_name: &str) -> PathBuf {
        let safe: String = cp_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        data_dir.join(format!("last-good-{safe}.json"))
    }
}

/// A snapshot read back from a last-good file.
#[derive(Debug)]
pub struct Saved {
    pub cp_id: String,
    pub cp_name: String,
    pub hash: String,
    pub snapshot: ConfigSnapshot,
}

#[derive(Debug, thiserror::Error)]
pub enum LastGoodError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Gantry last-good snapshot: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The snapshot as one JSON document, entities in store order. Its bytes are the same on
/// every node that serves the same revision.
pub fn canonical(snapshot: &ConfigSnapshot) -> Value {
    json!({
        "services": snapshot.services,
        "routes": snapshot.routes,
        "consumers": snapshot.consumers,
        "keyauth_credentials": snapshot.key_auths,
        "plugins": snapshot.plugins,
    })
}

/// `sha256:HEX` of the canonical snapshot.
pub fn config_hash(snapshot: &ConfigSnapshot) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical(snapshot).to_string().as_bytes(),
    );
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Served {
    /// `last_good`: keep each applied snapshot there (shared stores only).
    pub fn new(proxy: Proxy, last_good: Option<LastGood>) -> Self {
        Self {
            inner: Arc::new(Inner {
                proxy,
                state: Mutex::new(State::default()),
                last_good,
                reachable: AtomicBool::new(true),
            }),
        }
    }

    pub fn proxy(&self) -> &Proxy {
        &self.inner.proxy
    }

    /// Swaps `snapshot` in unless the proxy already serves a newer revision or this same
    /// configuration. Returns whether it was swapped in. Blocks on a file write when a
    /// last-good file is kept.
    pub fn apply(&self, snapshot: &ConfigSnapshot) -> bool {
        let hash = config_hash(snapshot);
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.applied
            && (snapshot.revision < state.revision
                || (snapshot.revision == state.revision && hash == state.hash))
        {
            return false;
        }
        self.inner.proxy.apply(snapshot);
        if let Some(lg) = &self.inner.last_good
            && let Err(e) = save(lg, &hash, snapshot)
        {
            tracing::warn!(error = %e, path = %lg.path.display(), "cannot keep the last good configuration on disk");
        }
        *state = State {
            applied: true,
            revision: snapshot.revision,
            hash,
        };
        true
    }

    /// The revision new requests are served from.
    pub fn revision(&self) -> u64 {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revision
    }

    /// The hash of the served configuration (`sha256:…`); empty before the first swap.
    pub fn hash(&self) -> String {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hash
            .clone()
    }

    /// Records whether the store answered; returns the previous value.
    pub fn set_reachable(&self, reachable: bool) -> bool {
        self.inner.reachable.swap(reachable, Ordering::SeqCst)
    }

    pub fn reachable(&self) -> bool {
        self.inner.reachable.load(Ordering::SeqCst)
    }
}

/// Writes the last-good file atomically (temporary file, then rename), readable by the owner
/// only: it holds credentials, like the SQLite store file.
fn save(lg: &LastGood, hash: &str, snapshot: &ConfigSnapshot) -> std::io::Result<()> {
    let doc = json!({
        "format": LAST_GOOD_FORMAT,
        "control_plane": {"id": lg.cp_id, "name": lg.cp_name},
        "revision": snapshot.revision,
        "config_hash": hash,
        "config": canonical(snapshot),
    });
    if let Some(dir) = lg.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = lg.path.with_extension("json.tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(doc.to_string().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &lg.path)
}

/// Reads a last-good file written by [`Served::apply`].
pub fn load(path: &Path) -> Result<Saved, LastGoodError> {
    let text = std::fs::read_to_string(path).map_err(|source| LastGoodError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason: String| LastGoodError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    if doc["format"] != json!(LAST_GOOD_FORMAT) {
        return Err(invalid(format!("unknown format {}", doc["format"])));
    }
    let text_at = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("missing {p}")))
    };
    let config = &doc["config"];
    let list = |k: &str| config.get(k).cloned().unwrap_or(json!([]));
    let parse = |e: serde_json::Error| invalid(e.to_string());
    let snapshot = ConfigSnapshot {
        revision: doc["revision"]
            .as_u64()
            .ok_or_else(|| invalid("missing revision".to_owned()))?,
        services: serde_json::from_value(list("services")).map_err(parse)?,
        routes: serde_json::from_value(list("routes")).map_err(parse)?,
        consumers: serde_json::from_value(list("consumers")).map_err(parse)?,
        key_auths: serde_json::from_value(list("keyauth_credentials")).map_err(parse)?,
        plugins: serde_json::from_value(list("plugins")).map_err(parse)?,
    };
    let hash = text_at("/config_hash")?;
    if config_hash(&snapshot) != hash {
        return Err(invalid(
            "its content does not match its config_hash".to_owned(),
        ));
    }
    Ok(Saved {
        cp_id: text_at("/control_plane/id")?,
        cp_name: text_at("/control_plane/name")?,
        hash,
        snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_snapshot_loads_back_with_the_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let lg = LastGood {
            path: LastGood::path_for(dir.path(), "my cp"),
            cp_id: "id-1".to_owned(),
            cp_name: "my cp".to_owned(),
        };
        assert!(lg.path.ends_with("last-good-my_cp.json"));
        let snap = ConfigSnapshot {
            revision: 7,
            consumers: vec![serde_json::from_value(json!({"id": "c1", "username": "u"})).unwrap()],
            ..Default::default()
        };
        let hash = config_hash(&snap);
        save(&lg, &hash, &snap).unwrap();
        let back = load(&lg.path).unwrap();
        assert_eq!(
            (back.snapshot, back.hash, back.cp_id),
            (snap, hash, "id-1".to_owned())
        );
        let tampered = std::fs::read_to_string(&lg.path)
            .unwrap()
            .replace("\"u\"", "\"v\"");
        std::fs::write(&lg.path, tampered).unwrap();
        assert!(matches!(load(&lg.path), Err(LastGoodError::Invalid { .. })));
    }
}
