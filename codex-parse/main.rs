fn main() {
    std::process::exit(codex_parse::uumain(std::env::args_os()))
}
