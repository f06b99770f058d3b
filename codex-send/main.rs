fn main() {
    std::process::exit(codex_send::cli_main(std::env::args_os()))
}
