//! Owns reading the rollups back: the query (time range, filters by consumer, route and model,
//! grouping) parsed from the API's parameters, and the summary it answers: totals, a time
//! series (requests, errors, latency p50/p95/p99, tokens, cost) and the groups ranked by
//! tokens then cost, plus the filter values seen in the range.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::{BUCKETS, LATENCY_BOUNDS, Rollup, decode_buckets};

/// The most points a series has; longer ranges use wider steps.
const MAX_POINTS: i64 = 120;

/// A bad query parameter, named.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{param}: {message}")]
    Param {
        param: &'static str,
        message: String,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// What the groups are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    #[default]
    Consumer,
    Route,
    Model,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Route => "route",
            Self::Model => "model",
        }
    }
}

/// One analytics query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Length of the range, ending at `until`.
    pub since: Duration,
    /// End of the range (epoch seconds); now when unset.
    pub until: Option<i64>,
    pub consumer: Option<String>,
    pub route: Option<String>,
    pub model: Option<String>,
    pub by: By,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            since: Duration::from_secs(3600),
            until: None,
            consumer: None,
            route: None,
            model: None,
            by: By::Consumer,
        }
    }
}

/// `15m`, `1h`, `24h`, `7d`, `90s`: a positive number and a unit (s, m, h, d).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 15m, 1h, 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" | "" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("'{s}': unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err(format!("'{s}' must be longer than 0"));
    }
    Ok(Duration::from_secs(secs))
}

impl Query {
    /// From the API's query parameters: `since`, `until`, `consumer`, `route`, `model`, `by`.
    pub fn from_params(p: &HashMap<String, String>) -> Result<Self, QueryError> {
        let mut q = Query::default();
        let nonempty = |k: &str| p.get(k).filter(|v| !v.is_empty()).cloned();
        if let Some(s) = nonempty("since") {
            q.since = parse_duration(&s).map_err(|message| QueryError::Param {
                param: "since",
                message,
            })?;
        }
        if let Some(u) = nonempty("until") {
            q.until = Some(u.parse().map_err(|_| QueryError::Param {
                param: "until",
                message: format!("'{u}' is not a Unix time in seconds"),
            })?);
        }
        q.consumer = p.get("consumer").cloned().filter(|v| !v.is_empty());
        q.route = nonempty("route");
        q.model = nonempty("model");
        if let Some(b) = nonempty("by") {
            q.by = match b.as_str() {
                "consumer" => By::Consumer,
                "route" => By::Route,
                "model" => By::Model,
                other => {
                    return Err(QueryError::Param {
                        param: "by",
                        message: format!("'{other}' is not one of consumer, route, model"),
                    });
                }
            };
        }
        Ok(q)
    }
}

/// The latency below which `q` of the observations fall, interpolated in its bucket.
fn percentile(b: &[i64; BUCKETS], q: f64) -> Option<f64> {
    let total: i64 = b.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0.0;
    for (i, n) in b.iter().enumerate() {
        let n = *n as f64;
        if n > 0.0 && seen + n >= rank {
            let lo = if i == 0 { 0.0 } else { LATENCY_BOUNDS[i - 1] };
            let hi = LATENCY_BOUNDS.get(i).copied().unwrap_or(lo * 2.0);
            let frac = ((rank - seen) / n).clamp(0.0, 1.0);
            return Some(((lo + (hi - lo) * frac) * 10.0).round() / 10.0);
        }
        seen += n;
    }
    Some(LATENCY_BOUNDS[LATENCY_BOUNDS.len() - 1])
}

fn figures(r: &Rollup) -> Value {
    let total_tokens = r.prompt_tokens + r.completion_tokens;
    json!({
        "requests": r.requests,
        "errors": r.errors,
        "error_rate": if r.requests > 0 { r.errors as f64 / r.requests as f64 } else { 0.0 },
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": total_tokens,
        "cost": r.cost,
        "latency_ms": {
            "avg": if r.requests > 0 { Some(r.latency_ms_sum as f64 / r.requests as f64) } else { None },
            "p50": percentile(&r.buckets, 0.50),
            "p95": percentile(&r.buckets, 0.95),
            "p99": percentile(&r.buckets, 0.99),
        },
    })
}

/// Answers `q` from the rollups.
pub fn summary(conn: &Connection, q: &Query) -> Result<Value, QueryError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let until = q.until.unwrap_or(now);
    let from = until - q.since.as_secs() as i64;
    let (first, last) = (from.div_euclid(60) + 1, until.div_euclid(60));
    let span = (last - first + 1).max(1);
    let step = ((span + MAX_POINTS - 1) / MAX_POINTS).max(1);
    let points = ((span + step - 1) / step) as usize;

    let mut stmt = conn.prepare(
        "SELECT minute, consumer, route, model, requests, errors, prompt_tokens,
                completion_tokens, cost, latency_ms_sum, latency_buckets
         FROM rollups WHERE minute BETWEEN ?1 AND ?2",
    )?;
    let rows = stmt.query_map(params![first, last], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            Rollup {
                requests: r.get(4)?,
                errors: r.get(5)?,
                prompt_tokens: r.get(6)?,
                completion_tokens: r.get(7)?,
                cost: r.get(8)?,
                latency_ms_sum: r.get(9)?,
                buckets: decode_buckets(&r.get::<_, String>(10)?),
            },
        ))
    })?;
    let mut totals = Rollup::default();
    let mut series = vec![Rollup::default(); points];
    let mut groups: BTreeMap<String, Rollup> = BTreeMap::new();
    let (mut consumers, mut routes, mut models) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for row in rows {
        let (minute, consumer, route, model, r) = row?;
        consumers.insert(consumer.clone());
        routes.insert(route.clone());
        if !model.is_empty() {
            models.insert(model.clone());
        }
        let keep = q.consumer.as_ref().is_none_or(|c| *c == consumer)
            && q.route.as_ref().is_none_or(|c| *c == route)
            && q.model.as_ref().is_none_or(|c| *c == model);
        if !keep {
            continue;
        }
        totals.add(&r);
        let i = ((minute - first) / step) as usize;
        if let Some(slot) = series.get_mut(i) {
            slot.add(&r);
        }
        let name = match q.by {
            By::Consumer => consumer,
            By::Route => route,
            By::Model => model,
        };
        groups.entry(name).or_default().add(&r);
    }
    let mut ranked: Vec<(String, Rollup)> = groups.into_iter().collect();
    ranked.sort_by(|a, b| {
        let tokens = |r: &Rollup| r.prompt_tokens + r.completion_tokens;
        tokens(&b.1)
            .cmp(&tokens(&a.1))
            .then(b.1.cost.total_cmp(&a.1.cost))
            .then(b.1.requests.cmp(&a.1.requests))
            .then(a.0.cmp(&b.0))
    });
    let col = |f: &dyn Fn(&Rollup) -> Value| series.iter().map(f).collect::<Vec<_>>();
    Ok(json!({
        "from": from,
        "until": until,
        "step_seconds": step * 60,
        "filters": {"consumer": q.consumer, "route": q.route, "model": q.model},
        "totals": figures(&totals),
        "series": {
            "t": (0..points).map(|i| (first + i as i64 * step) * 60).collect::<Vec<_>>(),
            "requests": col(&|r| r.requests.into()),
            "errors": col(&|r| r.errors.into()),
            "error_rate": col(&|r| if r.requests > 0 { json!(r.errors as f64 / r.requests as f64) } else { Value::Null }),
            "p50": col(&|r| json!(percentile(&r.buckets, 0.50))),
            "p95": col(&|r| json!(percentile(&r.buckets, 0.95))),
            "p99": col(&|r| json!(percentile(&r.buckets, 0.99))),
            "tokens": col(&|r| (r.prompt_tokens + r.completion_tokens).into()),
            "cost": col(&|r| r.cost.into()),
        },
        "by": q.by.as_str(),
        "groups": ranked.iter().map(|(name, r)| {
            let mut v = figures(r);
            v["name"] = name.clone().into();
            v
        }).collect::<Vec<_>>(),
        "values": {"consumers": consumers, "routes": routes, "models": models},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("1w").unwrap_err().contains("unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn percentiles_interpolate_within_the_bucket() {
        let mut b = [0; BUCKETS];
        // 100 observations in (50, 100] ms.
        b[6] = 100;
        assert_eq!(percentile(&b, 0.5), Some(75.0));
        assert_eq!(percentile(&b, 0.99), Some(99.5));
        assert_eq!(percentile(&[0; BUCKETS], 0.5), None);
    }
}
