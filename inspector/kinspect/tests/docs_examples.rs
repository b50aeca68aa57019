//! The examples in docs/ stay true.
//!
//! Every `$ kinspect ...` line inside a fenced block of a Markdown page
//! under docs/ (and README.md) is run against a gdb address where nothing
//! listens:
//!
//! - a command that needs no machine (`satp VALUE`, `--help`) must print
//!   exactly the output the page shows under it;
//! - a command that needs a machine must get as far as connecting (exit
//!   code 3, "cannot reach"), which proves its subcommand and flags still
//!   parse; a usage error (exit 2) means the page is stale.
//!
//! Long-running commands (`attach`, `launch`, `serve`, `watch`, `proxy`,
//! `trace`) and ones
//! naming files (`--snapshot`, `-o`, `diff`, `--batch`) are left to their
//! own tests.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Example {
    page: PathBuf,
    line: usize,
    args: Vec<String>,
    output: Vec<String>,
}

fn pages(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            pages(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

/// Split a shell line on blanks, honouring single and double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn examples() -> Vec<Example> {
    let root = kinspect_testkit::root();
    let mut files = vec![root.join("README.md")];
    pages(&root.join("docs"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for page in files {
        let text = std::fs::read_to_string(&page).expect("reading a docs page");
        let mut in_block = false;
        let mut current: Option<Example> = None;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                found.extend(current.take());
                continue;
            }
            if !in_block {
                continue;
            }
            if let Some(cmd) = line.strip_prefix("$ ") {
                found.extend(current.take());
                let w = words(cmd.split(" #").next().unwrap_or(cmd));
                if w.first().map(String::as_str) == Some("kinspect") {
                    current = Some(Example {
                        page: page.clone(),
                        line: i + 1,
                        args: w[1..].to_vec(),
                        output: Vec::new(),
                    });
                }
            } else if let Some(ex) = current.as_mut() {
                ex.output.push(line.to_string());
            }
        }
        found.extend(current.take());
    }
    found
}

fn skipped(args: &[String]) -> bool {
    const LONG_RUNNING: [&str; 6] = ["attach", "launch", "serve", "watch", "proxy", "trace"];
    args.iter().any(|a| {
        LONG_RUNNING.contains(&a.as_str())
            || a == "diff"
            || a == "--batch"
            || a == "--snapshot"
            || a.starts_with("--snapshot=")
            || a == "-o"
            || a == "--report"
            || a.contains('|')
            || a.contains('>')
    })
}

#[test]
fn every_kinspect_example_in_the_docs_still_holds() {
    let root = kinspect_testkit::root();
    let all = examples();
    assert!(
        all.len() >= 10,
        "found only {} kinspect examples in docs/; did the format change?",
        all.len()
    );
    let mut checked_exactly = 0;
    let mut failures = Vec::new();
    for ex in all.iter().filter(|e| !skipped(&e.args)) {
        // Nothing listens at 127.0.0.1:1: an example's own --gdb is
        // pointed there too (a QEMU may really listen at the one shown).
        let mut args = ex.args.clone();
        match args.iter().position(|a| a == "--gdb") {
            Some(i) if i + 1 < args.len() => args[i + 1] = "127.0.0.1:1".into(),
            _ => {
                args.insert(0, "127.0.0.1:1".into());
                args.insert(0, "--gdb".into());
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
            .current_dir(&root)
            .env("NO_COLOR", "1")
            .args(&args)
            .output()
            .expect("running kinspect");
        let code = out.status.code().unwrap_or(-1);
        let where_ = format!(
            "{}:{}: kinspect {}",
            ex.page.display(),
            ex.line,
            ex.args.join(" ")
        );
        let shows_error = ex.output.iter().any(|l| {
            l.starts_with("kinspect: ") || l.starts_with("error:") || l.starts_with("{\"error\"")
        });
        match code {
            0 => {
                let printed = String::from_utf8_lossy(&out.stdout);
                let printed: Vec<&str> = printed.lines().map(str::trim_end).collect();
                let shown: Vec<&str> = ex.output.iter().map(|l| l.trim_end()).collect();
                // A page may elide output with "..." or show none at all.
                if !shown.is_empty()
                    && !shown.iter().any(|l| l.trim() == "..." || l.contains("..."))
                {
                    checked_exactly += 1;
                    if printed != shown {
                        failures.push(format!(
                            "{where_}\n  the page shows:\n{}\n  kinspect prints:\n{}",
                            shown.join("\n"),
                            printed.join("\n")
                        ));
                    }
                }
            }
            3 => {}
            2 if shows_error => {}
            _ => failures.push(format!(
                "{where_}\n  exit code {code}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }
    eprintln!(
        "docs examples: {} found, {} run, {} compared exactly",
        all.len(),
        all.iter().filter(|e| !skipped(&e.args)).count(),
        checked_exactly
    );
    assert!(
        checked_exactly >= 1,
        "no offline example was compared; expected at least `kinspect satp VALUE`"
    );
    assert!(
        failures.is_empty(),
        "stale examples in docs/:\n\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn shell_words_split_like_sh() {
    assert_eq!(words("satp  0x1 --json"), ["satp", "0x1", "--json"]);
    assert_eq!(
        words("translate 'proc[3].kstack' --pid 3"),
        ["translate", "proc[3].kstack", "--pid", "3"]
    );
    assert_eq!(words(r#"a "b c" ''"#), ["a", "b c", ""]);
}
