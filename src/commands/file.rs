//! Owns the `gantry file` tools' command glue: read the input, call `file_tools`, write the
//! output.

use std::io::Write as _;

use crate::cli::{
    FileAddTagsArgs, FileIo, FileLintArgs, FileListTagsArgs, FileMergeArgs, FileOpenapiArgs,
    FilePatchArgs, FileRemoveTagsArgs, Format, LintFormat, LintSeverity, TagListFormat,
};
use crate::exit::ExitStatus;
use crate::file_tools::document::{self, OutputFormat};
use crate::file_tools::lint::Severity;
use crate::file_tools::{lint, merge, openapi, patch, tags};

fn format(f: Format) -> OutputFormat {
    match f {
        Format::Yaml => OutputFormat::Yaml,
        Format::Json => OutputFormat::Json,
    }
}

fn write(io: &FileIo, doc: &serde_json::Value) -> anyhow::Result<ExitStatus> {
    document::write(&io.output, doc, format(io.format))?;
    Ok(ExitStatus::Success)
}

pub fn merge(args: FileMergeArgs) -> anyhow::Result<ExitStatus> {
    let merged = merge::merge_files(&args.files)?;
    document::write(&args.output, &merged, format(args.format))?;
    Ok(ExitStatus::Success)
}

pub fn patch(args: FilePatchArgs) -> anyhow::Result<ExitStatus> {
    let flags = patch::Patch::from_flags(&args.selectors, &args.values)?;
    let mut files = Vec::new();
    for f in &args.patch_files {
        files.push((f, patch::read_patch_file(f)?));
    }
    let mut doc = document::read(&args.io.state)?;
    flags.apply(&mut doc)?;
    for (name, patches) in files {
        for (i, p) in patches.iter().enumerate() {
            p.apply(&mut doc).map_err(|e| {
                anyhow::anyhow!(
                    "failed to apply patch-file '{name}'; failed to apply patch {i}; {e}"
                )
            })?;
        }
    }
    write(&args.io, &doc)
}

pub fn add_tags(args: FileAddTagsArgs) -> anyhow::Result<ExitStatus> {
    let mut doc = document::read(&args.io.state)?;
    tags::add_tags(&mut doc, &args.selectors, &args.tags)?;
    write(&args.io, &doc)
}

pub fn remove_tags(args: FileRemoveTagsArgs) -> anyhow::Result<ExitStatus> {
    let removal = if args.keep_only {
        tags::Removal::AllBut
    } else {
        tags::Removal::Listed
    };
    if removal == tags::Removal::Listed && args.tags.is_empty() {
        anyhow::bail!(tags::TagError::NothingToRemove);
    }
    let mut doc = document::read(&args.io.state)?;
    tags::remove_tags(
        &mut doc,
        &args.selectors,
        &args.tags,
        removal,
        args.keep_empty_array,
    )?;
    write(&args.io, &doc)
}

pub fn list_tags(args: FileListTagsArgs) -> anyhow::Result<ExitStatus> {
    let doc = document::read(&args.state)?;
    let list = tags::list_tags(&doc, &args.selectors)?;
    let text = match args.format {
        TagListFormat::Plain => list.iter().map(|t| format!("{t}\n")).collect(),
        TagListFormat::Json => format!("{}\n", serde_json::to_string_pretty(&list)?),
        TagListFormat::Yaml => serde_yaml::to_string(&list)?,
    };
    if args.output == "-" {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    } else {
        std::fs::write(&args.output, text)?;
    }
    Ok(ExitStatus::Success)
}

pub fn lint(args: FileLintArgs) -> anyhow::Result<ExitStatus> {
    if let Some(ruleset) = &args.ruleset {
        anyhow::bail!(
            "custom lint rulesets are not supported ('{ruleset}'): gantry file lint runs its built-in rules (plaintext-secret, route-without-auth, duplicate-model-alias); run it as `gantry file lint -s FILE`"
        );
    }
    let text = if args.state == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&args.state)
            .map_err(|e| anyhow::anyhow!("failed to read input file '{}'; {e}", args.state))?
    };
    let fail_at = match args.fail_severity {
        LintSeverity::Error => Severity::Error,
        LintSeverity::Warn => Severity::Warn,
        LintSeverity::Info => Severity::Info,
        LintSeverity::Hint => Severity::Hint,
    };
    let all = lint::lint(&args.state, &text)?;
    let failures = all.iter().filter(|f| f.severity >= fail_at).count();
    let shown: Vec<&lint::Finding> = all
        .iter()
        .filter(|f| !args.display_only_failures || f.severity >= fail_at)
        .collect();
    let report = serde_json::json!({
        "total_count": shown.len(),
        "fail_count": failures,
        "results": shown,
    });
    let text = match args.format {
        LintFormat::Plain => {
            let mut s = String::new();
            for f in &shown {
                s.push_str(&format!(
                    "{}:{}:{}: {} {}: {}: {}\n",
                    f.file,
                    f.line,
                    f.column,
                    f.severity.as_str(),
                    f.rule,
                    f.path,
                    f.message
                ));
            }
            s.push_str(&format!(
                "{} finding{}, {failures} at or above '{}'\n",
                shown.len(),
                if shown.len() == 1 { "" } else { "s" },
                fail_at.as_str()
            ));
            s
        }
        LintFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        LintFormat::Yaml => serde_yaml::to_string(&report)?,
    };
    if args.output == "-" {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    } else {
        std::fs::write(&args.output, text)?;
    }
    Ok(if failures > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

pub fn openapi2kong(args: FileOpenapiArgs) -> anyhow::Result<ExitStatus> {
    let spec = document::read(&args.spec)?;
    let opts = openapi::Options {
        tags: (!args.select_tags.is_empty()).then(|| args.select_tags.clone()),
        namespace: args.uuid_base.unwrap_or(uuid::Uuid::NAMESPACE_DNS),
        skip_id: args.no_id,
        skip_route_by_header: args.skip_route_by_header,
    };
    let out = openapi::convert(&spec, &opts).map_err(|e| anyhow::anyhow!("{}: {e}", args.spec))?;
    document::write(&args.output, &out, format(args.format))?;
    Ok(ExitStatus::Success)
}
