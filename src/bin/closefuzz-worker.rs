//! The closefuzz worker on its own: serves cases on stdin/stdout (see
//! `closefuzz::exec::worker`). Sandboxed executors start this inside the sandbox.

fn main() {
    std::process::exit(closefuzz::exec::worker::main());
}
