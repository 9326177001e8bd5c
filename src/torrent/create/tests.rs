//! Unit tests of torrent building: the plan of a file or folder, the
//! metainfo and piece hashes librqbit reads back, the refusals.

use super::*;

fn write(path: &Path, len: usize, seed: u8) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    std::fs::write(path, data).unwrap();
}

fn parsed(c: &Created) -> librqbit::TorrentMetaV1Borrowed<'_> {
    librqbit::torrent_from_bytes(&c.torrent).expect("librqbit reads our torrent")
}

#[test]
fn one_hash_per_piece_even_at_an_exact_multiple() {
    let dir = tempfile::tempdir().unwrap();
    for (len, pieces) in [(4 * 1024 * 1024, 2), (4 * 1024 * 1024 + 1, 3), (5, 1)] {
        let file = dir.path().join(format!("f{len}"));
        write(&file, len, 7);
        let c = create(
            plan(&file).unwrap(),
            "f",
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert_eq!(c.size, len as u64);
        let meta = parsed(&c);
        assert_eq!(meta.info_hash.0, c.info_hash.0);
        assert_eq!(meta.info.data.pieces.as_ref().len(), pieces * 20);
        assert_eq!(meta.info.data.length, Some(len as u64));
        assert_eq!(c.output_folder, dir.path());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_info_hash_as_librqbit_where_librqbit_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    write(&file, 3 * 1024 * 1024 + 5, 1);
    let folder = dir.path().join("only");
    std::fs::create_dir(&folder).unwrap();
    write(&folder.join("inner.bin"), 1024 * 1024 + 3, 2);
    for (path, name) in [(file, "a.bin"), (folder, "only")] {
        let ours = create(plan(&path).unwrap(), name, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        let theirs = librqbit::create_torrent(
            &path,
            librqbit::CreateTorrentOptions {
                name: Some(name),
                ..Default::default()
            },
            &librqbit::spawn_utils::BlockingSpawner::new(1),
        )
        .await
        .unwrap();
        assert_eq!(ours.info_hash.0, theirs.info_hash().0, "{name}");
    }
}

#[test]
fn a_folder_in_path_order_without_links_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("album");
    std::fs::create_dir_all(root.join("b/c")).unwrap();
    write(&root.join("z.txt"), 10, 1);
    write(&root.join("b/c/deep.bin"), 3 * 1024 * 1024, 2);
    write(&root.join("b/a.txt"), 0, 3);
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
    #[cfg(windows)]
    {
        std::fs::write(dir.path().join("outside.txt"), b"not shared").unwrap();
        std::os::windows::fs::symlink_file(dir.path().join("outside.txt"), root.join("link"))
            .unwrap();
    }
    let mut seen = Vec::new();
    let listed = plan(&root).unwrap();
    assert_eq!(listed.size, 3 * 1024 * 1024 + 10, "links are not counted");
    let c = create(listed, "album", &mut |n| {
        seen.push(n);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(c.size, 3 * 1024 * 1024 + 10);
    assert_eq!(seen.last(), Some(&c.size));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let meta = parsed(&c);
    let files: Vec<(String, u64)> = meta
        .info
        .data
        .files
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| {
            let parts: Vec<String> = f
                .path
                .iter()
                .map(|p| String::from_utf8(p.as_ref().to_vec()).unwrap())
                .collect();
            (parts.join("/"), f.length)
        })
        .collect();
    // Every file starts on a piece boundary: deep.bin (1.5 pieces) is
    // followed by half a piece of padding (BEP 47).
    assert_eq!(
        files,
        [
            ("b/a.txt".to_string(), 0),
            ("b/c/deep.bin".to_string(), 3 * 1024 * 1024),
            (".pad/1048576".to_string(), 1024 * 1024),
            ("z.txt".to_string(), 10)
        ]
    );
    assert_eq!(parsed(&c).info.data.pieces.as_ref().len(), 3 * 20);
    assert_eq!(c.output_folder, root);
}

#[test]
fn every_thread_count_makes_the_same_torrent_and_files_hash_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    std::fs::create_dir(&root).unwrap();
    write(&root.join("a.jpg"), 5 * 1024 * 1024 + 17, 1);
    write(&root.join("b.jpg"), 3 * 1024 * 1024 + 5, 2);
    write(&root.join("c.jpg"), 2 * 1024 * 1024, 3);
    let made = |threads| {
        create_with(
            plan(&root).unwrap(),
            "photos",
            &mut |_| ControlFlow::Continue(()),
            threads,
        )
        .unwrap()
    };
    let one = made(1);
    for threads in [2, 3, 8] {
        assert_eq!(made(threads).torrent, one.torrent, "{threads} threads");
    }
    let pieces = |c: &Created| parsed(c).info.data.pieces.as_ref().to_vec();
    // a: 3 pieces, b: 2 pieces, c: 1 piece, each file on its own.
    assert_eq!(pieces(&one).len(), 6 * 20);
    write(&root.join("a.jpg"), 5 * 1024 * 1024 + 17, 9);
    let changed = made(2);
    let (before, after) = (pieces(&one), pieces(&changed));
    assert_ne!(before[..60], after[..60], "a.jpg's pieces changed");
    assert_eq!(before[60..], after[60..], "b.jpg's and c.jpg's did not");
}

#[test]
fn hashing_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    write(&file, 5 * 1024 * 1024, 4);
    let mut calls = 0;
    let e = create(plan(&file).unwrap(), "big.bin", &mut |_| {
        calls += 1;
        ControlFlow::Break(())
    })
    .unwrap_err();
    assert!(e.contains("was stopped"), "{e}");
    assert_eq!(calls, 1, "no block is read after the stop");
}

#[test]
fn empty_shares_and_odd_names_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = plan(&empty).unwrap_err();
    assert!(e.contains("holds no files"), "{e}");
    let zero = dir.path().join("zero.txt");
    std::fs::write(&zero, b"").unwrap();
    let e = create(plan(&zero).unwrap(), "zero.txt", &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(e.contains("is empty"), "{e}");
    let odd = dir.path().join("odd");
    std::fs::create_dir(&odd).unwrap();
    // A name no UTF-8 can spell: a stray byte on Unix, an unpaired
    // surrogate on Windows.
    #[cfg(unix)]
    let bad = {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b"bad\xff.txt").to_owned()
    };
    #[cfg(windows)]
    let bad = {
        use std::os::windows::ffi::OsStringExt;
        let mut name: Vec<u16> = "bad".encode_utf16().collect();
        name.push(0xD800);
        name.extend(".txt".encode_utf16());
        std::ffi::OsString::from_wide(&name)
    };
    match std::fs::write(odd.join(bad), b"x") {
        Ok(()) => {
            let e = plan(&odd).unwrap_err();
            assert!(e.contains("not valid UTF-8"), "{e}");
        }
        // Wine stores names as UTF-8 on the Unix side, and so refuses
        // an unpaired surrogate (NTFS takes it): nothing to list.
        Err(e) if cfg!(windows) => eprintln!("no such name here: {e}"),
        Err(e) => panic!("{e}"),
    }
}
