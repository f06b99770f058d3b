fn main() {
    std::process::exit(bg_remind::uumain(std::env::args_os()))
}
