//! Progress bars for long client work, on stderr: indicatif hides them when stderr is not a
//! terminal, so scripts and logs see only the result lines.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` bytes of work, e.g. a payload streamed in chunks.
pub fn bytes(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:28} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    bar.set_message(message.to_string());
    bar
}
