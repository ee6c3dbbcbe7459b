//! The `replicatoor` command line built with the `simulated` and `failpoints` features, for the
//! suites (cargo gives integration tests the path of their own package's binaries only). Same code
//! as the shipped binary: both call `replicatoor::dispatch::main`.

fn main() -> std::process::ExitCode {
    replicatoor::dispatch::main()
}
