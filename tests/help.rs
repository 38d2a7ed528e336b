//! `--help` never prints a secret from the environment: every command's help names the
//! variables its flags read, never their values.

use crate::util::Workspace;

const CANARY: &str = "canary-9d1e-secret";

/// The subcommand names listed under `Commands:` in a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// Every command path, depth first: `[]`, `["diff"]`, `["gateway", "diff"]`, …
fn every_command(ws: &Workspace) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = ws.run(&args);
        run.assert_ok();
        for sub in subcommands(&run.stdout) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        out.push(path);
    }
    out
}

#[test]
fn help_names_secret_variables_but_never_prints_their_values() {
    let ws = Workspace::new()
        .env("DECK_KONG_ADMIN_TOKEN", CANARY)
        .env("GANTRY_ADMIN_TOKEN", CANARY)
        .env(
            "DECK_KONG_ADDR",
            &format!("http://user:{CANARY}@127.0.0.1:1"),
        );
    let commands = every_command(&ws);
    assert!(commands.len() > 20, "found only {commands:?}");
    let mut named = 0;
    for path in &commands {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = ws.run(&args);
        run.assert_ok();
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            !all.contains(CANARY),
            "`gantry {}` printed the canary:\n{all}",
            args.join(" ")
        );
        // Help wraps lines: compare with runs of whitespace folded to one space.
        let flat = all.split_whitespace().collect::<Vec<_>>().join(" ");
        if flat.contains("[env: DECK_KONG_ADMIN_TOKEN]") {
            named += 1;
        }
        if path == &["serve"] {
            assert!(flat.contains("[env: GANTRY_ADMIN_TOKEN]"), "{all}");
        }
    }
    // Every command that talks to the admin API still names the variable.
    assert!(
        named >= 15,
        "only {named} commands name DECK_KONG_ADMIN_TOKEN"
    );
}

#[test]
fn a_malformed_header_is_named_without_its_value() {
    let ws = Workspace::new();
    for (header, shown) in [
        (format!("Bearer {CANARY}"), "invalid header #1 of --headers"),
        (
            format!("X-Api-Key: {CANARY}\nmore"),
            "invalid header 'X-Api-Key'",
        ),
    ] {
        let run = ws.run(&[
            "ping",
            "--kong-addr",
            "http://127.0.0.1:9",
            "--headers",
            &header,
        ]);
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains(shown), "{}", run.stderr);
        assert!(!run.stderr.contains(CANARY), "{}", run.stderr);
    }
}
