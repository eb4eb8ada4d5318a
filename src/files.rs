//! Files written so that nothing is lost: every file the tools write (checkpoints, metrics
//! history, reports, grids, the export bundle) goes through [`write_atomic`], so a kill, a full
//! disk or any other failure leaves the previous file whole.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `data` to `path` so that a crash, kill or full disk leaves either the old file or the
/// new one: a temp file in the same folder, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let io = |e: std::io::Error, what: &str| Error::Io(format!("{}: {what}: {e}", path.display()));
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(e, "create folder"))?;
    // The process id keeps two writers of one file (two samplers, say) off each other's temp file.
    let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e, "write temp file"));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e, "rename into place"));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temp files [`write_atomic`] leaves when a process is killed mid-write
/// (`.NAME.PID.tmp`) from `dir`; for a folder its caller holds exclusively (train's lock).
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") && e.path().is_file() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Replaces folder `dir` by one holding exactly `files` (paths relative to it): they are
/// written to a new folder beside it, which then takes its place. A failure while writing leaves
/// `dir` as it was; only a crash between the two renames leaves it missing, with the old one
/// beside it as `.NAME.old`.
pub fn replace_folder(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let name = dir.file_name().and_then(|s| s.to_str()).unwrap_or("folder");
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (new, old) = (parent.join(format!(".{name}.new")), parent.join(format!(".{name}.old")));
    let io = |e: std::io::Error, p: &Path, what: &str| Error::Io(format!("{}: {what}: {e}", p.display()));
    for stale in [&new, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).map_err(|e| io(e, stale, "remove"))?;
        }
    }
    let written = files.iter().try_for_each(|(rel, bytes)| write_atomic(&new.join(rel), bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| io(e, dir, "move aside"))?;
    }
    std::fs::rename(&new, dir).map_err(|e| io(e, dir, "move into place"))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
