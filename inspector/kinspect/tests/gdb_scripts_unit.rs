//! The gdb-free half of the gdb scripts (`gdb-scripts/kinspectlib/`: Sv39
//! walks, PTE decoding, the per-process kernel page-table detection,
//! argument parsing) under Python's own unittest, run by the suite.

use std::process::Command;

#[test]
fn kinspectlib_unit_tests_pass() {
    let dir = kinspect_testkit::root().join("gdb-scripts");
    let out = Command::new("python3")
        .current_dir(&dir)
        .args(["-m", "unittest", "discover", "-v", "-s", "tests", "-t", "."])
        // Byte-compiled files would land in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python3 (cargo xtask test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 -m unittest in {} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        dir.display(),
        out.status
    );
    // unittest reports on stderr: `Ran N tests` then `OK`.
    assert!(
        stderr.contains("\nOK"),
        "unittest did not say OK:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
