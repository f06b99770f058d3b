fn main() {
    std::process::exit(bg_kill::cli_main(std::env::args_os()))
}
