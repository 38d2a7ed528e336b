//! `gantry completion`, `gantry man` and `gantry version`, through the real binary.

use std::process::Command;

use crate::util::Workspace;

#[test]
fn bash_completion_loads_and_completes_subcommands() {
    let out = Workspace::new().run(&["completion", "bash"]);
    out.assert_ok();
    let ws = Workspace::new();
    let script = ws.write("gantry.bash", &out.stdout);
    // Source the script, then ask its function for the words after `gantry fi`.
    let probe = format!(
        "source {} && COMP_WORDS=(gantry fi) && COMP_CWORD=1 && COMP_LINE='gantry fi' && COMP_POINT=9 && _gantry gantry fi gantry && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let run = Command::new("bash")
        .arg("-c")
        .arg(&probe)
        .output()
        .expect("bash");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let words = String::from_utf8_lossy(&run.stdout);
    assert!(words.lines().any(|w| w == "file"), "completions: {words}");
}

#[test]
fn every_shell_has_a_completion_script() {
    for (shell, marker) in [
        ("zsh", "#compdef gantry"),
        ("fish", "complete -c gantry"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[gantry]"),
    ] {
        let out = Workspace::new().run(&["completion", shell]);
        out.assert_ok();
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
    }
    let bad = Workspace::new().run(&["completion", "tcsh"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("invalid value 'tcsh'"),
        "{}",
        bad.stderr
    );
}

/// `man` is needed to check the page renders; without it the test says so, and CI must have it.
fn man_available() -> bool {
    let found = Command::new("man").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`man` is missing on CI: .ci/run installs man-db"
        );
        eprintln!("SKIPPED: `man` is not installed (apt-get install -y man-db)");
    }
    found
}

#[test]
fn man_page_renders_with_man() {
    let out = Workspace::new().run(&["man"]);
    out.assert_ok();
    assert!(out.stdout.starts_with(".ie") || out.stdout.contains(".TH gantry 1"));
    if !man_available() {
        return;
    }
    let ws = Workspace::new();
    let page = ws.write("gantry.1", &out.stdout);
    let run = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&page)
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("NAME"), "{text}");
    assert!(text.contains("completion"), "{text}");
}

#[test]
fn man_dir_writes_one_page_per_subcommand() {
    let ws = Workspace::new();
    let dir = ws.write("man/.keep", "");
    let dir = dir.parent().unwrap();
    ws.run(&["man", "--dir", dir.to_str().unwrap()]).assert_ok();
    for page in [
        "gantry.1",
        "gantry-diff.1",
        "gantry-file.1",
        "gantry-completion.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
}

#[test]
fn version_prints_text_and_json() {
    let text = Workspace::new().run(&["version"]);
    text.assert_ok();
    assert_eq!(
        text.stdout,
        format!("gantry {}\n", env!("CARGO_PKG_VERSION"))
    );
    let json = Workspace::new().run(&["version", "--json"]);
    json.assert_ok();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(value["name"], "gantry");
    assert_eq!(value["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_completion_script_read_only_in_part_is_not_a_panic() {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} completion bash | head -1 >/dev/null; echo \"exit=${{PIPESTATUS[0]}}\"",
            env!("CARGO_BIN_EXE_gantry")
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("exit=0"), "{stdout} {stderr}");
}
