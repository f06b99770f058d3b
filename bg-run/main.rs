fn main() {
    std::process::exit(bg_run::uumain(std::env::args_os()))
}
