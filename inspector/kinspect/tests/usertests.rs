//! The kernel boots to a shell from fs.img, survives `usertests -q`, and
//! its shell runs a pipeline whose answer the host computes independently.
//!
//! `benches/usertests.rs` times the same boot and `usertests -q`.

use std::time::Duration;

use kinspect_testkit::{root, Machine};

const PROMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Slow under TCG on a busy machine; xv6's own quick tests take a minute
/// or two on an idle one.
const USERTESTS_TIMEOUT: Duration = Duration::from_secs(900);

/// Boot and wait for the shell's first prompt.
fn boot_to_shell() -> Machine {
    let m = Machine::start();
    m.wait_for("init: starting sh", PROMPT_TIMEOUT);
    m.wait_for("$ ", PROMPT_TIMEOUT);
    m
}

/// Type `line` and wait for the next prompt; returns what was printed.
fn run(m: &mut Machine, line: &str, timeout: Duration) -> String {
    let mark = m.console_len();
    m.send(format!("{line}\n").as_bytes());
    // The command's output ends with the next prompt.
    m.wait_for_after(mark + line.len(), "\n$ ", timeout);
    let all = m.console();
    all[mark..].to_string()
}

fn assert_no_panic(m: &Machine) {
    let console = m.console();
    assert!(
        !console.contains("panic"),
        "the kernel panicked:\n{console}"
    );
}

#[test]
fn usertests_quick_pass() {
    let mut m = boot_to_shell();
    let out = run(&mut m, "usertests -q", USERTESTS_TIMEOUT);
    assert!(
        out.contains("ALL TESTS PASSED"),
        "usertests -q did not pass:\n{out}"
    );
    assert!(!out.contains("SOME TESTS FAILED"), "{out}");
    assert_no_panic(&m);
}

/// What `grep xv6 | wc` prints for `text`, computed the way xv6's grep
/// (newline-terminated lines containing the substring) and wc (bytes,
/// newlines, runs of non-blank) count.
fn grep_wc(text: &[u8], pattern: &[u8]) -> (usize, usize, usize) {
    let mut matched: Vec<u8> = Vec::new();
    let mut rest = text;
    while let Some(nl) = rest.iter().position(|&c| c == b'\n') {
        let line = &rest[..nl];
        if line.windows(pattern.len()).any(|w| w == pattern) {
            matched.extend_from_slice(&rest[..=nl]);
        }
        rest = &rest[nl + 1..];
    }
    let lines = matched.iter().filter(|&&c| c == b'\n').count();
    let words = matched
        .split(|c| b" \r\t\n\x0b".contains(c))
        .filter(|w| !w.is_empty())
        .count();
    (lines, words, matched.len())
}

#[test]
fn shell_pipeline_counts_match_the_host() {
    let readme = std::fs::read(root().join("README.md")).expect("README.md at the root");
    let (l, w, c) = grep_wc(&readme, b"xv6");
    assert!(
        l > 0,
        "the README never mentions xv6: the test would prove little"
    );
    let mut m = boot_to_shell();
    let out = run(&mut m, "cat README.md | grep xv6 | wc", PROMPT_TIMEOUT);
    let want = format!("{l} {w} {c} ");
    assert!(
        out.contains(&want),
        "expected wc to print {want:?}; the console showed:\n{out}"
    );
    // Redirection and a second pipeline through a file the shell made.
    let out = run(
        &mut m,
        "grep xv6 README.md > g.txt; wc < g.txt",
        PROMPT_TIMEOUT,
    );
    assert!(
        out.contains(&want),
        "expected {want:?} after redirection; got:\n{out}"
    );
    // xv6's habit: the disk has the README under xv6's name too.
    let out = run(&mut m, "cat README | grep xv6 | wc", PROMPT_TIMEOUT);
    assert!(
        out.contains(&want),
        "expected `cat README` to work as in xv6 ({want:?}); got:\n{out}"
    );
    assert_no_panic(&m);
}

#[test]
fn grep_helper_counts_like_xv6() {
    let (l, w, c) = grep_wc(b"a xv6 b\nno\n  xv6\nxv6 tail-without-newline", b"xv6");
    assert_eq!((l, w, c), (2, 4, 14));
}
