//! Owns the `file-log` plugin (Kong priority 9): its configuration (`path`, `reopen`) and its
//! `log` phase, which appends each request's Kong log entry as one JSON line. Entries go
//! through a bounded queue to one writer thread per file, so a slow or full disk never delays
//! a request; entries that do not fit the queue are dropped and counted.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock, Mutex};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{CompileEnv, Plugin};
use super::serialize::write_entry;
use crate::context::LogRecord;
use crate::metrics::METRICS;
use crate::schema::FieldError;

/// Entries waiting for one file's writer; beyond this they are dropped (and counted).
const QUEUE: usize = 10_000;

/// Counts entries dropped (queue full, file not writable) in
/// `gantry_log_entries_dropped_total{plugin="file-log"}`.
fn dropped(n: u64) {
    METRICS
        .log_dropped
        .with_label_values(&[FileLog::NAME])
        .inc_by(n);
}

/// `file-log` config, Kong's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "file-log")]
pub struct FileLogConfig {
    /// The file the entries are appended to (created when missing).
    pub path: String,
    /// Close and reopen the file before each write (for log rotation without a signal).
    #[serde(default)]
    pub reopen: bool,
    /// Kong's Lua hook; Gantry runs no Lua, so a config that sets it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields_by_lua: Option<Value>,
}

/// The compiled plugin: a handle on its file's writer.
#[derive(Debug)]
pub struct FileLog {
    queue: Queue,
}

impl Plugin for FileLog {
    const NAME: &'static str = "file-log";
    const PRIORITY: u32 = 9;
    const SCHEMA: &'static str = include_str!("../../../schemas/plugins/file-log.schema.json");
    type Config = FileLogConfig;

    fn entity_errors(c: &FileLogConfig) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let p = &c.path;
        if p.is_empty()
            || p.starts_with(' ')
            || p.ends_with(' ')
            || p.contains(['*', '&', '%', '`'])
        {
            errs.push(FieldError::new("path", "not a valid filename"));
        }
        if c.custom_fields_by_lua.is_some() {
            errs.push(FieldError::new(
                "custom_fields_by_lua",
                "not supported: Gantry runs no Lua",
            ));
        }
        errs
    }

    fn compile(c: FileLogConfig, _env: &CompileEnv<'_>) -> Result<Self, String> {
        if let Some(e) = Self::entity_errors(&c).first() {
            return Err(format!("file-log: {e}"));
        }
        Ok(Self {
            queue: writer(Path::new(&c.path), c.reopen),
        })
    }

    fn has_log(&self) -> bool {
        true
    }

    fn log(&self, record: &Arc<LogRecord>) {
        match self.queue.try_send(record.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                dropped(1);
            }
        }
    }
}

/// One writer per (file, reopen), shared by every instance and config revision that names it.
static WRITERS: LazyLock<Mutex<HashMap<(PathBuf, bool), Queue>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The sending end of one file's queue.
type Queue = SyncSender<Arc<LogRecord>>;

fn writer(path: &Path, reopen: bool) -> Queue {
    let mut map = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    let key = (path.to_path_buf(), reopen);
    if let Some(tx) = map.get(&key) {
        return tx.clone();
    }
    let (tx, rx) = sync_channel(QUEUE);
    let file = key.0.clone();
    let spawned = std::thread::Builder::new()
        .name("gantry-file-log".into())
        .spawn(move || write_loop(&file, reopen, rx));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "file-log: cannot start the writer thread");
    }
    map.insert(key, tx.clone());
    tx
}

fn open(path: &Path) -> Option<File> {
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "file-log: cannot open the log file");
            None
        }
    }
}

/// Entries written with one `write` call at most: the writer drains what queued up while it
/// was busy, so a burst costs one system call, not one per entry.
const BATCH: usize = 256;

fn write_loop(path: &Path, reopen: bool, rx: Receiver<Arc<LogRecord>>) {
    let mut file = None;
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        let mut n = 0u64;
        let mut next = Some(first);
        while let Some(record) = next.take() {
            if write_entry(&record, &mut buf).is_ok() {
                buf.push(b'\n');
                n += 1;
            }
            drop(record);
            if n < BATCH as u64 {
                next = rx.try_recv().ok();
            }
        }
        if reopen || file.is_none() {
            file = open(path);
        }
        let Some(f) = file.as_mut() else {
            dropped(n);
            buf.clear();
            continue;
        };
        if let Err(e) = f.write_all(&buf) {
            tracing::warn!(path = %path.display(), error = %e, "file-log: write failed");
            dropped(n);
            file = None;
        }
        buf.clear();
    }
}
