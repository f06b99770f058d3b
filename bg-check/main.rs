fn main() {
    std::process::exit(bg_check::cli_main(std::env::args_os()))
}
