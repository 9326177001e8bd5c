//! Generates the table of the web UI's files that bitweend serves
//! (`src/api/http.rs`): every file under `ui/`, built into the binary with
//! its content type, so a new file needs no list kept by hand. Cargo runs
//! this again whenever anything under `ui/` changes. The table names each
//! file relative to `CARGO_MANIFEST_DIR`, not by this checkout's absolute
//! path: a build folder shared by two clones (CI's cached one) never
//! includes the other clone's files.

use std::path::{Path, PathBuf};
use std::{env, fs};

/// The content type of each kind of file the UI holds. A file of another
/// kind stops the build with a message: give it a type here first.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    // (ES modules load only with a JavaScript type.)
    ("js", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("ico", "image/x-icon"),
    ("json", "application/json"),
    ("woff2", "font/woff2"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=ui");
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ui = root.join("ui");
    let mut files = Vec::new();
    collect(&ui, &ui, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for (url, content_type) in files {
        table += &format!(
            "    ({url:?}, {content_type:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/ui{url}\"))),\n"
        );
    }
    table += "]\n";
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    fs::write(out.join("ui_files.rs"), table).expect("writing the UI's file table");
}

/// (URL path, content type) of every file under `dir`.
fn collect(ui: &Path, dir: &Path, out: &mut Vec<(String, &'static str)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("reading ui/").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        // Editors' backup and swap files are not the UI.
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        if path.is_dir() {
            collect(ui, &path, out);
            continue;
        }
        let rel = path.strip_prefix(ui).expect("under ui/");
        let rel = rel.to_str().expect("UI file names are UTF-8");
        // The folder's notes for developers are not part of the page.
        if rel.ends_with(".md") {
            continue;
        }
        let ext = path.extension().unwrap_or_default().to_string_lossy();
        let Some((_, content_type)) = TYPES.iter().find(|(e, _)| *e == ext) else {
            panic!("ui/{rel}: no content type for this kind of file; add one to TYPES in build.rs");
        };
        out.push((format!("/{rel}"), content_type));
    }
}
