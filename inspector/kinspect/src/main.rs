//! The `kinspect` binary: everything is in [`kinspect::cli`].

fn main() {
    std::process::exit(kinspect::cli::main(std::env::args_os()));
}
