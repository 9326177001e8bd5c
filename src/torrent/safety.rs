//! Checks on a contact's torrent metadata before anything is written: every
//! file must land inside the download folder.
//!
//! librqbit already refuses `..` components and separators inside a
//! component; we also refuse what would be dangerous elsewhere (NUL and
//! other control characters, bidirectional overrides that make a name read
//! backwards, drive letters, empty or `.` components, names longer than a
//! file system takes) and symlink entries, and more files than a share
//! could sensibly hold; each error says which name was refused.

use librqbit::{ByteBufOwned, ValidatedTorrentMetaV1Info};

use super::storage::MAX_COMPONENT_BYTES;
use crate::shares::is_bidi_control;

/// The most files we download in one torrent.
pub const MAX_FILES: usize = 10_000;

/// Why one path component is unsafe, if it is.
pub fn unsafe_component(c: &str) -> Option<&'static str> {
    if c.is_empty() || c == "." {
        return Some("an empty or `.` path component");
    }
    if c == ".." {
        return Some("a `..` component that would leave the download folder");
    }
    if c.contains(['/', '\\']) {
        return Some("a path separator inside a name");
    }
    if c.chars().any(char::is_control) {
        return Some("a NUL or other control character");
    }
    if c.chars().any(is_bidi_control) {
        return Some("a bidirectional override character (it disguises the name)");
    }
    if c.len() > MAX_COMPONENT_BYTES {
        return Some("a name longer than 255 bytes");
    }
    let b = c.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Some("a drive letter");
    }
    None
}

/// Refuses metadata with any file name that could escape the download
/// folder; the error names the file and the reason.
pub fn check_file_names(info: &ValidatedTorrentMetaV1Info<ByteBufOwned>) -> Result<(), String> {
    if let Some(name) = info.name() {
        if let Some(why) = unsafe_component(&name) {
            return Err(format!(
                "the torrent's name {name:?} contains {why}; nothing was written"
            ));
        }
    }
    let files = info.iter_file_details().count();
    if files > MAX_FILES {
        return Err(format!(
            "the torrent has {files} files; Bitween downloads at most {MAX_FILES} in one; nothing was written"
        ));
    }
    for file in info.iter_file_details() {
        let parts: Vec<String> = file
            .filename
            .iter_components()
            .map(|c| c.into_owned())
            .collect();
        for c in &parts {
            if let Some(why) = unsafe_component(c) {
                return Err(format!(
                    "the file name {:?} contains {why}; nothing was written",
                    parts.join("/")
                ));
            }
        }
        if file.attrs().symlink {
            return Err(format!(
                "{:?} is a symbolic link; nothing was written",
                parts.join("/")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_components_are_named() {
        let longest = "é".repeat(127) + "x";
        for ok in [
            "file.txt",
            "Ünïcode ☀.bin",
            "at 10:30.txt",
            ".hidden",
            "עברית.txt",
            &longest,
        ] {
            assert_eq!(unsafe_component(ok), None, "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "nul\0byte",
            "C:",
            "c:evil",
            "tab\there",
            "evil\u{202e}fdp.exe",
            "a\u{2066}b",
            &"x".repeat(256),
        ] {
            assert!(unsafe_component(bad).is_some(), "{bad:?}");
        }
    }
}
