//! Owns the control-plane lifecycle commands (kongctl style): `get control-planes`,
//! `create control-plane`, `adopt control-plane` and `delete control-plane`, with the
//! namespace and protection rules of [`crate::namespace`].

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{Context, bail};
use embedded_gateway::model::{ControlPlane, NAMESPACE_LABEL};
use serde_json::json;

use crate::cli::{
    AdoptControlPlaneArgs, CpCommon, CreateControlPlaneArgs, DeleteControlPlaneArgs, OutputFormat,
};
use crate::client::{AdminClient, ClientOptions};
use crate::exit::ExitStatus;
use crate::namespace::{self, Access};
use crate::ui::Ui;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn client(common: &CpCommon) -> anyhow::Result<AdminClient> {
    Ok(AdminClient::new(&ClientOptions::from_args(&common.admin))?)
}

/// Finds a control plane by name, then by id.
async fn find(client: &AdminClient, name_or_id: &str) -> anyhow::Result<ControlPlane> {
    if let Some(cp) = client.control_plane_by_name(name_or_id).await? {
        return Ok(cp);
    }
    client
        .control_planes()
        .await?
        .into_iter()
        .find(|cp| cp.id == name_or_id)
        .with_context(|| format!("control plane `{name_or_id}` not found"))
}

fn summary(cp: &ControlPlane) -> serde_json::Value {
    json!({
        "id": cp.id,
        "name": cp.name,
        "labels": cp.labels,
        "namespace": cp.labels.get(NAMESPACE_LABEL),
        "revision": cp.revision,
    })
}

fn print(
    format: OutputFormat,
    value: &serde_json::Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => print!("{}", text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Yaml => print!(
            "{}",
            crate::config::load::value_to_yaml(value).map_err(anyhow::Error::msg)?
        ),
    }
    Ok(())
}

pub fn get(common: CpCommon) -> anyhow::Result<ExitStatus> {
    let client = client(&common)?;
    let cps = runtime()?.block_on(client.control_planes())?;
    let data: Vec<_> = cps.iter().map(summary).collect();
    print(common.output, &json!({ "data": data }), || {
        let mut rows = vec![["NAME", "ID", "NAMESPACE", "LABELS"].map(str::to_owned)];
        for cp in &cps {
            let labels: Vec<String> = cp.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            rows.push([
                cp.name.clone(),
                cp.id.clone(),
                cp.labels
                    .get(NAMESPACE_LABEL)
                    .cloned()
                    .unwrap_or_else(|| "-".into()),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels.join(",")
                },
            ]);
        }
        table(&rows)
    })?;
    Ok(ExitStatus::Success)
}

fn table(rows: &[[String; 4]]) -> String {
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_owned() + "\n"
        })
        .collect()
}

fn parse_labels(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    raw.iter()
        .map(|l| {
            l.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("invalid --label `{l}`: expected KEY=VALUE"))
        })
        .collect()
}

pub fn create(args: CreateControlPlaneArgs) -> anyhow::Result<ExitStatus> {
    let labels = parse_labels(&args.labels)?;
    if let Some(ns) = labels.get(NAMESPACE_LABEL)
        && !namespace::valid_namespace(ns)
    {
        return Err(namespace::Refusal::InvalidNamespace(ns.clone()).into());
    }
    let client = client(&args.common)?;
    let cp = runtime()?.block_on(async {
        if client.control_plane_by_name(&args.name).await?.is_some() {
            bail!("control plane `{}` already exists", args.name);
        }
        Ok(client.create_control_plane(&args.name, &labels).await?)
    })?;
    print(args.common.output, &summary(&cp), || {
        format!("Created control plane \"{}\" ({})\n", cp.name, cp.id)
    })?;
    Ok(ExitStatus::Success)
}

pub fn adopt(args: AdoptControlPlaneArgs) -> anyhow::Result<ExitStatus> {
    let ns = &args.namespace;
    if !namespace::valid_namespace(ns) {
        return Err(namespace::Refusal::InvalidNamespace(ns.clone()).into());
    }
    let client = client(&args.common)?;
    let (cp, changed) = runtime()?.block_on(async {
        let cp = find(&client, &args.control_plane).await?;
        match cp.labels.get(NAMESPACE_LABEL) {
            Some(owner) if owner == ns => return anyhow::Ok((cp, false)),
            Some(owner) if !args.overwrite_namespace => bail!(
                "control plane `{}` already belongs to namespace `{owner}`\n\nhint: pass `--overwrite-namespace` to move it to `{ns}`",
                cp.name
            ),
            _ => {}
        }
        let labels = BTreeMap::from([(NAMESPACE_LABEL.to_owned(), Some(ns.clone()))]);
        Ok((client.patch_control_plane_labels(&cp.id, &labels).await?, true))
    })?;
    let value =
        json!({"resource_type": "control_plane", "id": cp.id, "name": cp.name, "namespace": ns});
    print(args.common.output, &value, || {
        if changed {
            format!(
                "Adopted control plane \"{}\" ({}) into namespace \"{ns}\"\n",
                cp.name, cp.id
            )
        } else {
            format!(
                "Control plane \"{}\" ({}) is already in namespace \"{ns}\"\n",
                cp.name, cp.id
            )
        }
    })?;
    Ok(ExitStatus::Success)
}

pub fn delete(args: DeleteControlPlaneArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    if !args.yes && !ui.stdin_is_tty {
        bail!(
            "refusing to delete without confirmation: stdin is not a terminal\n\nhint: pass `--yes`"
        );
    }
    let client = client(&args.common)?;
    let cp = runtime()?.block_on(async {
        let cp = find(&client, &args.control_plane).await?;
        namespace::check(
            &cp.name,
            &cp.labels,
            args.namespace.as_deref(),
            Access::Delete,
        )?;
        if !args.yes && !confirm(&cp.name)? {
            bail!("delete cancelled; nothing was deleted");
        }
        client.delete_control_plane(&cp.id).await?;
        anyhow::Ok(cp)
    })?;
    let value =
        json!({"resource_type": "control_plane", "id": cp.id, "name": cp.name, "deleted": true});
    print(args.common.output, &value, || {
        format!(
            "Deleted control plane \"{}\" ({}) and all its entities\n",
            cp.name, cp.id
        )
    })?;
    Ok(ExitStatus::Success)
}

fn confirm(name: &str) -> anyhow::Result<bool> {
    eprint!("This deletes control plane `{name}` and all its entities. Type 'yes' to continue: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}
