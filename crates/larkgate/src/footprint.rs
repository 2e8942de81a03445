//! Giving back the memory start-up used.
//!
//! Start-up runs code that never runs again (argument parsing, the config
//! loader, migrations, building clients), and the kernel maps the program's
//! code around every page it touches, so a freshly started gateway holds
//! most of its 7 MB of machine code resident. Once every account is ready,
//! [`release_startup_pages`] tells the kernel (`madvise(MADV_PAGEOUT)`) to
//! drop this program's file-backed pages from the process; the code the
//! gateway keeps running faults back in as it is used, the rest stays out.
//! The pages are clean copies of the executable, so nothing is written
//! anywhere and nothing can be lost. Linux only; elsewhere it does nothing.

/// Bytes of this program's own file mappings the kernel was asked to drop;
/// `Ok(0)` where the platform has no such request.
pub fn release_startup_pages() -> std::io::Result<usize> {
    imp::release()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;

    /// One mapping of the executable: `(start, length)`.
    fn own_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
        maps.lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let range = fields.next()?;
                let perms = fields.next()?;
                // The path is the rest of the line (it may hold spaces); the
                // fields before it never contain a '/'.
                let path = line[line.find('/')?..].trim_end();
                // Read-only or executable, private: clean pages of the file.
                if path != exe || perms.contains('w') || !perms.ends_with('p') {
                    return None;
                }
                let (start, end) = range.split_once('-')?;
                let start = usize::from_str_radix(start, 16).ok()?;
                let end = usize::from_str_radix(end, 16).ok()?;
                (end > start).then(|| (start, end - start))
            })
            .collect()
    }

    pub fn release() -> io::Result<usize> {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let exe = exe.to_string_lossy();
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut released = 0;
        for (start, len) in own_mappings(&maps, &exe) {
            // SAFETY: the range is a whole mapping of this process taken
            // from /proc/self/maps; MADV_PAGEOUT only drops clean file pages
            // from the page tables (they fault back in on use) and never
            // changes the mapping's contents.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            released += len;
        }
        Ok(released)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_the_clean_mappings_of_the_executable_only() {
            let maps = "\
5600-5700 r--p 00000000 fe:00 1 /usr/bin/larkgate
5700-5900 r-xp 00100000 fe:00 1 /usr/bin/larkgate
5900-5a00 rw-p 00300000 fe:00 1 /usr/bin/larkgate
7f00-7f10 r-xp 00000000 fe:00 2 /usr/lib/libc.so.6
7f20-7f30 rw-p 00000000 00:00 0
7f40-7f50 r-xp 00000000 fe:00 3 /opt/my apps/larkgate
";
            assert_eq!(
                own_mappings(maps, "/usr/bin/larkgate"),
                vec![(0x5600, 0x100), (0x5700, 0x200)]
            );
            assert_eq!(
                own_mappings(maps, "/opt/my apps/larkgate"),
                vec![(0x7f40, 0x10)]
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn release() -> std::io::Result<usize> {
        Ok(0)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// Resident kB of this test binary's own file mappings.
    fn resident_kb() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_string_lossy().into_owned();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut own = false;
        let mut total = 0;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or("");
            if first.ends_with(':') {
                if own && first == "Rss:" {
                    total += fields
                        .next()
                        .and_then(|kb| kb.parse::<u64>().ok())
                        .unwrap_or(0);
                }
                continue;
            }
            // A mapping's header line: range, perms, offset, dev, inode, path.
            let perms = fields.next().unwrap_or("");
            own = !perms.contains('w') && line.ends_with(exe.as_str());
        }
        total
    }

    #[test]
    fn releasing_drops_resident_code_pages() {
        let before = resident_kb();
        let released = super::release_startup_pages().expect("madvise");
        assert!(released > 0, "no mapping of the executable found");
        let after = resident_kb();
        assert!(after < before, "resident {before} kB -> {after} kB");
    }
}
