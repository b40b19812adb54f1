fn main() {
    std::process::exit(agentgather::cli::main());
}
