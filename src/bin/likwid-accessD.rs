fn main() -> std::process::ExitCode {
    likwid_access::daemon_main()
}
