//! The closefuzz worker on its own: serves cases on stdin/stdout (see
//! `closefuzz::exec::worker`). Sandboxed executors start this inside the sandbox.

fn main() {
    if closefuzz::exec::uml::is_guest() {
        closefuzz::exec::signals::block_sigpipe_in_this_thread();
        closefuzz::exec::uml::guest_main();
    }
    std::process::exit(closefuzz::exec::worker::main());
}
