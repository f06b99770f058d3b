//! `cargo xtask docs [--check]`: writes (or checks) the man pages and shell
//! completions under docs/.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["docs"] => false,
        ["docs", "--check"] => true,
        _ => {
            eprintln!("usage: cargo xtask docs [--check]");
            return ExitCode::from(2);
        }
    };
    match docs(check) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::from(2)
        }
    }
}

/// Writes every generated file, or counts (and names) the stale ones.
fn docs(check: bool) -> std::io::Result<usize> {
    let root = xtask::root();
    let mut stale = 0;
    for (path, contents) in xtask::render_all()? {
        let full = root.join(&path);
        if std::fs::read(&full).ok().as_deref() == Some(&contents[..]) {
            continue;
        }
        if check {
            eprintln!("xtask: {} is stale: run `cargo xtask docs`", path.display());
            stale += 1;
            continue;
        }
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&full, contents)?;
        println!("wrote {}", path.display());
    }
    Ok(stale)
}
