//! Embeds every released schema version (`avro/history/<event>/v<N>.avsc`) in the crate, so the
//! codec knows each earlier writer schema by its fingerprint without reading files at run time.
//! Adding a version is adding a file: this script lists the directory, the codec and the
//! compatibility check take whatever it lists.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Relative paths only (a build script runs in the package's directory, and the generated
    // code names files through CARGO_MANIFEST_DIR as the crate compiles): CI shares one target
    // directory across clones, and a path baked in from one clone would send the next build to
    // files that may be gone.
    let root = Path::new("avro").join("history");
    // A directory: cargo reruns this script when anything under it changes.
    println!("cargo::rerun-if-changed={}", root.display());
    let mut versions = Vec::new();
    for event in read_dir(&root) {
        if !event.is_dir() {
            continue;
        }
        let name = file_name(&event);
        for file in read_dir(&event) {
            let file_name = file_name(&file);
            let number = file_name
                .strip_prefix('v')
                .and_then(|rest| rest.strip_suffix(".avsc"))
                .and_then(|n| n.parse::<u32>().ok());
            // Anything else is left for the check to name: it fails on files it cannot place.
            if let Some(number) = number {
                versions.push((name.clone(), number, file));
            } else {
                versions.push((name.clone(), 0, file));
            }
        }
    }
    versions.sort();
    let mut out = String::from(
        "/// Every file under `avro/history/`: (event's schema file stem, version, path inside \
         `avro/history/`, text). Version 0 marks a file not named `v<N>.avsc`.\n\
         pub(crate) const FILES: &[(&str, u32, &str, &str)] = &[\n",
    );
    for (name, number, path) in &versions {
        let relative = path.strip_prefix(&root).expect("listed under the root");
        writeln!(
            out,
            "    ({name:?}, {number}, {relative:?}, \
             include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/avro/history/\", {relative:?}))),",
            relative = relative.display().to_string(),
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("history.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

fn read_dir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .collect();
    entries.sort();
    entries
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("{} is not a UTF-8 name", path.display()))
        .to_string()
}
