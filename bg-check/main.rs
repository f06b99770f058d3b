fn main() {
    std::process::exit(bg_check::uumain(std::env::args_os()))
}
