fn main() -> std::process::ExitCode {
    likwid_access::tool_main()
}
