//! The `loadtest` binary. Everything lives in the library; see `lib.rs` for the map
//! and `loadtest --help` for the flags.

fn main() -> std::process::ExitCode {
    switchboard_loadtest::main()
}
