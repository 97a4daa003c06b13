//! Static files from a FAT disk: when the image has a disk `xvda` holding a
//! FAT16/32 file system, its files (all folders, at most 4 deep) are read
//! into memory at boot — at most [`MAX_FILE`] each and [`MAX_TOTAL`] in all
//! (the rest are skipped, and said so) — and served read-only at their
//! paths, case-insensitively (`/docs/seq.txt` is `DOCS/SEQ.TXT`). Loading
//! once keeps the disk out of the request path: a request never waits on
//! it, and the executor's tasks never block on I/O.
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rt::block::fat::embedded_sdmmc::{Directory, Mode, VolumeIdx};
use rt::block::fat::{FatDisk, FixedClock};
use rt::block::{BlockError, Disk};

/// Largest file loaded.
pub const MAX_FILE: usize = 2 << 20;
/// Most bytes loaded in all.
pub const MAX_TOTAL: usize = 8 << 20;
/// Deepest folder walked.
const MAX_DEPTH: usize = 4;

/// The files, by upper-case path (`/DOCS/SEQ.TXT`).
#[derive(Debug, Default)]
pub struct Files {
    map: BTreeMap<String, Vec<u8>>,
    bytes: usize,
    skipped: usize,
}

impl Files {
    /// The file at request path `path` (any case, no query).
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        let path = path.split('?').next().unwrap_or(path);
        self.map.get(&path.to_ascii_uppercase()).map(Vec::as_slice)
    }

    /// Files loaded, their bytes, files skipped.
    pub fn summary(&self) -> (usize, usize, usize) {
        (self.map.len(), self.bytes, self.skipped)
    }
}

/// The content type for a file name.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "txt" => "text/plain",
        "htm" | "html" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

type Dir<'a> = Directory<'a, FatDisk<Disk>, FixedClock, 4, 4, 1>;

/// Loads the files of `xvda`; `None` when the image has no disk. A disk
/// that is not FAT, or fails, is logged and served as no files.
pub fn load() -> Option<Files> {
    let disk = match Disk::open("xvda") {
        Ok(d) => d,
        Err(BlockError::NoDevice(_)) => return None,
        Err(e) => {
            rt::println!("httpd: xvda: {e}; no static files");
            return None;
        }
    };
    let fat = match rt::block::fat::open(disk) {
        Ok(f) => f,
        Err(e) => {
            rt::println!("httpd: xvda holds no FAT file system ({e}); no static files");
            return None;
        }
    };
    let mut files = Files::default();
    let r = fat
        .open_volume(VolumeIdx(0))
        .map_err(|e| format!("{e:?}"))
        .and_then(|vol| {
            let root = vol.open_root_dir().map_err(|e| format!("{e:?}"))?;
            walk(&root, "", 0, &mut files)
        });
    if let Err(e) = r {
        rt::println!("httpd: reading the FAT volume: {e}");
    }
    Some(files)
}

/// Loads the files of `dir` (at `prefix`) and walks its folders.
fn walk(dir: &Dir<'_>, prefix: &str, depth: usize, files: &mut Files) -> Result<(), String> {
    let mut entries = Vec::new();
    dir.iterate_dir(|d| {
        entries.push((format!("{}", d.name), d.attributes.is_directory(), d.size));
        core::ops::ControlFlow::Continue(())
    })
    .map_err(|e| format!("listing {prefix}/: {e:?}"))?;
    for (name, is_dir, size) in entries {
        if name == "." || name == ".." {
            continue;
        }
        let path = format!("{prefix}/{name}");
        if is_dir {
            if depth + 1 < MAX_DEPTH {
                let sub = dir
                    .open_dir(name.as_str())
                    .map_err(|e| format!("opening {path}: {e:?}"))?;
                walk(&sub, &path, depth + 1, files)?;
            }
            continue;
        }
        let size = size as usize;
        if size > MAX_FILE || files.bytes + size > MAX_TOTAL {
            files.skipped += 1;
            rt::println!("httpd: {path} ({size} bytes) skipped: over the limits");
            continue;
        }
        let f = dir
            .open_file_in_dir(name.as_str(), Mode::ReadOnly)
            .map_err(|e| format!("opening {path}: {e:?}"))?;
        let mut data = Vec::with_capacity(size);
        let mut buf = [0u8; 4096];
        while !f.is_eof() && data.len() < size {
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("reading {path}: {e:?}"))?;
            data.extend_from_slice(&buf[..n]);
        }
        f.close().map_err(|e| format!("closing {path}: {e:?}"))?;
        files.bytes += data.len();
        files.map.insert(path, data);
    }
    Ok(())
}
