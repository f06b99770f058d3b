fn main() {
    std::process::exit(codex_send::uumain(std::env::args_os()))
}
