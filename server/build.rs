//! Makes sure `web/dist` exists so the crate compiles before the web app is
//! built (the binary then serves a page saying how to build it), and asks
//! for a rebuild whenever a file of the bundle or a migration changes.

use std::path::Path;

fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                watch(&path);
            } else {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

fn main() {
    let dist = Path::new("../web/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(dist);
    }
    watch(dist);
    watch(Path::new("../migrations"));
}
