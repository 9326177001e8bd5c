//! Builds the BitTorrent v1 metainfo of a file or folder by reading it once,
//! in place, in large blocks, reporting progress as it goes.
//!
//! Our own rather than librqbit's `create_torrent` for three reasons:
//! librqbit's appends one hash too many when the size is an exact multiple
//! of the piece length (libtorrent clients, qBittorrent among them, then
//! refuse the torrent); it reads in 8 KiB steps, each a hop to a blocking
//! thread, which made hashing slower than `sha1sum`; and it reports no
//! progress. The info dictionary is otherwise the same as librqbit's (same
//! keys, same 2 MiB pieces), so a single file whose size is not such a
//! multiple keeps the info hash earlier versions gave it.
//!
//! Pieces are hashed on every core while the files are read once, in
//! order. A folder torrent aligns each file to a piece boundary with BEP
//! 47 padding files (zeros never written to disk, which librqbit and
//! libtorrent read), so a file's pieces depend on that file alone.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use sha1w::{ISha1, Sha1};

use crate::shares::InfoHash;

/// Bytes per piece (librqbit's choice, kept for stable info hashes).
pub const PIECE_LENGTH: u64 = 2 * 1024 * 1024;
/// Bytes read per system call.
const READ_SIZE: usize = 1024 * 1024;

/// A torrent built from files on disk.
#[derive(Debug)]
pub struct Created {
    pub info_hash: InfoHash,
    /// The `.torrent` file: a dictionary holding only `info`.
    pub torrent: Vec<u8>,
    /// The folder the torrent's paths are relative to (the file's parent
    /// folder, or the shared folder itself).
    pub output_folder: PathBuf,
    pub size: u64,
    /// A folder torrent (with a file list), or a single file.
    pub multi: bool,
}

/// One file of the torrent: where it is, and its path inside the torrent
/// (empty for a single-file torrent).
#[derive(Debug)]
struct Input {
    path: PathBuf,
    parts: Vec<String>,
    /// The size listed for it (the torrent gets what is read).
    len: u64,
    /// What it looked like when listed, before any byte was read.
    stamp: FileStamp,
    /// The hashes of its first pieces, known from an earlier build of the
    /// same file (`Plan::reuse`): those pieces are not read again.
    known: Vec<[u8; 20]>,
}

/// One file's size, modification time (nanoseconds) and identity on its
/// file system: the same stamp means the same bytes as when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    pub len: u64,
    pub mtime_ns: u128,
    pub device: u64,
    pub inode: u64,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        let (device, inode) = super::store::identity(meta);
        FileStamp {
            len: meta.len(),
            mtime_ns: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos()),
            device,
            inode,
        }
    }
}

/// What a share will hash: its files in torrent order and their size on
/// disk, found by one walk before any byte is read.
#[derive(Debug)]
pub struct Plan {
    inputs: Vec<Input>,
    output_folder: PathBuf,
    folder: bool,
    /// The files' sizes as listed, for progress (what is read counts).
    pub size: u64,
}

/// Lists what sharing `path` (a file or a folder, already canonical) will
/// hash. Symbolic links inside a folder are left out, as are special
/// files; a name that is not UTF-8 is refused (BitTorrent paths are text),
/// as is a folder with no files.
pub fn plan(path: &Path) -> Result<Plan, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let folder = meta.is_dir();
    let (inputs, output_folder) = if folder {
        let mut inputs = Vec::new();
        collect(path, &mut Vec::new(), &mut inputs)?;
        inputs.sort_by(|a, b| a.parts.cmp(&b.parts));
        (inputs, path.to_path_buf())
    } else {
        let parent = path
            .parent()
            .ok_or_else(|| format!("{} has no parent folder", path.display()))?;
        let input = Input {
            path: path.to_path_buf(),
            parts: Vec::new(),
            len: meta.len(),
            stamp: FileStamp::of(&meta),
            known: Vec::new(),
        };
        (vec![input], parent.to_path_buf())
    };
    if inputs.is_empty() {
        return Err(format!(
            "{} holds no files: there is nothing to share",
            path.display()
        ));
    }
    Ok(Plan {
        size: inputs.iter().map(|i| i.len).sum(),
        inputs,
        output_folder,
        folder,
    })
}

impl Plan {
    /// Whether this is a folder torrent (padded: each file's pieces are its
    /// own).
    pub fn is_folder(&self) -> bool {
        self.folder
    }

    /// Gives file `index` (in [`stamps`](Self::stamps) order) the hashes of
    /// its first pieces, so they are not read again. Only a folder torrent
    /// takes them (its files start at piece boundaries); at most the
    /// file's pieces are kept. The caller vouches that the file is the one
    /// these hashes were made from (the same stamp) and that the last
    /// piece's hash, if given, was made with the padding the file gets
    /// here (none for the last file).
    pub fn reuse(&mut self, index: usize, mut hashes: Vec<[u8; 20]>) {
        if !self.folder {
            return;
        }
        if let Some(input) = self.inputs.get_mut(index) {
            hashes.truncate(input.len.div_ceil(PIECE_LENGTH) as usize);
            input.known = hashes;
        }
    }

    /// Bytes that building will read (the rest is known).
    pub fn to_read(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| i.len.saturating_sub(i.known.len() as u64 * PIECE_LENGTH))
            .sum()
    }

    /// Every file's path inside the torrent and stamp, to keep beside the
    /// torrent for the next build.
    pub fn stamps(&self) -> Vec<(Vec<String>, FileStamp)> {
        self.inputs
            .iter()
            .map(|i| (i.parts.clone(), i.stamp))
            .collect()
    }
}

/// How many threads hash pieces: every core (up to 8).
pub fn hashing_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// Hashes what `plan` lists into a torrent called `name`, on every core.
/// `progress` is called with the bytes read so far after every block, and
/// stops the work by breaking. A share whose files turn out empty is
/// refused.
pub fn create(
    plan: Plan,
    name: &str,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Created, String> {
    create_with(plan, name, progress, hashing_threads())
}

/// Hashes the file or folder `path` on `threads` threads and returns its
/// info hash (the benchmark of hashing on every core against one thread).
pub fn hash_path(path: &Path, threads: usize) -> Result<InfoHash, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let created = create_with(
        plan(path)?,
        &name,
        &mut |_| ControlFlow::Continue(()),
        threads,
    )?;
    Ok(created.info_hash)
}

/// A piece on its way to be hashed: its index and its bytes.
type Work = (usize, Vec<u8>);

/// [`create`] on `threads` threads, the calling one included. The files
/// are read once, in order, by the calling thread; whole pieces go to the
/// other `threads - 1` hashing threads, and their buffers come back to be
/// filled again, so memory stays at a few pieces per thread. When every
/// hashing thread is busy, the calling thread hashes the piece itself; on
/// one thread it hashes every piece (the benchmark's baseline).
///
/// A folder torrent aligns every file to a piece boundary (BEP 47 padding
/// files: zeros that are never written to disk), so each file's pieces
/// depend on that file alone.
pub fn create_with(
    plan: Plan,
    name: &str,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
    threads: usize,
) -> Result<Created, String> {
    let Plan {
        inputs,
        output_folder,
        folder,
        ..
    } = plan;
    let hashers = threads.max(1) - 1;
    let padded = folder;
    // (At most `hashers` queued and `hashers` being hashed, and one read.)
    let buffers = hashers * 2 + 1;
    let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<Work>(hashers);
    let work_rx = std::sync::Mutex::new(work_rx);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (hash_tx, hash_rx) = std::sync::mpsc::channel::<(usize, [u8; 20])>();
    for _ in 0..buffers {
        free_tx
            .send(Vec::with_capacity(PIECE_LENGTH as usize))
            .expect("the receiver is here");
    }
    let read = std::thread::scope(|scope| {
        for _ in 0..hashers {
            let (work_rx, free_tx, hash_tx) = (&work_rx, free_tx.clone(), hash_tx.clone());
            scope.spawn(move || loop {
                let next = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((index, mut buf)) = next else { return };
                let mut h = Sha1::new();
                h.update(&buf);
                let _ = hash_tx.send((index, h.finish()));
                buf.clear();
                let _ = free_tx.send(buf);
            });
        }
        let hand = Hand {
            free: &free_rx,
            work: (hashers > 0).then_some(&work_tx),
            hashes: &hash_tx,
        };
        let read = read_pieces(&inputs, padded, &hand, progress);
        drop(hash_tx);
        drop(work_tx); // the hashing threads end once the queue is empty
        read
    });
    let Reading {
        lengths,
        pads,
        pieces,
        done,
        known,
    } = read.map_err(|e| match e {
        ReadError::Io(e) => e,
        ReadError::Stopped => format!(
            "hashing {} was stopped",
            shared_path(&inputs, &output_folder, folder).display()
        ),
    })?;
    if done + known == 0 {
        return Err(format!(
            "{} is empty: there is nothing to share",
            shared_path(&inputs, &output_folder, folder).display()
        ));
    }
    let mut hashes = vec![0u8; pieces * 20];
    for (index, hash) in hash_rx.iter() {
        hashes[index * 20..index * 20 + 20].copy_from_slice(&hash);
    }
    let info = info_dict(name, &inputs, &lengths, &pads, &hashes, folder);
    let mut digest = Sha1::new();
    digest.update(&info);
    let info_hash = InfoHash(digest.finish());
    let mut torrent = Vec::with_capacity(info.len() + 16);
    torrent.extend_from_slice(b"d4:info");
    torrent.extend_from_slice(&info);
    torrent.push(b'e');
    Ok(Created {
        info_hash,
        torrent,
        output_folder,
        size: done + known,
        multi: folder,
    })
}

/// What reading the files found.
struct Reading {
    /// Bytes read of each file.
    lengths: Vec<u64>,
    /// Zeros after each file to reach a piece boundary (padded torrents).
    pads: Vec<u64>,
    pieces: usize,
    /// Bytes read in all.
    done: u64,
    /// Bytes whose hashes were known (not read).
    known: u64,
}

enum ReadError {
    Io(String),
    Stopped,
}

/// Where the reading thread's full pieces go.
struct Hand<'a> {
    /// Emptied piece buffers, back from the hashing threads.
    free: &'a std::sync::mpsc::Receiver<Vec<u8>>,
    /// The hashing threads' queue (None: no hashing thread).
    work: Option<&'a std::sync::mpsc::SyncSender<Work>>,
    /// Every piece's hash, by index.
    hashes: &'a std::sync::mpsc::Sender<(usize, [u8; 20])>,
}

impl Hand<'_> {
    /// Hands the full `piece` number `index` to a free hashing thread, or
    /// hashes it here when none is free; `piece` is then an empty buffer.
    fn send(&self, piece: &mut Vec<u8>, index: usize) -> Result<(), ReadError> {
        let died = || ReadError::Io("a hashing thread died".into());
        if let Some(work) = self.work {
            match work.try_send((index, std::mem::take(piece))) {
                Ok(()) => {
                    *piece = self.free.recv().map_err(|_| died())?;
                    return Ok(());
                }
                Err(std::sync::mpsc::TrySendError::Full((_, back))) => *piece = back,
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(died()),
            }
        }
        let mut h = Sha1::new();
        h.update(piece);
        self.hashes
            .send((index, h.finish()))
            .map_err(|_| ReadError::Io("the hash collector died".into()))?;
        piece.clear();
        Ok(())
    }
}

/// Reads every file once, in order, into piece buffers and hands each full
/// piece on (`Hand::send`); the hashes of pieces known from an earlier
/// build go straight to the hashes.
fn read_pieces(
    inputs: &[Input],
    padded: bool,
    hand: &Hand,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Reading, ReadError> {
    let mut piece = hand
        .free
        .recv()
        .map_err(|_| ReadError::Io("a hashing thread died".into()))?;
    let mut index = 0usize;
    let send = |piece: &mut Vec<u8>, index: &mut usize| -> Result<(), ReadError> {
        hand.send(piece, *index)?;
        *index += 1;
        Ok(())
    };
    let mut lengths = Vec::with_capacity(inputs.len());
    let mut pads = Vec::with_capacity(inputs.len());
    let mut done = 0u64;
    let mut known = 0u64;
    for (i, input) in inputs.iter().enumerate() {
        let last = i + 1 == inputs.len();
        // (A padded file starts at a piece boundary: `piece` is empty.)
        let skip = if padded && piece.is_empty() {
            input.known.len()
        } else {
            0
        };
        for hash in &input.known[..skip] {
            hand.hashes
                .send((index, *hash))
                .map_err(|_| ReadError::Io("the hash collector died".into()))?;
            index += 1;
        }
        let mut length = (skip as u64 * PIECE_LENGTH).min(input.len);
        known += length;
        if skip > 0 && length == input.len {
            // Every piece known: the file is not even opened.
            let pad = if !last && !length.is_multiple_of(PIECE_LENGTH) {
                PIECE_LENGTH - length % PIECE_LENGTH
            } else {
                0
            };
            lengths.push(length);
            pads.push(pad);
            continue;
        }
        let mut file = File::open(&input.path)
            .map_err(|e| ReadError::Io(format!("cannot read {}: {e}", input.path.display())))?;
        if length > 0 {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(length))
                .map_err(|e| ReadError::Io(format!("cannot read {}: {e}", input.path.display())))?;
        }
        loop {
            // (Never full here: a full piece is sent at once.)
            let room = PIECE_LENGTH as usize - piece.len();
            let at = piece.len();
            piece.resize(at + room.min(READ_SIZE), 0);
            let n = loop {
                match file.read(&mut piece[at..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(ReadError::Io(format!(
                            "cannot read {}: {e}",
                            input.path.display()
                        )))
                    }
                }
            };
            piece.truncate(at + n);
            if n == 0 {
                break; // the end of this file
            }
            length += n as u64;
            done += n as u64;
            if piece.len() == PIECE_LENGTH as usize {
                send(&mut piece, &mut index)?;
            }
            if progress(done).is_break() {
                return Err(ReadError::Stopped);
            }
        }
        let pad = if padded && !last && !piece.is_empty() {
            PIECE_LENGTH - piece.len() as u64
        } else {
            0
        };
        if pad > 0 {
            piece.resize(PIECE_LENGTH as usize, 0);
            send(&mut piece, &mut index)?;
        }
        lengths.push(length);
        pads.push(pad);
    }
    if !piece.is_empty() {
        send(&mut piece, &mut index)?;
    }
    Ok(Reading {
        lengths,
        pads,
        pieces: index,
        done,
        known,
    })
}

/// The path that was shared: the folder, or the single file.
fn shared_path<'a>(inputs: &'a [Input], output_folder: &'a Path, folder: bool) -> &'a Path {
    if folder {
        output_folder
    } else {
        &inputs[0].path
    }
}

/// The regular files under `dir`, with their path parts below the shared
/// folder.
fn collect(dir: &Path, parts: &mut Vec<String>, out: &mut Vec<Input>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !kind.is_file() && !kind.is_dir() {
            continue; // links, sockets, devices
        }
        let part = entry.file_name().into_string().map_err(|_| {
            format!(
                "the name of {} is not valid UTF-8; rename it to share this folder",
                path.display()
            )
        })?;
        parts.push(part);
        if kind.is_dir() {
            collect(&path, parts, out)?;
        } else {
            let meta = entry
                .metadata()
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.push(Input {
                path,
                parts: parts.clone(),
                len: meta.len(),
                stamp: FileStamp::of(&meta),
                known: Vec::new(),
            });
        }
        parts.pop();
    }
    Ok(())
}

/// The bencoded info dictionary, keys in byte order as bencode requires.
fn info_dict(
    name: &str,
    inputs: &[Input],
    lengths: &[u64],
    pads: &[u64],
    hashes: &[u8],
    folder: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() + 64 * inputs.len() + 128);
    out.push(b'd');
    if folder {
        string(&mut out, b"files");
        out.push(b'l');
        for ((input, length), pad) in inputs.iter().zip(lengths).zip(pads) {
            out.push(b'd');
            string(&mut out, b"length");
            integer(&mut out, *length);
            string(&mut out, b"path");
            out.push(b'l');
            for part in &input.parts {
                string(&mut out, part.as_bytes());
            }
            out.extend_from_slice(b"ee");
            if *pad > 0 {
                // BEP 47: a padding file, zeros never written to disk.
                out.push(b'd');
                string(&mut out, b"attr");
                string(&mut out, b"p");
                string(&mut out, b"length");
                integer(&mut out, *pad);
                string(&mut out, b"path");
                out.push(b'l');
                string(&mut out, b".pad");
                string(&mut out, pad.to_string().as_bytes());
                out.extend_from_slice(b"ee");
            }
        }
        out.push(b'e');
    } else {
        string(&mut out, b"length");
        integer(&mut out, lengths[0]);
    }
    string(&mut out, b"name");
    string(&mut out, name.as_bytes());
    string(&mut out, b"piece length");
    integer(&mut out, PIECE_LENGTH);
    string(&mut out, b"pieces");
    string(&mut out, hashes);
    out.push(b'e');
    out
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s);
}

fn integer(out: &mut Vec<u8>, i: u64) {
    out.push(b'i');
    out.extend_from_slice(i.to_string().as_bytes());
    out.push(b'e');
}

#[cfg(test)]
mod tests;
