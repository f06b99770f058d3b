fn main() {
    std::process::exit(bg_run::cli_main(std::env::args_os()))
}
