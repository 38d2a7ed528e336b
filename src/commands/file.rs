//! Owns the `gantry file` tools' command glue: read the input, call `file_tools`, write the
//! output.

use std::io::Write as _;

use crate::cli::{
    FileAddTagsArgs, FileIo, FileListTagsArgs, FileMergeArgs, FilePatchArgs, FileRemoveTagsArgs,
    Format, TagListFormat,
};
use crate::exit::ExitStatus;
use crate::file_tools::document::{self, OutputFormat};
use crate::file_tools::{merge, patch, tags};

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
