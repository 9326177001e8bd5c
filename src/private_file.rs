//! Whether a file is readable by the user only, as the API token and the
//! password file are (`fsutil::write_private` creates them so): mode 0600
//! on Unix; on Windows a DACL that lets no one else in (created with one
//! entry, for the user, not inherited from the folder).

use std::io;
use std::path::Path;

/// Whether a DACL in SDDL (`D:P(A;;FA;;;S-1-5-21-...)`) lets no one but
/// `user` (a SID as SDDL writes it) and the system itself (`SY`, the
/// counterpart of root) open the file: every allow entry is for one of
/// them. A null DACL (`NO_ACCESS_CONTROL`: everyone) is not private; an
/// empty one (no one) is.
pub fn dacl_is_private(sddl: &str, user: &str) -> bool {
    let Some(dacl) = sddl.split_once("D:").map(|(_, d)| d) else {
        return false;
    };
    let (flags, aces) = dacl.split_once('(').unwrap_or((dacl, ""));
    if flags.contains("NO_ACCESS_CONTROL") {
        return false;
    }
    aces.split('(')
        .map(|ace| ace.trim_end_matches(')'))
        .filter(|ace| !ace.is_empty())
        .all(|ace| {
            let fields: Vec<&str> = ace.split(';').collect();
            let allows = matches!(fields.first(), Some(&"A") | Some(&"OA"));
            // An SACL's entries (`S:`) end the DACL.
            let sid = fields.get(5).map(|s| s.split(')').next().unwrap_or(s));
            !allows || sid.is_some_and(|sid| sid == user || sid == "SY")
        })
}

/// Whether only the user may read `path` (mode 0600 on Unix; on Windows
/// no allow entry but the user's and the system's: see
/// [`dacl_is_private`]). Elsewhere: true.
pub fn is_private(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o777 == 0o600)
    }
    #[cfg(windows)]
    {
        Ok(dacl_is_private(
            &crate::windows::file_dacl_sddl(path)?,
            &crate::windows::current_user_sddl_sid()?,
        ))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dacl_is_private_when_only_the_user_and_the_system_are_allowed() {
        let me = "S-1-5-21-1-2-3-1001";
        for private in [
            "D:P(A;;FA;;;S-1-5-21-1-2-3-1001)",
            // Wine keeps no protection flag, and lets the system in.
            "D:(A;;FA;;;SY)(A;;FA;;;S-1-5-21-1-2-3-1001)",
            // Denials take nothing away from privacy; no entry: no one.
            "D:P(D;;FA;;;WD)(A;;FA;;;S-1-5-21-1-2-3-1001)",
            "D:P",
            "O:S-1-5-21-1-2-3-1001D:P(A;;FA;;;S-1-5-21-1-2-3-1001)S:(AU;SA;FA;;;WD)",
        ] {
            assert!(super::dacl_is_private(private, me), "{private}");
        }
        for open in [
            "D:(A;;FA;;;S-1-5-21-1-2-3-1001)(A;;FR;;;BU)",
            "D:AI(A;ID;FA;;;S-1-5-21-1-2-3-1002)",
            "D:(A;;0x1200a9;;;WD)",
            "D:NO_ACCESS_CONTROL",
            "O:SY",
            "",
        ] {
            assert!(!super::dacl_is_private(open, me), "{open}");
        }
    }

    #[test]
    fn only_the_user_may_read_it_and_it_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        crate::fsutil::write_private(&path, b"one").unwrap();
        assert!(super::is_private(&path).unwrap());
        crate::fsutil::write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(super::is_private(&path).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let plain = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(dir.path().join("plain"), plain).unwrap();
        }
        assert!(!super::is_private(&dir.path().join("plain")).unwrap());
    }
}
