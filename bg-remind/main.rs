fn main() {
    std::process::exit(bg_remind::cli_main(std::env::args_os()))
}
