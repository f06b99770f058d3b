fn main() {
    std::process::exit(bg_kill::uumain(std::env::args_os()))
}
