//! Owns the local analytics store: per-minute rollups of the requests the log phase saw
//! (requests, errors, a latency histogram, tokens and cost per consumer, route, model and
//! provider) in their own SQLite file, with bounded retention. The log phase only adds to an
//! in-memory table; one writer thread folds it into SQLite every second and prunes old rows,
//! so the request path never touches the disk. Queries ([`Recorder::summary`]) answer the
//! admin API's `/analytics/api/summary`, which the page and `gantry analytics` read.

mod query;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub use query::{Query, QueryError, parse_duration};

use crate::context::LogRecord;

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS: [f64; 21] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0,
    3000.0, 5000.0, 7500.0, 10000.0, 20000.0, 30000.0, 60000.0,
];
const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// How often the writer folds the in-memory table into SQLite.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("analytics store {path}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("analytics writer is not running")]
    Stopped,
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// The rollup row a request adds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    minute: i64,
    consumer: String,
    route: String,
    model: String,
    provider: String,
}

/// One minute's figures for one key.
#[derive(Debug, Clone, Default)]
struct Rollup {
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost: f64,
    latency_ms_sum: i64,
    buckets: [i64; BUCKETS],
}

impl Rollup {
    fn add(&mut self, o: &Rollup) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cost += o.cost;
        self.latency_ms_sum += o.latency_ms_sum;
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
    }
}

fn bucket_of(ms: f64) -> usize {
    LATENCY_BOUNDS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BOUNDS.len())
}

fn encode_buckets(b: &[i64; BUCKETS]) -> String {
    b.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn decode_buckets(s: &str) -> [i64; BUCKETS] {
    let mut out = [0; BUCKETS];
    for (slot, v) in out.iter_mut().zip(s.split(',')) {
        *slot = v.parse().unwrap_or(0);
    }
    out
}

enum Cmd {
    /// Write what is pending now, then answer.
    Flush(SyncSender<()>),
}

/// The store's handle: the in-memory table the log phase adds to, and the writer's channel.
pub struct Recorder {
    path: PathBuf,
    pending: Mutex<HashMap<Key, Rollup>>,
    writer: Mutex<SyncSender<Cmd>>,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open(path: &Path) -> Result<Connection, AnalyticsError> {
    let err = |source| AnalyticsError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS rollups (
             minute INTEGER NOT NULL,
             consumer TEXT NOT NULL,
             route TEXT NOT NULL,
             model TEXT NOT NULL,
             provider TEXT NOT NULL,
             requests INTEGER NOT NULL,
             errors INTEGER NOT NULL,
             prompt_tokens INTEGER NOT NULL,
             completion_tokens INTEGER NOT NULL,
             cost REAL NOT NULL,
             latency_ms_sum INTEGER NOT NULL,
             latency_buckets TEXT NOT NULL,
             PRIMARY KEY (minute, consumer, route, model, provider)
         ) WITHOUT ROWID;",
    )
    .map_err(err)?;
    Ok(conn)
}

impl Recorder {
    /// Opens (or creates) the store at `path` and starts its writer; rows older than
    /// `retention` are pruned.
    pub fn open(path: &Path, retention: Duration) -> Result<Arc<Self>, AnalyticsError> {
        let conn = open(path)?;
        let reader = open(path)?;
        let (tx, rx) = sync_channel::<Cmd>(16);
        let rec = Arc::new(Self {
            path: path.to_path_buf(),
            pending: Mutex::new(HashMap::new()),
            writer: Mutex::new(tx),
            reader: Mutex::new(reader),
        });
        let weak = Arc::downgrade(&rec);
        let retention_minutes = (retention.as_secs() / 60).max(1) as i64;
        std::thread::Builder::new()
            .name("gantry-analytics".into())
            .spawn(move || {
                let mut conn = conn;
                loop {
                    let cmd = rx.recv_timeout(FLUSH_EVERY);
                    let Some(rec) = weak.upgrade() else {
                        return;
                    };
                    rec.write(&mut conn, retention_minutes);
                    match cmd {
                        Ok(Cmd::Flush(done)) => {
                            let _ = done.send(());
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|_| AnalyticsError::Stopped)?;
        Ok(rec)
    }

    /// Adds one finished request to the current minute's rollup (memory only).
    pub fn record(&self, r: &LogRecord) {
        let c = &r.ctx;
        let minute = c
            .started_at
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_secs() / 60) as i64)
            .unwrap_or(0);
        let consumer = c
            .auth
            .as_ref()
            .filter(|a| !a.anonymous)
            .map(|a| {
                a.consumer
                    .username()
                    .map(str::to_owned)
                    .unwrap_or_else(|| a.consumer.id.clone())
            })
            .unwrap_or_default();
        let route = c.route.name.clone().unwrap_or_else(|| c.route.id.clone());
        let (model, provider) =
            c.ai.as_ref()
                .map(|a| (a.model.clone(), a.provider.to_owned()))
                .unwrap_or_default();
        let ms = r.total.as_secs_f64() * 1000.0;
        let mut one = Rollup {
            requests: 1,
            errors: i64::from(r.status.as_u16() >= 400),
            latency_ms_sum: ms.round() as i64,
            ..Rollup::default()
        };
        one.buckets[bucket_of(ms)] = 1;
        if let Some(ai) = &c.ai
            && let Some(u) = ai.usage.get()
        {
            one.prompt_tokens = u.prompt_tokens as i64;
            one.completion_tokens = u.completion_tokens as i64;
            one.cost = ai.cost(&u);
        }
        let key = Key {
            minute,
            consumer,
            route,
            model,
            provider,
        };
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.entry(key).or_default().add(&one);
    }

    /// Folds the pending table into SQLite and prunes rows past retention.
    fn write(&self, conn: &mut Connection, retention_minutes: i64) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let now_minute = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_secs() / 60) as i64)
            .unwrap_or(0);
        let written = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for (k, v) in &batch {
                let mut row = v.clone();
                let old: Option<Rollup> = tx
                    .query_row(
                        "SELECT requests, errors, prompt_tokens, completion_tokens, cost,
                                latency_ms_sum, latency_buckets
                         FROM rollups WHERE minute = ?1 AND consumer = ?2 AND route = ?3
                           AND model = ?4 AND provider = ?5",
                        params![k.minute, k.consumer, k.route, k.model, k.provider],
                        |r| {
                            Ok(Rollup {
                                requests: r.get(0)?,
                                errors: r.get(1)?,
                                prompt_tokens: r.get(2)?,
                                completion_tokens: r.get(3)?,
                                cost: r.get(4)?,
                                latency_ms_sum: r.get(5)?,
                                buckets: decode_buckets(&r.get::<_, String>(6)?),
                            })
                        },
                    )
                    .optional()?;
                if let Some(old) = old {
                    row.add(&old);
                }
                tx.execute(
                    "INSERT OR REPLACE INTO rollups VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        k.minute,
                        k.consumer,
                        k.route,
                        k.model,
                        k.provider,
                        row.requests,
                        row.errors,
                        row.prompt_tokens,
                        row.completion_tokens,
                        row.cost,
                        row.latency_ms_sum,
                        encode_buckets(&row.buckets),
                    ],
                )?;
            }
            tx.execute(
                "DELETE FROM rollups WHERE minute < ?1",
                params![now_minute - retention_minutes],
            )?;
            tx.commit()
        })();
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "analytics: write failed; this batch is lost");
            let lost: i64 = batch.values().map(|r| r.requests).sum();
            crate::metrics::METRICS
                .log_dropped
                .with_label_values(&["analytics"])
                .inc_by(lost.max(0) as u64);
        }
    }

    /// Asks the writer to write what is pending now and waits (bounded) until it did, so a
    /// query sees every request that already ended.
    fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        let sent = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_send(Cmd::Flush(tx));
        if sent.is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }

    /// The figures for a query (blocking: call it off the async runtime).
    pub fn summary(&self, q: &Query) -> Result<serde_json::Value, AnalyticsError> {
        self.flush();
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        query::summary(&conn, q).map_err(|e| match e {
            QueryError::Sqlite(source) => AnalyticsError::Sqlite {
                path: self.path.clone(),
                source,
            },
            other => AnalyticsError::Query(other),
        })
    }
}
