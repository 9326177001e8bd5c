//! Unit tests of rebuilding: which files keep their piece hashes, and that
//! a rebuild with known hashes makes the torrent a full build makes while
//! reading only the changed files.

use std::ops::ControlFlow;
use std::path::Path;

use super::*;

fn write(path: &Path, len: usize, seed: u8) {
    let data: Vec<u8> = (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31) ^ seed)
        .collect();
    std::fs::write(path, data).unwrap();
}

fn build(plan: Plan, read: &mut u64) -> create::Created {
    create::create_with(
        plan,
        "album",
        &mut |done| {
            *read = done;
            ControlFlow::Continue(())
        },
        2,
    )
    .unwrap()
}

#[test]
fn a_rebuild_reads_only_what_changed_and_equals_a_full_build() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("album");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    write(&root.join("a.bin"), 5 * 1024 * 1024 + 3, 1);
    write(&root.join("m.bin"), 4 * 1024 * 1024, 2);
    write(&root.join("sub/z.bin"), 3 * 1024 * 1024 + 11, 3);
    write(&root.join("empty"), 0, 4);
    let first = create::plan(&root).unwrap();
    let stamps = first.stamps();
    // Kept beside the torrent and read back as they were.
    let hash = InfoHash([1; 20]);
    save_manifest(dir.path(), &hash, &stamps);
    assert_eq!(load_manifest(dir.path(), &hash), Some(stamps.clone()));
    let mut read = 0;
    let old = build(first, &mut read);
    assert_eq!(read, 12 * 1024 * 1024 + 14);

    // A file added after the last one (which now gets padding: its last
    // piece is read again), one changed in place (new mtime).
    write(&root.join("sub/zz.bin"), 1024 * 1024 + 5, 5);
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&root.join("m.bin"), 4 * 1024 * 1024, 9);
    let mut plan = create::plan(&root).unwrap();
    let kept = reuse_unchanged(&mut plan, &old.torrent, &stamps);
    assert_eq!(kept, 2, "a.bin and sub/z.bin keep their hashes");
    let to_read = plan.to_read();
    let rebuilt = build(plan, &mut read);
    assert_eq!(
        to_read,
        (4 * 1024 * 1024) + (1024 * 1024 + 5) + (1024 * 1024 + 11),
        "m.bin, zz.bin and z.bin's last piece"
    );
    assert_eq!(read, to_read);
    let mut full_read = 0;
    let full = build(create::plan(&root).unwrap(), &mut full_read);
    assert_eq!(rebuilt.info_hash, full.info_hash);
    assert_eq!(rebuilt.torrent, full.torrent);
    assert_eq!(rebuilt.size, full.size);
    assert_ne!(rebuilt.info_hash, old.info_hash);

    // Nothing changed: nothing is read, the same torrent.
    let stamps = create::plan(&root).unwrap().stamps();
    let mut plan = create::plan(&root).unwrap();
    reuse_unchanged(&mut plan, &full.torrent, &stamps);
    assert_eq!(plan.to_read(), 0);
    let again = build(plan, &mut read);
    assert_eq!(again.info_hash, full.info_hash);

    // A file removed: the others keep their hashes, the torrent is a full
    // build's.
    std::fs::remove_file(root.join("sub/zz.bin")).unwrap();
    let mut plan = create::plan(&root).unwrap();
    reuse_unchanged(&mut plan, &full.torrent, &stamps);
    assert_eq!(
        plan.to_read(),
        1024 * 1024 + 11,
        "z.bin's last piece, unpadded now"
    );
    let smaller = build(plan, &mut read);
    let fresh = build(create::plan(&root).unwrap(), &mut full_read);
    assert_eq!(smaller.info_hash, fresh.info_hash);
}

#[test]
fn a_torrent_whose_files_share_pieces_keeps_only_whole_ones() {
    // A folder torrent without padding (librqbit's, as before padding).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("old");
    std::fs::create_dir_all(&root).unwrap();
    write(&root.join("a"), 3 * 1024 * 1024, 1);
    write(&root.join("b"), 1024, 2);
    let mut info = Vec::new();
    info.extend_from_slice(b"d5:filesld6:lengthi3145728e4:pathl1:aeed6:lengthi1024e4:pathl1:beee4:name3:old12:piece lengthi2097152e6:pieces40:");
    info.extend_from_slice(&[7u8; 40]);
    info.push(b'e');
    let mut torrent = b"d4:info".to_vec();
    torrent.extend_from_slice(&info);
    torrent.push(b'e');
    let known = hashes_by_file(&torrent).unwrap();
    assert_eq!(known[&vec!["a".to_string()]].2, Tail::Shared);
    assert!(
        !known.contains_key(&vec!["b".to_string()]),
        "b starts inside a piece"
    );
}
