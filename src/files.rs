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
    std::fs::rename(&tmp, path).map_err(|e| io(e, "rename into place"))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
