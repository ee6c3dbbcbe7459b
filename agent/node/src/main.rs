//! `replicatoor`: the agent binary. Everything lives in the library; see `dispatch`.

fn main() -> std::process::ExitCode {
    replicatoor::dispatch::main()
}
