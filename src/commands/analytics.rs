//! Owns `gantry analytics`: the analytics page's figures in the terminal (totals and the
//! groups ranked by tokens then cost), read from the admin API's `/analytics/api/summary`.

use anyhow::Context as _;
use serde_json::Value;

use crate::cli::{AnalyticsArgs, OutputFormat};
use crate::client::{AdminClient, ClientOptions};
use crate::exit::ExitStatus;

pub fn run(args: AnalyticsArgs) -> anyhow::Result<ExitStatus> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("since", &args.since);
    query.append_pair("by", args.by.as_str());
    for (k, v) in [
        ("consumer", &args.consumer),
        ("route", &args.route),
        ("model", &args.model),
    ] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    let path = format!("/analytics/api/summary?{}", query.finish());
    let client = AdminClient::new(&ClientOptions::from_args(&args.admin))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let summary = runtime.block_on(client.get(&path))?.context(
        "the admin API has no analytics (serve --analytics-retention, or not a gantry gateway)",
    )?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&summary)?),
        OutputFormat::Text => print!("{}", text(&summary, &args.since)),
    }
    Ok(ExitStatus::Success)
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or("-".to_owned(), |v| format!("{v:.1}"))
}

fn int(v: &Value) -> String {
    v.as_i64().unwrap_or(0).to_string()
}

fn cost(v: &Value) -> String {
    format!("{:.6}", v.as_f64().unwrap_or(0.0))
}

fn pct(v: &Value) -> String {
    format!("{:.1}%", v.as_f64().unwrap_or(0.0) * 100.0)
}

/// The summary as the terminal shows it.
fn text(s: &Value, since: &str) -> String {
    let t = &s["totals"];
    let l = &t["latency_ms"];
    let mut out = format!(
        "Last {since}: {} requests, error rate {}, latency p50 {} ms, p95 {} ms, p99 {} ms\n\
         Tokens: {} (prompt {}, completion {}), cost {}\n\n",
        int(&t["requests"]),
        pct(&t["error_rate"]),
        ms(&l["p50"]),
        ms(&l["p95"]),
        ms(&l["p99"]),
        int(&t["total_tokens"]),
        int(&t["prompt_tokens"]),
        int(&t["completion_tokens"]),
        cost(&t["cost"]),
    );
    let by = s["by"].as_str().unwrap_or("consumer").to_uppercase();
    let header = [
        by.as_str(),
        "REQUESTS",
        "ERRORS",
        "PROMPT",
        "COMPLETION",
        "TOTAL TOKENS",
        "COST",
        "P95 MS",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for g in s["groups"].as_array().into_iter().flatten() {
        let name = g["name"].as_str().unwrap_or_default();
        rows.push(vec![
            if name.is_empty() {
                "(none)".into()
            } else {
                name.to_owned()
            },
            int(&g["requests"]),
            pct(&g["error_rate"]),
            int(&g["prompt_tokens"]),
            int(&g["completion_tokens"]),
            int(&g["total_tokens"]),
            cost(&g["cost"]),
            ms(&g["latency_ms"]["p95"]),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (v, w))| {
                if i == 0 {
                    format!("{v:<w$}")
                } else {
                    format!("{v:>w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
