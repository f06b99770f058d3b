#![no_main]
//! Any bytes, split at any point: the reader must neither panic nor read
//! differently for the split.

use codex_parse::session::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut) * bytes.len() / 255;
    let mut split = Session::new(None);
    split.feed(&bytes[..at]);
    split.feed(&bytes[at..]);
    split.finish();
    let mut whole = Session::new(None);
    whole.feed(bytes);
    whole.finish();
    let (a, b) = (split.summary(), whole.summary());
    assert_eq!(serde_json_string(&a), serde_json_string(&b));
});

fn serde_json_string(summary: &codex_parse::model::Summary) -> String {
    format!("{:?}", summary.requests.iter().map(|r| (&r.id, r.status, &r.final_message)).collect::<Vec<_>>())
        + &summary.skipped_lines.to_string()
}
